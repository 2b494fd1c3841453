#include <curl/curl.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "util/text.hpp"
#include "util/time.hpp"
#include "webhooks/webhooks.hpp"

namespace s3up::webhooks {

namespace {

using namespace std::chrono_literals;
constexpr auto kIdlePoll = 250ms;       // how often an idle deliverer looks for due events
constexpr auto kPruneInterval = 10min;  // how often delivered ones past retention go
constexpr std::size_t kMaxAnswerBytes = 64 * 1024;
constexpr int kQueued = 4 * Deliverer::kConcurrency;  // claimed and not yet done, at most

db::Micros micros(std::chrono::milliseconds d) { return d.count() * 1000; }

// What an endpoint answered.
struct Answer {
  long status = 0;                    // 0: no HTTP answer
  std::string error;                  // why there was none
  std::chrono::seconds retry_after{};  // from a 429 or 503
};

struct Transfer {
  std::size_t kept = 0;
  std::chrono::seconds retry_after{};
  const std::atomic<bool>* stopping = nullptr;
};

std::size_t on_body(char*, std::size_t size, std::size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  t.kept += size * n;
  return t.kept > kMaxAnswerBytes ? 0 : size * n;  // a receiver's body is not ours to keep
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
  return static_cast<Transfer*>(user)->stopping->load() ? 1 : 0;  // shutting down: give the request up
}

}  // namespace

class Deliverer::Impl {
 public:
  Impl(db::WebhookOutbox& outbox, WebhookSettings settings, std::string user_agent)
      : outbox_(outbox), settings_(std::move(settings)), user_agent_(std::move(user_agent)) {}

  void start() {
    static std::once_flag curl_ready;
    std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    claimer_ = std::thread([this] { claim_loop(); });
    for (int i = 0; i < kConcurrency; ++i) workers_.emplace_back([this] { work_loop(); });
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    changed_.notify_all();
    if (claimer_.joinable()) claimer_.join();
    for (auto& w : workers_) w.join();
    workers_.clear();
    // Claimed but not sent: their lease runs out and another deliverer (or
    // this one after a restart) sends them.
  }

 private:
  void claim_loop() {
    auto next_prune = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      // Claimed a few ahead of the workers, so a claim's round trip is paid
      // once for several deliveries.
      const int free = kQueued - static_cast<int>(queue_.size()) - busy_;
      if (free <= 0) {
        changed_.wait(lock);
        continue;
      }
      lock.unlock();
      std::vector<db::WebhookDelivery> claimed;
      try {
        const auto now = util::now_micros();
        // Long enough for one attempt and its bookkeeping.
        claimed = outbox_.claim_deliveries(now, now + micros(settings_.timeout) + 30'000'000, free);
        if (std::chrono::steady_clock::now() >= next_prune) {
          next_prune = std::chrono::steady_clock::now() + kPruneInterval;
          const auto pruned = outbox_.prune_deliveries(now - micros(settings_.retention), 10'000);
          if (pruned > 0) spdlog::info("webhooks: {} delivered event(s) past their retention removed", pruned);
        }
      } catch (const std::exception& e) {
        spdlog::warn("webhooks: looking for events to deliver failed: {}", e.what());
      }
      lock.lock();
      for (auto& d : claimed) queue_.push_back(std::move(d));
      if (!claimed.empty()) {
        changed_.notify_all();
      } else {
        changed_.wait_for(lock, kIdlePoll, [&] { return stopping_; });
      }
    }
  }

  void work_loop() {
    CURL* curl = curl_easy_init();  // one per worker: its connections are kept between deliveries
    std::unique_lock lock(mutex_);
    while (true) {
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      auto d = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
      lock.unlock();
      try {
        deliver(curl, d);
      } catch (const std::exception& e) {
        // The database: the claim runs out, and the delivery comes round again.
        spdlog::warn("webhooks: recording the delivery of {} failed: {}", d.event_id, e.what());
      }
      lock.lock();
      --busy_;
      changed_.notify_all();
    }
    if (curl) curl_easy_cleanup(curl);
  }

