// The admin API: users and their API tokens over HTTP, for admins only (an
// admin token, or a JWT with the admin claim). What the CLI's user and token
// commands do, from the app's own backend. Every call is logged with who
// made it.
#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/decode_view.hpp>
#include <boost/url/parse.hpp>

#include "api/api.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "util/units.hpp"

namespace s3up::api {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::size_t kMaxTokenNameBytes = 100;

json::value quota_json(const std::optional<std::int64_t>& quota) {
  return quota ? json::value(*quota) : json::value(nullptr);
}

json::object token_json(const db::ApiToken& t) {
  return {{"id", t.id},
          {"user", t.user_name},
          {"name", t.name},
          {"created_at", util::rfc3339(t.created_at)},
          {"expires_at", time_json(t.expires_at)},
          {"revoked_at", time_json(t.revoked_at)}};
}

// A user name from the path, percent-decoded.
std::string path_user_name(const http::Request& request) {
  const auto encoded = boost::urls::make_pct_string_view(request.param("name"));
  if (!encoded) throw ApiError(errc::bad_request, "the user name in the path is not valid percent-encoding");
  std::string name;
  encoded->decode({}, boost::urls::string_token::assign_to(name));
  return name;
}

// A quota as JSON gives it: bytes, a size ("10GiB"), or null (the default).
std::optional<std::int64_t> quota_from(const json::value& v) {
  if (v.is_null()) return std::nullopt;
  std::optional<std::uint64_t> bytes;
  if (v.is_int64() && v.get_int64() >= 0) bytes = static_cast<std::uint64_t>(v.get_int64());
  if (v.is_uint64()) bytes = v.get_uint64();
  if (v.is_string()) bytes = util::parse_size(v.get_string());
  if (!bytes || *bytes > static_cast<std::uint64_t>(db::kNoQuota)) {
    throw ApiError(errc::bad_request, "quota must be a number of bytes, a size such as \"10GiB\", or null");
  }
  return static_cast<std::int64_t>(*bytes);
}

bool boolean_from(const json::value& v, std::string_view field) {
  if (!v.is_bool()) throw ApiError(errc::bad_request, fmt::format("{} must be true or false", field));
  return v.get_bool();
}

// "tok_" and 16 hex digits (auth::issue_token).
bool is_token_id(std::string_view id) {
  return id.size() == 20 && id.starts_with("tok_") &&
         id.substr(4).find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

struct Page {
  std::int64_t limit = kDefaultPageSize;
  std::string after;  // the last name of the page before
};

Page parse_page(std::string_view target) {
  Page page;
  const auto url = boost::urls::parse_origin_form(target);
  if (!url) throw ApiError(errc::bad_request, "malformed query string");
  for (const auto& param : url->params()) {
    if (param.key == "limit") {
      page.limit = page_limit(param.value);
    } else if (param.key == "cursor" && !param.value.empty()) {
      const auto name = util::base64url_decode(param.value);
      if (!name || !name->starts_with("u:")) throw ApiError(errc::bad_request, "cursor is not one this service gave out");
      page.after = name->substr(2);
    }
  }
  return page;
}

}  // namespace

json::object user_json(const db::User& u) {
  return {{"id", u.id},
          {"name", u.name},
          {"admin", u.is_admin},
          {"disabled", u.disabled},
          {"deleting", u.deleting},
          {"issuer", u.issuer ? json::value(*u.issuer) : json::value(nullptr)},
          {"quota", quota_json(u.quota_bytes)},
          {"used_bytes", u.used_bytes},
          {"created_at", util::rfc3339(u.created_at)}};
}

http::Middleware admins_only() {
  return [](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    if (!caller(request).is_admin) throw ApiError(errc::forbidden, "only admins may manage users and tokens");
    co_return co_await next(request);
  };
}

asio::awaitable<db::User> Api::existing_user(const std::string& name) {
  auto user = co_await util::run_blocking(deps_.uploads.blocking, [&] { return accounts().find_user(name); });
  if (!user) throw ApiError(errc::not_found, "no such user");
  co_return std::move(*user);
}

asio::awaitable<http::Response> Api::admin_create_user(http::Request& request) {
  const auto body = co_await json_body(request);
  only_members(body, {"name", "admin", "quota", "issuer"});
  const auto* name_value = body.if_contains("name");
  if (!name_value || !name_value->is_string() || !auth::is_valid_user_name(name_value->get_string())) {
    throw ApiError(errc::bad_request, "name must be 1-255 bytes of text without control characters");
  }
  const std::string name(name_value->get_string());
  const bool admin = body.contains("admin") && boolean_from(body.at("admin"), "admin");
  const auto quota = body.contains("quota") ? quota_from(body.at("quota")) : std::nullopt;
  // With an issuer: the user a JWT from that issuer names (its user claim
  // is the name), made before their first sign-in, e.g. to set a quota.
  std::optional<std::string> issuer;
  if (const auto* v = body.if_contains("issuer"); v && !v->is_null()) {
    if (!v->is_string() || v->get_string().size() > 1000 || !util::is_displayable_text(v->get_string())) {
      throw ApiError(errc::bad_request, "issuer must be the JWT issuer (iss) as text");
    }
    issuer = std::string(v->get_string());
  }
  const auto user = co_await util::run_blocking(deps_.uploads.blocking, [&] {
    if (issuer) {
      if (accounts().find_user(name)) throw ApiError(errc::conflict, "a user with this name exists");
      if (!accounts().external_user(*issuer, name, util::now_micros())) {
        throw ApiError(errc::conflict, "a user with this name exists");
      }
    } else {
      accounts().create_user(name, admin);  // conflict (409) if the name is taken
    }
    db::UserChange change;
    change.quota_bytes.emplace(quota);
    if (issuer && admin) change.is_admin = true;
    return accounts().update_user(name, change);
  });
  if (!user) throw ApiError(errc::conflict, "the user is being deleted");
  spdlog::info("admin {}: created user {} (id {}){}", caller(request).user_name, user->name, user->id,
               admin ? ", an admin" : "");
  http::Response res = http::Response::json(http::Status::created, user_json(*user));
  res.set("Location", "/admin/users/" + util::percent_encode(user->name));
  co_return res;
}

asio::awaitable<http::Response> Api::admin_list_users(http::Request& request) {
  const auto page = parse_page(request.header.target());
  auto users = co_await util::run_blocking(deps_.uploads.blocking,
                                           [&] { return accounts().list_users(page.after, page.limit + 1); });
  const bool more = static_cast<std::int64_t>(users.size()) > page.limit;
  if (more) users.pop_back();
  json::array list;
  for (const auto& u : users) list.push_back(user_json(u));
  json::object body{{"users", std::move(list)}};
  body["next_cursor"] = more ? json::value(util::base64url("u:" + users.back().name)) : json::value(nullptr);
  co_return http::Response::json(http::Status::ok, body);
}

asio::awaitable<http::Response> Api::admin_get_user(http::Request& request) {
  const auto user = co_await existing_user(path_user_name(request));
  co_return http::Response::json(http::Status::ok, user_json(user));
}

asio::awaitable<http::Response> Api::admin_update_user(http::Request& request) {
  const std::string name = path_user_name(request);
  const auto body = co_await json_body(request);
  only_members(body, {"quota", "disabled", "admin"});
  if (body.empty()) throw ApiError(errc::bad_request, "nothing to change: give quota, disabled or admin");
  db::UserChange change;
  if (body.contains("quota")) change.quota_bytes.emplace(quota_from(body.at("quota")));
  if (body.contains("disabled")) change.disabled = boolean_from(body.at("disabled"), "disabled");
  if (body.contains("admin")) change.is_admin = boolean_from(body.at("admin"), "admin");
  const auto user =
      co_await util::run_blocking(deps_.uploads.blocking, [&] { return accounts().update_user(name, change); });
  if (!user) throw ApiError(errc::not_found, "no such user");
  spdlog::info("admin {}: changed user {}: {}", caller(request).user_name, user->name, json::serialize(body));
  co_return http::Response::json(http::Status::ok, user_json(*user));
}

// The user's files go the way DELETE /files/{id} deletes one (marked, the
// object, the row), by the janitor, called at once; the user goes with the
// last of them. With ?keep_files=true the user goes only if they have none.
asio::awaitable<http::Response> Api::admin_delete_user(http::Request& request) {
  const std::string name = path_user_name(request);
  bool keep_files = false;
  if (const auto url = boost::urls::parse_origin_form(request.header.target())) {
    for (const auto& param : url->params()) {
      if (param.key == "keep_files") {
        if (param.value != "true" && param.value != "false") {
          throw ApiError(errc::bad_request, "keep_files must be true or false");
        }
        keep_files = param.value == "true";
      }
    }
  }
  const auto& who = caller(request).user_name;
  if (keep_files) {
    const auto user = co_await existing_user(name);
    const bool gone =
        co_await util::run_blocking(deps_.uploads.blocking, [&] { return accounts().remove_user_if_empty(user.id); });
    if (!gone) throw ApiError(errc::conflict, "the user still has files (or uploads in progress)");
    spdlog::info("admin {}: deleted user {} (id {}), who had no files", who, name, user.id);
    co_return http::Response(http::Status::no_content);
  }
  const auto now = util::now_micros();
  const auto started =
      co_await util::run_blocking(deps_.uploads.blocking, [&] { return accounts().begin_user_deletion(name, now); });
  if (!started) throw ApiError(errc::not_found, "no such user");
  const bool gone = co_await util::run_blocking(deps_.uploads.blocking,
                                                [&] { return accounts().remove_user_if_empty(started->user_id); });
  if (gone) {
    spdlog::info("admin {}: deleted user {} (id {})", who, name, started->user_id);
    co_return http::Response(http::Status::no_content);
  }
  deps_.uploads.janitor_call->call();
  spdlog::info("admin {}: deleting user {} (id {}): {} file(s) go first", who, name, started->user_id,
               started->files);
  co_return http::Response::json(http::Status::accepted,
                                 json::object{{"status", "deleting"}, {"files", started->files}});
}

asio::awaitable<http::Response> Api::admin_create_token(http::Request& request) {
  const auto user = co_await existing_user(path_user_name(request));
  if (user.deleting) throw ApiError(errc::conflict, "the user is being deleted");
  const auto body = co_await json_body(request);
  only_members(body, {"name", "expires_in"});
  std::string token_name;
  if (const auto* v = body.if_contains("name")) {
    if (!v->is_string() || v->get_string().size() > kMaxTokenNameBytes ||
        !util::is_displayable_text(v->get_string())) {
      throw ApiError(errc::bad_request, "name must be text of at most 100 bytes");
    }
    token_name = std::string(v->get_string());
  }
  std::optional<std::chrono::milliseconds> ttl;
  if (const auto* v = body.if_contains("expires_in"); v && !v->is_null()) ttl = duration_from(*v, "expires_in");
  const auto issued = co_await util::run_blocking(deps_.uploads.blocking,
                                                  [&] { return auth::issue_token(accounts(), user, token_name, ttl); });
  spdlog::info("admin {}: created token {} for user {}", caller(request).user_name, issued.record.id, user.name);
  json::object out = token_json(issued.record);
  out["token"] = issued.secret;  // shown this once; only its hash is kept
  co_return http::Response::json(http::Status::created, out);
}

asio::awaitable<http::Response> Api::admin_list_tokens(http::Request& request) {
  const auto user = co_await existing_user(path_user_name(request));
  const auto tokens =
      co_await util::run_blocking(deps_.uploads.blocking, [&] { return accounts().list_tokens(user.id); });
  json::array list;
  for (const auto& t : tokens) list.push_back(token_json(t));
  co_return http::Response::json(http::Status::ok, json::object{{"tokens", std::move(list)}});
}

asio::awaitable<http::Response> Api::admin_revoke_token(http::Request& request) {
  const std::string id(request.param("id"));
  if (!is_token_id(id)) throw ApiError(errc::not_found, "no such active token");
  const auto now = util::now_micros();
  const bool revoked =
      co_await util::run_blocking(deps_.uploads.blocking, [&] { return accounts().revoke_token(id, now); });
  if (!revoked) throw ApiError(errc::not_found, "no such active token");
  spdlog::info("admin {}: revoked token {}", caller(request).user_name, id);
  co_return http::Response(http::Status::no_content);
}

// ---- webhooks --------------------------------------------------------------

namespace {

json::object delivery_json(const db::DeliveryRecord& d) {
  json::object o{{"seq", d.seq},
                 {"event_id", d.event_id},
                 {"type", d.event_type},
                 {"endpoint", util::redact_url_userinfo(d.endpoint)},
                 {"file_id", d.upload_id},
                 {"status", db::to_string(d.status)},
                 {"attempts", d.attempts},
                 {"created_at", util::rfc3339(d.created_at)},
                 {"delivered_at", time_json(d.delivered_at)}};
  o["next_attempt_at"] = d.status == db::DeliveryStatus::pending ? time_json(d.next_attempt_at) : json::value(nullptr);
  o["last_error"] = d.last_error;
  return o;
}

}  // namespace

db::WebhookOutbox& Api::webhook_outbox() const {
  if (!deps_.webhooks) throw ApiError(errc::not_found, "webhooks are not kept by this service");
  return *deps_.webhooks;
}

asio::awaitable<http::Response> Api::admin_list_webhooks(http::Request& request) {
  auto& outbox = webhook_outbox();
  std::int64_t limit = kDefaultPageSize;
  std::optional<db::DeliveryStatus> status;
  std::optional<std::int64_t> before;
  const auto url = boost::urls::parse_origin_form(request.header.target());
  if (!url) throw ApiError(errc::bad_request, "malformed query string");
  for (const auto& param : url->params()) {
    if (param.key == "limit") {
      limit = page_limit(param.value);
    } else if (param.key == "status" && !param.value.empty()) {
      status = db::delivery_status_from(param.value);
      if (!status) throw ApiError(errc::bad_request, "status must be pending, delivered or dead");
    } else if (param.key == "cursor" && !param.value.empty()) {
      const auto raw = util::base64url_decode(param.value);  // "w:<seq>"
      if (raw && raw->starts_with("w:")) before = util::parse_integer<std::int64_t>(std::string_view(*raw).substr(2));
      if (!before) throw ApiError(errc::bad_request, "cursor is not one this service gave out");
    }
  }
  auto rows = co_await util::run_blocking(deps_.uploads.blocking,
                                          [&] { return outbox.list_deliveries(status, before, limit + 1); });
  const bool more = static_cast<std::int64_t>(rows.size()) > limit;
  if (more) rows.pop_back();
  json::array list;
  for (const auto& d : rows) list.push_back(delivery_json(d));
  const auto disabled = co_await util::run_blocking(deps_.uploads.blocking, [&] { return outbox.disabled_endpoints(); });
  json::array endpoints;
  for (const auto& e : disabled) {
    endpoints.push_back(json::object{{"url", util::redact_url_userinfo(e.url)},
                                     {"disabled_at", util::rfc3339(e.disabled_at)},
                                     {"reason", e.reason}});
  }
  json::object body{{"deliveries", std::move(list)}, {"disabled_endpoints", std::move(endpoints)}};
  body["next_cursor"] = more ? json::value(util::base64url("w:" + std::to_string(rows.back().seq))) : json::value(nullptr);
  co_return http::Response::json(http::Status::ok, body);
}

asio::awaitable<http::Response> Api::admin_retry_webhooks(http::Request& request) {
  auto& outbox = webhook_outbox();
  const auto body = co_await json_body(request);
  only_members(body, {"event_id", "dead"});
  const auto* id = body.if_contains("event_id");
  const auto* dead = body.if_contains("dead");
  const bool all_dead = dead && dead->is_bool() && dead->get_bool();
  if ((id != nullptr) == all_dead || (id && !id->is_string())) {
    throw ApiError(errc::bad_request, "give either {\"event_id\": \"msg_...\"} or {\"dead\": true}");
  }
  std::optional<std::string> event;
  if (id) event = std::string(id->get_string());
  const auto now = util::now_micros();
  const auto n = co_await util::run_blocking(deps_.uploads.blocking, [&] { return outbox.retry_deliveries(event, now); });
  if (event && n == 0) throw ApiError(errc::not_found, "no undelivered event with that id");
  spdlog::info("admin {}: {} webhook deliver{} due again ({})", caller(request).user_name, n, n == 1 ? "y" : "ies",
               event ? *event : "every dead one");
  co_return http::Response::json(http::Status::ok, json::object{{"retried", n}});
}

asio::awaitable<http::Response> Api::admin_enable_webhook_endpoint(http::Request& request) {
  auto& outbox = webhook_outbox();
  const auto body = co_await json_body(request);
  only_members(body, {"url"});
  const auto* url = body.if_contains("url");
  if (!url || !url->is_string()) throw ApiError(errc::bad_request, "give {\"url\": \"...\"}, as in webhook_urls");
  const std::string endpoint(url->get_string());
  const bool enabled =
      co_await util::run_blocking(deps_.uploads.blocking, [&] { return outbox.enable_endpoint(endpoint); });
  if (!enabled) throw ApiError(errc::not_found, "that endpoint is not disabled");
  spdlog::info("admin {}: enabled webhook endpoint {}", caller(request).user_name, util::redact_url_userinfo(endpoint));
  co_return http::Response(http::Status::no_content);
}

}  // namespace s3up::api
