#pragma once
// The HTTP API: routes a request to its handler. Handlers are plain coroutines
// over an http::Request, callable without a socket.
#include <chrono>
#include <cstdint>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>

#include "auth/authenticator.hpp"
#include "db/metadata_store.hpp"
#include "http/server.hpp"
#include "storage/object_store.hpp"

namespace s3up::upload {

struct Limits {
  std::uint64_t max_upload_bytes = 5ull << 30;
};

struct Downloads {
  bool redirect = false;  // 302 to a presigned URL (S3) instead of streaming the bytes
  std::chrono::seconds url_ttl{300};
};

struct Dependencies {
  storage::ObjectStore& store;
  db::MetadataStore& metadata;
  auth::Authenticator& authenticator;
  boost::asio::thread_pool& blocking;
  Limits limits;
  Downloads downloads{};
};

// Multipart framing around the file (boundary lines, part headers) is not
// counted against the size limit; a Content-Length this far above the limit
// is refused up front, anything closer is decided by counting file bytes.
inline constexpr std::uint64_t kMultipartFramingAllowance = 64 * 1024;

class Api {
 public:
  explicit Api(Dependencies deps) : deps_(deps) {}
  boost::asio::awaitable<http::Response> handle(http::Request& request);

 private:
  boost::asio::awaitable<http::Response> upload_form(http::Request& request);
  boost::asio::awaitable<http::Response> upload_raw(http::Request& request, std::string file_name);
  boost::asio::awaitable<auth::Principal> authenticate(http::Request& request);

  // The files API (files.cpp): the caller's uploads, one upload, its bytes,
  // deleting it. Admins may see and delete everyone's.
  boost::asio::awaitable<http::Response> list_files(http::Request& request);
  boost::asio::awaitable<http::Response> get_file(http::Request& request, std::string_view id);
  boost::asio::awaitable<http::Response> get_content(http::Request& request, std::string_view id);
  boost::asio::awaitable<http::Response> delete_file(http::Request& request, std::string_view id);
  // The upload `id` if the caller may see it; 404 (not_found) otherwise, the
  // same for another user's file, a malformed id and a missing one.
  boost::asio::awaitable<db::Upload> visible_upload(const auth::Principal& caller, std::string_view id);

  Dependencies deps_;
};

// An upload as the API shows it: {file_id, file_name, file_size, upload_time,
// content_type, sha256}, and with `details` also its owner, status and
// completion time.
boost::json::object upload_json(const db::Upload& upload, bool details);

// Checks applied to a client's file name, which is kept as metadata only:
// 1..1024 bytes of valid UTF-8 without control characters.
bool is_acceptable_file_name(std::string_view name);

}  // namespace s3up::upload
