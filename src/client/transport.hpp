#pragma once
// The client's HTTP, on libcurl (internal to client/): one request at a time
// per Http object, its connection kept alive between requests. libcurl brings
// what a command-line tool owes its users and we would not write again:
// HTTPS_PROXY / NO_PROXY, TLS verification with the system's CA bundle or a
// --ca-file, redirects that drop the token on the way to another host, and
// send-rate limiting.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "client/client.hpp"

namespace s3up::client {

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; the final response's
  std::string body;                            // unless a `write` callback took it
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  // What the service said went wrong: its JSON error message, else the status.
  std::string error_message() const;
};

// No HTTP answer at all: the server could not be reached, the connection
// broke, TLS failed. `retryable` says whether trying again may help.
class TransportError : public std::runtime_error {
 public:
  TransportError(const std::string& what, bool retryable) : std::runtime_error(what), retryable_(retryable) {}
  bool retryable() const { return retryable_; }

 private:
  bool retryable_;
};

// Why a command failed, as one sentence for the user.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // a small body, sent whole
  // A streamed body of `body_length` bytes instead: `read` fills the buffer
  // with the body's bytes from position `at` and returns how many it wrote
  // (0 only at the end). Each attempt of the request starts again at 0.
  std::function<std::size_t(char* out, std::size_t max, std::uint64_t at)> read;
  std::uint64_t body_length = 0;
  // A 2xx response's body is handed here piece by piece instead of kept;
  // returning false (or throwing) aborts the transfer. `begin` sees the
  // response's status and headers first (before any piece; body empty).
  std::function<bool(std::string_view)> write;
  std::function<void(const Response&)> begin;
  // Bytes sent and received so far in this request.
  std::function<void(std::uint64_t sent, std::uint64_t received)> progress;
  bool follow_redirects = false;
  std::string range;  // "100-" for Range: bytes=100-
};

class Http {
 public:
  // `max_send_rate` in bytes per second; 0: no limit.
  explicit Http(const Endpoint& endpoint, std::uint64_t max_send_rate = 0);
  ~Http();
  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;

  // Throws TransportError when no answer came.
  Response perform(const Request& request);
  // The service's URL for an API path ("/files").
  std::string url(std::string_view path) const;
  // A Location the service answered, made absolute against the server URL.
  std::string resolve(std::string_view location) const;
  const std::string& server() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A Location the server sent, made absolute against the server's URL.
std::string resolve_location(const std::string& server, std::string_view location);

// "https://files.example.com" of any URL (lower case); "" if it has none.
std::string origin_of(std::string_view url);

// `text` (something the server sent) safe to write to a terminal: control
// characters (C0, DEL, C1) shown as \xNN escapes instead of acted on.
std::string printable(std::string_view text);

// "the server did not accept the token (HTTP 401)", "no such file (HTTP 404)".
std::string describe(const Response& response);

// Whether a status is worth trying again: 5xx, 408, 423 (locked by another
// request), 429 (rate limited).
bool retryable_status(long status);

// Retry-After as delta-seconds or an HTTP-date, relative to `now`.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// Exponential backoff with jitter between attempts: 0.5 s, 1 s, 2 s, ... at
// most 30 s, or what the server asked for in Retry-After. The count starts
// again whenever the transfer makes progress.
class Backoff {
 public:
  explicit Backoff(unsigned retries) : retries_(retries) {}
  // False when the retries are used up; else sleeps and returns true.
  bool wait(std::optional<std::chrono::seconds> retry_after = std::nullopt);
  bool can_retry() const { return attempt_ < retries_; }
  // The failure that used the retries up: "<failure> (gave up after N retries)".
  Failure gave_up(const std::string& failure) const;
  // The delay before retry number `attempt` (0-based), without jitter.
  static std::chrono::milliseconds delay(unsigned attempt);
  void progressed() { attempt_ = 0; }

 private:
  unsigned retries_;
  unsigned attempt_ = 0;
};

}  // namespace s3up::client

namespace s3up::client {

// One try of a request: its response, or why none came. `failure` and
// `retry_after` describe a response too (describe(), Retry-After), for a
// caller that does not take it.
struct Attempt {
  std::optional<Response> response;
  std::string failure;
  std::optional<std::chrono::seconds> retry_after;
};
// Throws Failure when no answer came and another try cannot help (TLS, a bad URL).
Attempt attempt(Http& http, const Request& request);

// `request`, tried again (with `backoff`) while it fails in a way that may
// pass. Returns the last response, retryable or not; throws Failure when the
// server could not be reached.
Response perform_with_retries(Http& http, const Request& request, Backoff& backoff);

}  // namespace s3up::client
