#pragma once
// The HTTP API: the route table and its handlers. Handlers are thin: they
// read what HTTP says (headers, path, body) and leave the rules to upload/
// (sessions, policy) and the bytes to storage/. They are plain coroutines
// over an http::Request, callable without a socket (tests/unit/api_test.cpp).
#include <atomic>
#include <chrono>
#include <initializer_list>
#include <optional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "api/error.hpp"
#include "auth/authenticator.hpp"
#include "http/router.hpp"
#include "upload/engine.hpp"
#include "upload/file_json.hpp"
#include "util/time.hpp"

namespace s3up::api {

struct Downloads {
  bool redirect = false;  // 302 to a presigned URL (S3) instead of streaming the bytes
  std::chrono::seconds url_ttl{300};        // a download link's lifetime unless its maker asks for another
  std::chrono::seconds max_link_ttl{7 * 24 * 3600};  // the longest a maker may ask for
};

// Upload links' lifetimes (POST /upload-links).
struct UploadLinkLimits {
  std::chrono::milliseconds default_lifetime{7LL * 24 * 3600 * 1000};
  std::chrono::milliseconds max_lifetime{30LL * 24 * 3600 * 1000};
};

// How the service is reached from outside, and from which web pages.
struct Web {
  std::string public_url;  // "https://files.example.com": the base of absolute URLs; empty: from the request
  // Peers (IP addresses) whose X-Forwarded-Proto and X-Forwarded-Host are believed.
  std::vector<std::string> trusted_proxies;
  std::vector<std::string> cors_origins;  // origins a browser may call the API from; "*": any
};

// GET /readyz: whether a balancer should send this instance requests. The
// database answers a trivial query, the store a cheap probe (ObjectStore::
// check_ready), and shutdown has not begun. Each probe's answer is kept for
// kKeptFor, and only one request at a time asks again (the others get the
// last answer), so a storm of probes costs the database and the store
// nothing. /healthz stays a liveness check.
class Readiness {
 public:
  static constexpr std::chrono::seconds kKeptFor{2};
  Readiness(db::MetadataStore& database, storage::ObjectStore& store, boost::asio::thread_pool& blocking)
      : database_(database), store_(store), blocking_(blocking) {}
  // From the moment shutdown begins, not ready: balancers drain the
  // instance while its connections finish.
  void drain() { draining_ = true; }
  struct Report {
    bool ready = false;
    bool draining = false;
    std::string database, storage;  // "ok" or "error: ..."
  };
  boost::asio::awaitable<Report> check();

 private:
  struct Probe {
    std::mutex mutex;
    std::string answer = "not checked yet";
    std::chrono::steady_clock::time_point at{};
    bool asking = false;
  };
  // The kept answer, asking `ask` again first if it is older than kKeptFor
  // and nobody else is asking.
  template <class Ask>
  boost::asio::awaitable<std::string> answer(Probe& probe, Ask ask);

  db::MetadataStore& database_;
  storage::ObjectStore& store_;
  boost::asio::thread_pool& blocking_;
  std::atomic<bool> draining_{false};
  Probe database_probe_, storage_probe_;
};

struct Dependencies {
  upload::Services uploads;
  auth::Authenticator& authenticator;
  Downloads downloads{};
  auth::RateLimit rate_limit{};  // requests per token
  Web web{};
  upload::ResumableSettings resumable{};
  UploadLinkLimits upload_links{};
  db::WebhookOutbox* webhooks = nullptr;  // for /admin/webhooks
  Readiness* readiness = nullptr;         // for /readyz (none: 404)
  bool metrics = true;                    // GET /metrics here, for loopback clients (false: it has its own listener)
};

// Multipart framing around the file (boundary lines, part headers) is not
// counted against the size limit; a Content-Length this far above the limit
// is refused up front, anything closer is decided by counting file bytes.
inline constexpr std::uint64_t kMultipartFramingAllowance = 64 * 1024;

// Download links: a URL for one file that works without a token until it
// expires (browsers cannot put a Bearer token on a plain navigation). The
// query carries the expiry and an HMAC-SHA256 of the file id and the expiry,
// under a key every instance on the database shares (db::Coordination).
class DownloadLinks {
 public:
  DownloadLinks(db::Coordination& coordination, boost::asio::thread_pool& blocking)
      : coordination_(coordination), blocking_(blocking) {}
  // "expires=<unix seconds>&signature=<base64url>" for `file_id`, with
  // "&disposition=inline" (signed too) for a link that shows the file in
  // the browser rather than saving it.
  boost::asio::awaitable<std::string> query_for(const std::string& file_id, std::int64_t expires, bool show_inline);
  // What a request target's query says of a link: nothing (no signature),
  // or its expiry (as given), its disposition and signature.
  struct Claim {
    std::string expires, signature, disposition;
  };
  static std::optional<Claim> claim_of(std::string_view target);
  // Whether `claim` signs `file_id` and has not expired at `now` (unix seconds).
  boost::asio::awaitable<bool> valid(const std::string& file_id, const Claim& claim, std::int64_t now);

