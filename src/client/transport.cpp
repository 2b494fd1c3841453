#include "client/transport.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <ctime>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "util/text.hpp"

namespace s3up::client {

namespace {

// A response body kept in memory (JSON, an error) is never larger than this;
// a server that sends more (or never stops) is wrong, not slow.
constexpr std::size_t kMaxKeptBody = 8u << 20;
// Nor does such a request take longer, however slowly the bytes come.
constexpr long kMaxKeptBodySeconds = 120;

// libcurl errors that say the server is wrong or absent rather than busy:
// retried only once it has answered this command (it is restarting),
// else the command fails at once.
bool unreachable_code(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR: return true;
    default: return false;
  }
}

// libcurl errors that another attempt may get past: the network, not the request.
bool retryable_code(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return true;
    default: return false;
  }
}

struct Transfer {
  const Request* request = nullptr;
  Response response;
  CURL* curl = nullptr;
  std::uint64_t body_sent = 0;  // of the request body
  bool aborted_by_writer = false;
  bool begun = false;                   // Request::begin was called
  std::exception_ptr callback_failure;  // reading or writing the body failed (the file, not the network)
};

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    t.response.headers.clear();  // an interim (100) or redirect response ends here
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    t.response.headers[util::ascii_lower(line.substr(0, colon))] = std::string(util::trim(line.substr(colon + 1)));
  }
  return size * count;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::string_view piece(data, size * count);
  long status = 0;
  curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
  if (t.request->write && status >= 200 && status < 300) {
    try {
      if (!t.begun && t.request->begin) t.request->begin(Response{status, t.response.headers, {}});
      t.begun = true;
      if (!t.request->write(piece)) {
        t.aborted_by_writer = true;
        return CURL_WRITEFUNC_ERROR;
      }
    } catch (...) {
      t.callback_failure = std::current_exception();
      return CURL_WRITEFUNC_ERROR;
    }
  } else if (t.response.body.size() + piece.size() <= kMaxKeptBody) {  // JSON or an error's explanation, not a file
    t.response.body.append(piece);
  } else {
    t.callback_failure = std::make_exception_ptr(Failure("the server's answer is larger than any it should send"));
    return CURL_WRITEFUNC_ERROR;
  }
  return piece.size();
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  try {
    const std::size_t n = t.request->read(buffer, size * count, t.body_sent);
    t.body_sent += n;
    return n;
  } catch (...) {
    t.callback_failure = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

int on_seek(void* user, curl_off_t offset, int origin) {
  auto& t = *static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  t.body_sent = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

int on_progress(void* user, curl_off_t, curl_off_t received, curl_off_t, curl_off_t sent) {
  auto& t = *static_cast<Transfer*>(user);
  if (t.request->progress) t.request->progress(static_cast<std::uint64_t>(sent), static_cast<std::uint64_t>(received));
  return 0;
}

}  // namespace

std::string Response::error_message() const {
  boost::system::error_code ec;
  const auto parsed = boost::json::parse(body, ec);
  if (!ec) {
    if (const auto* obj = parsed.if_object()) {
      if (const auto* err = obj->if_contains("error"); err && err->is_object()) {
        if (const auto* message = err->as_object().if_contains("message"); message && message->is_string()) {
          return std::string(message->as_string());
        }
      }
    }
  }
  return "the server answered " + std::to_string(status);
}

struct Http::Impl {
  Endpoint endpoint;
  std::uint64_t max_send_rate;
  bool answered = false;  // the server answered this session at least once
  CURL* curl = nullptr;
  char error[CURL_ERROR_SIZE] = {};
};

Http::Http(const Endpoint& endpoint, std::uint64_t max_send_rate) : impl_(std::make_unique<Impl>()) {
  impl_->endpoint = endpoint;
  impl_->max_send_rate = max_send_rate;
  impl_->curl = curl_easy_init();
  if (!impl_->curl) throw std::runtime_error("libcurl could not start a session");
}

Http::~Http() { curl_easy_cleanup(impl_->curl); }

const std::string& Http::server() const { return impl_->endpoint.server; }

std::string Http::url(std::string_view path) const { return impl_->endpoint.server + std::string(path); }

std::string Http::resolve(std::string_view location) const { return resolve_location(impl_->endpoint.server, location); }

std::string resolve_location(const std::string& server, std::string_view location) {
  if (location.find("://") != std::string_view::npos) return std::string(location);
  const auto authority = server.find("://");
  // Scheme-relative (//host/path): another authority, the server's scheme.
  if (location.starts_with("//")) return server.substr(0, authority + 1) + std::string(location);
  // An absolute path: the server's scheme and authority in front of it.
  const auto path_start = authority == std::string::npos ? std::string::npos : server.find('/', authority + 3);
  const std::string origin = path_start == std::string::npos ? server : server.substr(0, path_start);
  return origin + (location.starts_with('/') ? "" : "/") + std::string(location);
}

std::string origin_of(std::string_view url) {
  const auto authority = url.find("://");
  if (authority == std::string_view::npos) return "";
  const auto end = url.find_first_of("/?#", authority + 3);
  return util::ascii_lower(url.substr(0, end));
}

Response Http::perform(const Request& request) {
  CURL* curl = impl_->curl;
  curl_easy_reset(curl);  // keeps the live connection, forgets the last request's options
  Transfer t;
  t.request = &request;
  t.curl = curl;
  impl_->error[0] = '\0';

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, impl_->error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "s3uploader-cli");
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  // No answer and no progress for a minute: the connection is dead.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  if (!request.write && !request.read) curl_easy_setopt(curl, CURLOPT_TIMEOUT, kMaxKeptBodySeconds);
  // The token goes to the service's host only: a redirect elsewhere (a
  // presigned S3 URL) is followed without it.
  curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
  curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, impl_->endpoint.token.c_str());
  if (!impl_->endpoint.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, impl_->endpoint.ca_file.c_str());
  if (request.follow_redirects) {
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  }
  if (!request.range.empty()) curl_easy_setopt(curl, CURLOPT_RANGE, request.range.c_str());

  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.read) {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &t);
    curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(curl, CURLOPT_SEEKDATA, &t);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body_length));
    curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    if (impl_->max_send_rate > 0) {
      curl_easy_setopt(curl, CURLOPT_MAX_SEND_SPEED_LARGE, static_cast<curl_off_t>(impl_->max_send_rate));
    }
  } else if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    // A body, or a POST's empty one (with Content-Length: 0, which proxies
    // want); DELETE and OPTIONS go without. libcurl would label a body as a
    // form: it is not one.
    if (!request.body.empty() || request.method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      if (request.body.empty()) headers = curl_slist_append(headers, "Content-Type:");
    }
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024);
  if (request.progress) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  }

  const CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.response.status);
  if (code != CURLE_OK) {
    if (t.callback_failure) std::rethrow_exception(t.callback_failure);
    if (t.aborted_by_writer) throw std::runtime_error("the download could not be written");
    const std::string detail = impl_->error[0] != '\0' ? impl_->error : curl_easy_strerror(code);
    throw TransportError(detail, retryable_code(code) || (unreachable_code(code) && impl_->answered));
  }
  impl_->answered = true;
  return std::move(t.response);
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c == 0xc2 && next >= 0x80 && next <= 0x9f) {  // C1 controls, as UTF-8
      out += fmt::format("\\u{:04x}", next);
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string describe(const Response& r) {
  if (r.status == 401) return "the server did not accept the token (HTTP 401)";
  return printable(r.error_message()) + " (HTTP " + std::to_string(r.status) + ")";
}

Attempt attempt(Http& http, const Request& request) {
  Attempt a;
  try {
    a.response = http.perform(request);
    a.failure = describe(*a.response);
    a.retry_after = parse_retry_after(a.response->header("retry-after"), std::chrono::system_clock::now());
  } catch (const TransportError& e) {
    a.failure = "cannot reach " + http.server() + ": " + e.what();
    if (!e.retryable()) throw Failure(a.failure);
  }
  return a;
}

Response perform_with_retries(Http& http, const Request& request, Backoff& backoff) {
  for (;;) {
    auto a = attempt(http, request);
    if (a.response && !retryable_status(a.response->status)) return std::move(*a.response);
    if (!backoff.can_retry()) {
      if (a.response) return std::move(*a.response);
      throw backoff.gave_up(a.failure);
    }
    fmt::print(stderr, "{}; retrying\n", printable(a.failure));
    backoff.wait(a.retry_after);
  }
}

bool retryable_status(long status) { return status >= 500 || status == 408 || status == 423 || status == 429; }

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  // Whatever a server says, a day at most: the value is converted to finer
  // units later, and an absurd one must not overflow there.
  constexpr std::int64_t kLongest = 24 * 3600;
  value = util::trim(value);
  if (value.empty()) return std::nullopt;
  if (const auto seconds = util::parse_integer<std::int64_t>(value)) {
    if (*seconds < 0) return std::nullopt;
    return std::chrono::seconds(std::min(*seconds, kLongest));
  }
  // An IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". Compared in seconds: a
  // time_point in nanoseconds cannot hold every year strptime accepts.
  std::tm tm{};
  const std::string text(value);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const std::int64_t at = timegm(&tm);
  const std::int64_t now_seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (at <= now_seconds) return std::chrono::seconds(0);
  return std::chrono::seconds(std::min(at - now_seconds, kLongest));
}

std::chrono::milliseconds Backoff::delay(unsigned attempt) {
  const auto ms = std::chrono::milliseconds(500) * (1ull << std::min(attempt, 10u));
  return std::min<std::chrono::milliseconds>(ms, std::chrono::seconds(30));
}

Failure Backoff::gave_up(const std::string& failure) const {
  if (attempt_ == 0) return Failure(failure);  // no retries were allowed
  return Failure(failure + " (gave up after " + std::to_string(attempt_) + " retries)");
}

bool Backoff::wait(std::optional<std::chrono::seconds> retry_after) {
  if (attempt_ >= retries_) return false;
  auto pause = delay(attempt_);
  if (retry_after) {
    // What the server asked for, within reason: a stuck clock must not park the client for a day.
    pause = std::min<std::chrono::milliseconds>(*retry_after, std::chrono::minutes(5));
  } else {
    // Up to a quarter more, so clients that failed together do not come back together.
    thread_local std::minstd_rand random(std::random_device{}());
    pause += std::chrono::milliseconds(std::uniform_int_distribution<long>(0, pause.count() / 4)(random));
  }
  ++attempt_;
  std::this_thread::sleep_for(pause);
  return true;
}

}  // namespace s3up::client
