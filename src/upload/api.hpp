#pragma once
// The HTTP API: routes a request to its handler. Handlers are plain coroutines
// over an http::Request, callable without a socket.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>

#include "api/error.hpp"
#include "auth/authenticator.hpp"
#include "db/metadata_store.hpp"
#include "http/server.hpp"
#include "storage/object_store.hpp"

namespace s3up::upload {

struct Limits {
  std::uint64_t max_upload_bytes = 5ull << 30;
  unsigned max_concurrent_uploads = 0;     // per user, in this instance; 0 = no limit
  std::vector<std::string> allowed_types;  // patterns ("image/*", "application/pdf"); empty = any
  std::optional<std::uint64_t> default_quota;  // bytes per user without a quota of their own; none = unlimited
};

// Whether a media type (parameters ignored, any case) matches one of the
// patterns: "type/subtype", "type/*", "*/*" or "*".
bool type_allowed(std::string_view media_type, const std::vector<std::string>& patterns);

struct Downloads {
  bool redirect = false;  // 302 to a presigned URL (S3) instead of streaming the bytes
  std::chrono::seconds url_ttl{300};
};

// The uploads this process is receiving right now, by id: the janitor leaves
// their rows alone however old they are.
class LiveUploads {
 public:
  // Registers an upload of `user_id`; false (and nothing registered) if that
  // user already has `max_per_user` in progress here (0: no limit).
  bool add(const std::string& id, std::int64_t user_id, unsigned max_per_user);
  void remove(const std::string& id);
  bool contains(const std::string& id) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> owners_;  // upload id -> user id
  std::unordered_map<std::int64_t, unsigned> per_user_;
};

struct Dependencies {
  storage::ObjectStore& store;
  db::MetadataStore& metadata;
  auth::Authenticator& authenticator;
  boost::asio::thread_pool& blocking;
  Limits limits;
  Downloads downloads{};
  std::shared_ptr<LiveUploads> live = std::make_shared<LiveUploads>();
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

class Api {
 public:
  explicit Api(Dependencies deps);
  // The route table; errors propagate as exceptions (the server's chain
  // renders them: http::error_answers()).
  boost::asio::awaitable<http::Response> handle(http::Request& request);
  const http::Router& router() const { return router_; }

 private:
  boost::asio::awaitable<http::Response> healthz(http::Request& request);
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
};

// Cleans up after uploads whose process died (a crash, kill -9, a lost
// machine): their rows stay `pending`, with an S3 multipart upload or a local
// temporary file, and sometimes a committed object, behind them. At start-up
// and then every `interval`, rows pending for longer than `stale_after` (and
// not being received by this process) have what they left removed and are
// marked `failed`. With several instances on one database only one cleans at
// a time (MetadataStore::try_lock). It also finishes deletions a crash
// interrupted (rows left 'deleting').
struct JanitorReport {
  int cleaned = 0;         // rows marked failed, their leftovers removed
  int deletions_finished = 0;  // rows a crash left 'deleting': object and row removed
  int failed = 0;          // rows whose clean-up failed this time (tried again next time)
  bool skipped = false;    // another instance held the lock
};

class Janitor {
 public:
  Janitor(const Dependencies& deps, std::chrono::milliseconds stale_after) : deps_(deps), stale_after_(stale_after) {}
  boost::asio::awaitable<JanitorReport> run_once();
  // run_once now and every `interval` until the coroutine is cancelled or
  // the io_context stops.
  boost::asio::awaitable<void> run_every(std::chrono::milliseconds interval);

 private:
  boost::asio::awaitable<void> finish_deletions(JanitorReport& report);

  Dependencies deps_;
  std::chrono::milliseconds stale_after_;
};

// The last steps of deleting an upload, in their crash-safe order: its
// object (absent is fine), then its row (usage settled). True if this call
// removed the row. DELETE /files/{id} marks the row 'deleting' first; the
// janitor finishes rows a crash left so.
boost::asio::awaitable<bool> remove_object_then_row(const Dependencies& deps, const db::Upload& upload);

// An upload as the API shows it: {file_id, file_name, file_size, upload_time,
// content_type, sha256}, and with `details` also its owner, status and
// completion time.
boost::json::object upload_json(const db::Upload& upload, bool details);

// Checks applied to a client's file name, which is kept as metadata only:
// 1..1024 bytes of valid UTF-8 without C0/C1 control characters, DEL, or
// bidirectional formatting characters (embeddings, overrides, isolates, marks).
bool is_acceptable_file_name(std::string_view name);

// A client's declared Content-Type as it is stored and served back: one
// media type, "type/subtype" in lower case, plus its charset when that is one
// of a few well-known ones; nullopt if the text is not a single valid media
// type (a list, stray characters...), and then the bytes decide.
std::optional<std::string> normalize_media_type(std::string_view declared);

}  // namespace s3up::upload