 private:
  boost::asio::awaitable<std::string> key();
  std::string signature(const std::string& key, std::string_view file_id, std::int64_t expires,
                        std::string_view disposition) const;

  db::Coordination& coordination_;
  boost::asio::thread_pool& blocking_;
  std::mutex mutex_;
  std::string key_;  // fetched (or made) on first use
};

// The authenticated caller of a request that passed authenticated().
const auth::Principal& caller(const http::Request& request);
// Middleware: the caller from the request's Bearer token (401 without one),
// unless an earlier step (signed_download) already established it. An
// upload link's token is refused (403) unless `links` says it may be used:
// a link only uploads.
enum class UploadLinkUse { refused, allowed };
http::Middleware authenticated(auth::Authenticator& authenticator, UploadLinkUse links = UploadLinkUse::refused);
// Middleware: the caller from the upload link token in the path (/u/{token}/...).
http::Middleware upload_link_in_path(auth::Authenticator& authenticator);
// Middleware for a file's bytes: a valid download link stands for its
// owner's token; a link that is not valid (forged, for another file,
// expired) is 403.
http::Middleware signed_download(DownloadLinks& links, db::UploadStore& records, db::UserStore& users,
                                 boost::asio::thread_pool& blocking);
// Middleware: 429 with Retry-After past the caller's token's rate.
http::Middleware rate_limited(auth::TokenBuckets& buckets);
// Middleware: CORS for the browsers of `web.cors_origins`: preflights
// answered, answers marked readable (with the tus headers exposed).
http::Middleware cors(const Web& web);
// Middleware every tus route runs first: 412 for a Tus-Resumable version
// other than ours.
http::Middleware tus_version();
// Middleware outside the error answers: Tus-Resumable on every answer
// under /upload/resumable, errors included, the router's own 404 and 405 too.
http::Middleware tus_resumable_header();
// Middleware: 403 for a caller who is not an admin (the admin API).
http::Middleware admins_only();
// Middleware: what the layers below throw in their own terms (storage,
// database, identity and upload failures) as the API's errors.
http::Middleware api_errors();
// The API's answer for a failure of a layer below: what the client may know
// of it.
ApiError api_error(const storage::Error& e);
ApiError api_error(const db::Error& e);
ApiError api_error(const auth::Unauthorized& e);
ApiError api_error(const upload::Error& e);
// The same for any failure: nullopt if it is not one of those (an ApiError
// already, or a fault that becomes 500).
std::optional<ApiError> api_error(const std::exception_ptr& failure);

// A listing's `limit` parameter: a whole number from 1 to kMaxPageSize (400 otherwise).
inline constexpr std::int64_t kDefaultPageSize = 100;
inline constexpr std::int64_t kMaxPageSize = 1000;
std::int64_t page_limit(std::string_view value);

// 400 for a member of a JSON body other than `known`: a typo must not pass
// as a no-op.
void only_members(const boost::json::object& body, std::initializer_list<std::string_view> known);
using upload::time_json;

// A request's JSON object body (at most kMaxJsonBody bytes; an empty body is
// an empty object): 400 for anything else, 413 past the limit.
inline constexpr std::size_t kMaxJsonBody = 64 * 1024;
boost::asio::awaitable<boost::json::object> json_body(http::Request& request);
// A duration as JSON gives it: seconds, or text such as "1h" or "7d"; 400
// (naming `field`) for anything else or one not above zero.
std::chrono::milliseconds duration_from(const boost::json::value& value, std::string_view field);

class Api {
 public:
  explicit Api(Dependencies deps);
  // Routes the request; errors propagate as http::Error (the server's chain
  // renders them: http::error_answers()).
  boost::asio::awaitable<http::Response> handle(http::Request& request);
  const http::Router& router() const { return router_; }
  upload::Uploads& uploads() { return uploads_; }

