#pragma once
// What a handler sees and returns: the request's headers with its body to
// pull on demand, and a response that owns its body (nothing, a string, or a
// stream written after the headers). Also the one shape of an error answer.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/json/value.hpp>

#include "util/byte_source.hpp"

namespace s3up::http {

namespace beast_http = boost::beast::http;
using RequestHeader = beast_http::request_header<>;
using ResponseHeader = beast_http::response_header<>;
using Headers = std::vector<std::pair<std::string, std::string>>;
// An answer's status: Beast's names for the standard ones; the few others
// are named where they are used (kClientClosedRequest, tus's 460).
using Status = beast_http::status;

// An error that becomes an HTTP answer: a status, a machine-readable code
// (the "code" of the JSON error body), a message for people, and headers the
// answer must carry (Retry-After, Allow, WWW-Authenticate, Content-Range).
// The application's error table (api/error.hpp) derives its errors from it;
// the server throws it for what goes wrong reading a body.
class Error : public util::RequestFailure {
 public:
  Error(Status status, std::string code, const std::string& message, Headers headers = {})
      : util::RequestFailure(message),
        status_(static_cast<unsigned>(status)),
        code_(std::move(code)),
        headers_(std::move(headers)) {}
  // The reason phrase, for a status Beast has none for ("" for the others).
  Error& with_reason(std::string reason) {
    reason_ = std::move(reason);
    return *this;
  }
  const std::string& reason() const { return reason_; }
  unsigned status() const { return status_; }
  const std::string& code_name() const { return code_; }
  const Headers& headers() const { return headers_; }

 private:
  unsigned status_;
  std::string code_;
  Headers headers_;
  std::string reason_;
};

// The status nginx logs for a client that went away; nothing is sent.
inline constexpr Status kClientClosedRequest = static_cast<Status>(499);

// The request body, read on demand in chunks. read_some() throws Error:
// 400 bad_request (malformed framing), 499 client_disconnected, 408
// request_timeout (a pause longer than the idle timeout, or a body slower
// than the minimum rate), 413 file_too_large (over the server's body limit),
// 503 shutting_down.
class BodyReader : public util::ByteSource {
 public:
  virtual std::optional<std::uint64_t> content_length() const = 0;
};

// A response body produced piece by piece after the headers (downloads), so
// it is never held whole.
class BodySource {
 public:
  virtual ~BodySource() = default;
  // Called before the headers are sent, never for HEAD: what fails here (a
  // missing object) still becomes an error answer.
  virtual boost::asio::awaitable<void> open() { co_return; }
  // The next piece, valid until the next call; empty at the end. If it
  // throws, the headers are out already: the connection is closed and the
  // client sees a body that ends short.
  virtual boost::asio::awaitable<std::span<const char>> next() = 0;
};

class Response {
 public:
  struct Stream {
    std::uint64_t length = 0;  // the Content-Length
    std::shared_ptr<BodySource> source;
  };

  explicit Response(Status status = Status::ok) {
    header_.result(status);
    header_.version(11);
  }

  static Response json(Status status, const boost::json::value& body);
  static Response stream(Status status, std::uint64_t length, std::shared_ptr<BodySource> source);

  unsigned status() const { return header_.result_int(); }
  void set(beast_http::field name, std::string_view value) { header_.set(name, value); }
  void set(std::string_view name, std::string_view value) { header_.set(name, value); }
  std::string_view operator[](beast_http::field name) const { return header_[name]; }
  std::string_view operator[](std::string_view name) const { return header_[name]; }
  ResponseHeader& header() { return header_; }
  const ResponseHeader& header() const { return header_; }

  void body(std::string text) { body_ = std::move(text); }
  const std::variant<std::monostate, std::string, Stream>& body() const { return body_; }
  std::variant<std::monostate, std::string, Stream>& body() { return body_; }
  // The length the body has (or a GET's body would have, for HEAD).
  std::uint64_t body_length() const;

 private:
  ResponseHeader header_;
  std::variant<std::monostate, std::string, Stream> body_;
};

// The one shape of an error answer: {"error": {"code", "message"}} with the
// error's status and headers.
Response error_response(const Error& error);

}  // namespace s3up::http
