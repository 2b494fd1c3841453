#pragma once
// The HTTP API: the route table and its handlers. Handlers are thin: they
// read what HTTP says (headers, path, body) and leave the rules to upload/
// (sessions, policy) and the bytes to storage/. They are plain coroutines
// over an http::Request, callable without a socket (tests/unit/api_test.cpp).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "api/error.hpp"
#include "auth/authenticator.hpp"
#include "http/router.hpp"
#include "upload/session.hpp"

namespace s3up::api {

struct Downloads {
  bool redirect = false;  // 302 to a presigned URL (S3) instead of streaming the bytes
  std::chrono::seconds url_ttl{300};
};

struct Dependencies {
  upload::Services uploads;
  auth::Authenticator& authenticator;
  Downloads downloads{};
  auth::RateLimit rate_limit{};  // requests per token
};

// Multipart framing around the file (boundary lines, part headers) is not
// counted against the size limit; a Content-Length this far above the limit
// is refused up front, anything closer is decided by counting file bytes.
inline constexpr std::uint64_t kMultipartFramingAllowance = 64 * 1024;

// The authenticated caller of a request that passed authenticated().
const auth::Principal& caller(const http::Request& request);
// Middleware: the caller from the request's Bearer token (401 without one).
http::Middleware authenticated(auth::Authenticator& authenticator);
// Middleware: 429 with Retry-After past the caller's token's rate.
http::Middleware rate_limited(auth::TokenBuckets& buckets);
// Middleware: what the layers below throw in their own terms (storage
// failures) as the API's errors.
http::Middleware api_errors();
// The API's answer for a storage failure: what the client may know of it.
ApiError api_error(const storage::Error& e);

class Api {
 public:
  explicit Api(Dependencies deps);
  // Routes the request; errors propagate as http::Error (the server's chain
  // renders them: http::error_answers()).
  boost::asio::awaitable<http::Response> handle(http::Request& request);
  const http::Router& router() const { return router_; }

 private:
  boost::asio::awaitable<http::Response> healthz(http::Request& request);
  // Uploads (uploads.cpp).
  boost::asio::awaitable<http::Response> upload_form(http::Request& request);
  boost::asio::awaitable<http::Response> upload_raw(http::Request& request);
  // The files API (files.cpp): the caller's uploads, one upload, its bytes,
  // deleting it. Admins may see and delete everyone's.
  boost::asio::awaitable<http::Response> list_files(http::Request& request);
  boost::asio::awaitable<http::Response> get_file(http::Request& request);
  boost::asio::awaitable<http::Response> get_content(http::Request& request);
  boost::asio::awaitable<http::Response> delete_file(http::Request& request);
  // The upload `id` if the caller may see it; 404 (not_found) otherwise, the
  // same for another user's file, a malformed id and a missing one.
  boost::asio::awaitable<db::Upload> visible_upload(const auth::Principal& caller, std::string_view id);

  Dependencies deps_;
  std::unique_ptr<auth::TokenBuckets> buckets_;
  http::Router router_;
  http::Handler handler_;  // router_ behind api_errors()
};

// An upload as the API shows it: {file_id, file_name, file_size, upload_time,
// content_type, sha256}, and with `details` also its owner, status and
// completion time.
boost::json::object upload_json(const db::Upload& upload, bool details);

}  // namespace s3up::api
