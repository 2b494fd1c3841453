#include "webhooks/signed_post.hpp"

#include <algorithm>
#include <mutex>

#include "util/text.hpp"
#include "util/time.hpp"
#include "webhooks/webhooks.hpp"

namespace s3up::webhooks {

namespace {

constexpr std::size_t kMaxAnswerBytes = 64 * 1024;

struct Transfer {
  std::string* body = nullptr;  // kept here when asked for
  std::size_t received = 0;
  std::chrono::seconds retry_after{};
  const std::atomic<bool>* stopping = nullptr;
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  t.received += size * n;
  if (t.received > kMaxAnswerBytes) return 0;  // more than any answer here needs: an error
  if (t.body) t.body->append(data, size * n);
  return size * n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::string_view line(data, size * n);
  const auto colon = line.find(':');
  if (colon != std::string_view::npos && util::ascii_lower(line.substr(0, colon)) == "retry-after") {
    // Seconds only; an HTTP date is rare here and the backoff covers it.
    if (const auto s = util::parse_integer<long>(util::trim(line.substr(colon + 1)))) {
      t.retry_after = std::chrono::seconds(std::clamp<long>(*s, 0, 3600));
    }
  }
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* stopping = static_cast<Transfer*>(user)->stopping;
  return stopping && stopping->load() ? 1 : 0;  // shutting down: give the request up
}

}  // namespace

void start_curl() {
  static std::once_flag ready;
  std::call_once(ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Answer post_signed(CURL* curl, const SignedPost& post, const std::vector<std::string>& secrets,
                   const PostOptions& options, std::string* body) {
  Answer answer;
  if (!curl) {
    answer.error = "libcurl could not start a transfer";
    return answer;
  }
  const std::string url(post.url);
  const std::int64_t timestamp = util::now_micros() / 1'000'000;
  const std::string id_header = "webhook-id: " + std::string(post.id);
  const std::string time_header = "webhook-timestamp: " + std::to_string(timestamp);
  const std::string signature_header = "webhook-signature: " + signature(secrets, post.id, timestamp, post.body);
  curl_slist* headers = nullptr;
  for (const std::string* h : {&id_header, &time_header, &signature_header}) {
    headers = curl_slist_append(headers, h->c_str());
  }
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip for a small body
  Transfer transfer;
  transfer.body = body;
  transfer.stopping = options.stopping;
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect is a failure, not a new destination
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post.body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
  if (!options.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options.ca_file.c_str());
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  // A body past the limit: the status stands when nothing else is wanted of it.
  const bool only_too_long = rc == CURLE_WRITE_ERROR && answer.status != 0 && !body;
  if (rc != CURLE_OK && !only_too_long) {
    answer.status = 0;
    answer.error = rc == CURLE_WRITE_ERROR ? "the answer is longer than 64 KiB" : curl_easy_strerror(rc);
  }
  answer.retry_after = transfer.retry_after;
  return answer;
}

}  // namespace s3up::webhooks