  Answer post(CURL* curl, const db::WebhookDelivery& d, const std::string& body) {
    Answer answer;
    if (!curl) {
      answer.error = "libcurl could not start a transfer";
      return answer;
    }
    const std::int64_t timestamp = util::now_micros() / 1'000'000;
    const std::string id_header = "webhook-id: " + d.event_id;
    const std::string time_header = "webhook-timestamp: " + std::to_string(timestamp);
    const std::string signature_header =
        "webhook-signature: " + signature(settings_.secrets, d.event_id, timestamp, body);
    curl_slist* headers = nullptr;
    for (const std::string* h : {&id_header, &time_header, &signature_header}) headers = curl_slist_append(headers, h->c_str());
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip for a small body
    Transfer transfer;
    transfer.stopping = &stopping_flag_;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, d.endpoint.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect is a failure, not a new destination
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.timeout.count()));
    curl_easy_setopt(curl, CURLOPT_USERAGENT, user_agent_.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
    if (!settings_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, settings_.ca_file.c_str());
    const CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && answer.status != 0)) {
      answer.status = 0;
      answer.error = curl_easy_strerror(rc);
    }
    answer.retry_after = transfer.retry_after;
    return answer;
  }

  void deliver(CURL* curl, const db::WebhookDelivery& d) {
    const std::string body = payload(d);
    const Answer answer = post(curl, d, body);
    const auto now = util::now_micros();
    const std::string where = util::redact_url_userinfo(d.endpoint);
    if (answer.status >= 200 && answer.status < 300) {
      outbox_.delivery_succeeded(d.seq, now);
      spdlog::debug("webhooks: {} {} delivered to {} (attempt {})", d.event_type, d.event_id, where, d.attempts);
      return;
    }
    const std::string error = answer.status ? "HTTP " + std::to_string(answer.status) : answer.error;
    if (answer.status == 410) {
      outbox_.disable_endpoint(d.endpoint, now, "410 Gone");
      spdlog::warn("webhooks: {} answered 410 Gone: nothing more is sent to it until it is enabled again", where);
    }
    if (stopping_flag_.load() && answer.status == 0) return;  // cut off by shutdown: the claim runs out
    const std::chrono::seconds retry_after =
        answer.status == 429 || answer.status == 503 ? answer.retry_after : std::chrono::seconds{};
    const db::Micros next = now + micros(backoff(d.attempts, retry_after));
    if (next > d.created_at + micros(settings_.max_age)) {
      outbox_.delivery_failed(d.seq, std::nullopt, error);
      spdlog::error("webhooks: {} {} to {} is dead after {} attempt(s) over webhook_max_age; last: {}", d.event_type,
                    d.event_id, where, d.attempts, error);
      return;
    }
    outbox_.delivery_failed(d.seq, next, error);
    spdlog::warn("webhooks: {} {} to {} failed (attempt {}): {}; trying again at {}", d.event_type, d.event_id, where,
                 d.attempts, error, util::rfc3339(next));
  }

  db::WebhookOutbox& outbox_;
  const WebhookSettings settings_;
  const std::string user_agent_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};  // read by transfers under way
  std::deque<db::WebhookDelivery> queue_;
  int busy_ = 0;
  std::thread claimer_;
  std::vector<std::thread> workers_;

  friend class Deliverer;
};

Deliverer::Deliverer(db::WebhookOutbox& outbox, WebhookSettings settings, std::string user_agent)
    : impl_(std::make_unique<Impl>(outbox, std::move(settings), std::move(user_agent))) {}

Deliverer::~Deliverer() { stop(); }

void Deliverer::start() { impl_->start(); }

void Deliverer::stop() {
  impl_->stopping_flag_ = true;
  impl_->stop();
}

}  // namespace s3up::webhooks