 private:
  boost::asio::awaitable<http::Response> healthz(http::Request& request);
  boost::asio::awaitable<http::Response> readyz(http::Request& request);
  // Prometheus metrics (metrics::registry()), to loopback clients only.
  boost::asio::awaitable<http::Response> metrics(http::Request& request);
  // The web page and its assets (web.cpp).
  boost::asio::awaitable<http::Response> web_page(http::Request& request);
  boost::asio::awaitable<http::Response> web_asset(http::Request& request);
  // Uploads (uploads.cpp).
  boost::asio::awaitable<http::Response> upload_form(http::Request& request);
  boost::asio::awaitable<http::Response> upload_raw(http::Request& request);
  // Resumable uploads, tus 1.0.0 (tus_handlers.cpp).
  boost::asio::awaitable<http::Response> tus_options(http::Request& request);
  boost::asio::awaitable<http::Response> tus_create(http::Request& request);
  boost::asio::awaitable<http::Response> tus_head(http::Request& request);
  boost::asio::awaitable<http::Response> tus_patch(http::Request& request);
  boost::asio::awaitable<http::Response> tus_delete(http::Request& request);
  boost::asio::awaitable<http::Response> tus_override(http::Request& request);  // POST with X-HTTP-Method-Override
  // The absolute URL of `path` as the client reached us (public_url, or the
  // request's Host, or a trusted proxy's forwarded headers).
  std::string absolute_url(const http::Request& request, std::string_view path) const;
  // The files API (files.cpp): the caller's uploads, one upload, its bytes,
  // deleting it. Admins may see and delete everyone's.
  boost::asio::awaitable<http::Response> list_files(http::Request& request);
  boost::asio::awaitable<http::Response> get_file(http::Request& request);
  boost::asio::awaitable<http::Response> get_content(http::Request& request);
  boost::asio::awaitable<http::Response> delete_file(http::Request& request);
  // The admin API (admin.cpp): users and their tokens.
  boost::asio::awaitable<http::Response> admin_create_user(http::Request& request);
  boost::asio::awaitable<http::Response> admin_list_users(http::Request& request);
  boost::asio::awaitable<http::Response> admin_get_user(http::Request& request);
  boost::asio::awaitable<http::Response> admin_update_user(http::Request& request);
  boost::asio::awaitable<http::Response> admin_delete_user(http::Request& request);
  boost::asio::awaitable<http::Response> admin_create_token(http::Request& request);
  boost::asio::awaitable<http::Response> admin_list_tokens(http::Request& request);
  boost::asio::awaitable<http::Response> admin_revoke_token(http::Request& request);
  db::WebhookOutbox& webhook_outbox() const;  // not_found when the service keeps none
  boost::asio::awaitable<http::Response> admin_list_webhooks(http::Request& request);
  boost::asio::awaitable<http::Response> admin_retry_webhooks(http::Request& request);
  boost::asio::awaitable<http::Response> admin_enable_webhook_endpoint(http::Request& request);
  boost::asio::awaitable<db::User> existing_user(const std::string& name);  // 404 if there is none
  db::UserStore& accounts() const { return deps_.authenticator.users(); }
  // Upload links (upload_links.cpp): made, listed and revoked by their
  // owner; the page, its facts and PUT through a link's URL.
  boost::asio::awaitable<http::Response> create_upload_link(http::Request& request);
  boost::asio::awaitable<http::Response> list_upload_links(http::Request& request);
  boost::asio::awaitable<http::Response> revoke_upload_link(http::Request& request);
  boost::asio::awaitable<http::Response> upload_link_page(http::Request& request);
  boost::asio::awaitable<http::Response> upload_link_info(http::Request& request);
  // A download link for one of the caller's files: {url, expires_at}.
  boost::asio::awaitable<http::Response> create_link(http::Request& request);
  // What the caller's uploads are held to (the web page refuses early): sizes,
  // types, quota and what is used of it.
  boost::asio::awaitable<http::Response> client_config(http::Request& request);
  // The upload `id` if the caller may see it; 404 (not_found) otherwise, the
  // same for another user's file, a malformed id and a missing one.
  boost::asio::awaitable<db::Upload> visible_upload(const auth::Principal& caller, std::string_view id);

  Dependencies deps_;
  upload::Uploads uploads_;
  DownloadLinks links_;
  std::unique_ptr<auth::TokenBuckets> buckets_;
  http::Router router_;
  http::Handler handler_;  // router_ behind api_errors()
};

using upload::file_json;
// Who asks, for the pre-upload hook: `source` and the request's address and id.
upload::Requester requester(const http::Request& request, std::string_view source);
// A user as the admin API shows it.
boost::json::object user_json(const db::User& user);
// An upload link as its owner sees it (never its URL, which only creation shows).
boost::json::object upload_link_json(const db::UploadLink& link);

// GET /metrics' answer: every metric of metrics::registry(), in the
// Prometheus text format (for a listener of its own, metrics_listen).
http::Response metrics_answer();

}  // namespace s3up::api
