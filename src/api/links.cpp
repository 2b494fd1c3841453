// Download links (POST /files/{id}/link), the links themselves on
// GET /files/{id}/content, and what a client's uploads are held to
// (GET /api/config): what a web page needs that curl does not.
#include <fmt/format.h>
#include <boost/url/parse.hpp>

#include "api/api.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

namespace s3up::api {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::string_view kKeyName = "download-links";

std::int64_t unix_now() { return util::now_micros() / 1'000'000; }

ApiError invalid_link() { return ApiError(errc::forbidden, "the download link is not valid or has expired"); }

}  // namespace

asio::awaitable<std::string> DownloadLinks::key() {
  {
    std::lock_guard lock(mutex_);
    if (!key_.empty()) co_return key_;
  }
  std::array<std::uint8_t, 32> random{};
  util::random_bytes(random);
  const std::string candidate = util::base64url(random);
  const std::string shared =
      co_await util::run_blocking(blocking_, [&] { return coordination_.shared_secret(kKeyName, candidate); });
  std::lock_guard lock(mutex_);
  key_ = shared;
  co_return key_;
}

std::string DownloadLinks::signature(const std::string& key, std::string_view file_id, std::int64_t expires,
                                     std::string_view disposition) const {
  // An attachment link signs what links signed before dispositions existed.
  const std::string message = disposition.empty() ? fmt::format("download\n{}\n{}", file_id, expires)
                                                  : fmt::format("download\n{}\n{}\n{}", file_id, expires, disposition);
  return util::base64url(util::hmac_sha256(key, message));
}

asio::awaitable<std::string> DownloadLinks::query_for(const std::string& file_id, std::int64_t expires,
                                                      bool show_inline) {
  const auto k = co_await key();
  const std::string_view disposition = show_inline ? "inline" : "";
  co_return fmt::format("expires={}&signature={}{}", expires, signature(k, file_id, expires, disposition),
                        show_inline ? "&disposition=inline" : "");
}

std::optional<DownloadLinks::Claim> DownloadLinks::claim_of(std::string_view target) {
  const auto url = boost::urls::parse_origin_form(target);
  if (!url) return std::nullopt;
  Claim claim;
  for (const auto& param : url->params()) {
    if (param.key == "expires") claim.expires = param.value;
    if (param.key == "signature") claim.signature = param.value;
    if (param.key == "disposition") claim.disposition = param.value;
  }
  if (claim.signature.empty()) return std::nullopt;
  return claim;
}

asio::awaitable<bool> DownloadLinks::valid(const std::string& file_id, const Claim& claim, std::int64_t now) {
  const auto expires = util::parse_integer<std::int64_t>(claim.expires);
  if (!expires || *expires < now) co_return false;
  const auto k = co_await key();
  if (!claim.disposition.empty() && claim.disposition != "inline") co_return false;
  co_return util::constant_time_equal(signature(k, file_id, *expires, claim.disposition), claim.signature);
}

http::Middleware signed_download(DownloadLinks& links, db::UploadStore& records, db::UserStore& users,
                                 asio::thread_pool& blocking) {
  return [&links, &records, &users, &blocking](http::Request& request,
                                               const http::Handler& next) -> asio::awaitable<http::Response> {
    const auto claim = DownloadLinks::claim_of(request.header.target());
    if (!claim) co_return co_await next(request);
    const std::string id(request.param("id"));
    const bool ok = util::is_uuid(id) && co_await links.valid(id, *claim, unix_now());
    if (!ok) throw invalid_link();
    const auto upload = co_await util::run_blocking(blocking, [&] { return records.get_upload(id); });
    if (!upload) throw ApiError(errc::not_found, "no such file");
    // A link speaks for its owner only while the owner may: one disabled
    // (or gone) stops their links at once, as their tokens stop.
    const auto owner_row = co_await util::run_blocking(blocking, [&] { return users.get_user(upload->user_id); });
    if (!owner_row || owner_row->disabled) throw invalid_link();
    // The link stands for its owner, for this file only (the route's).
    auth::Principal owner;
    owner.user_id = upload->user_id;
    owner.token_id = "link:" + id;  // its own rate-limit bucket
    request.context.user_id = owner.user_id;
    request.context.caller = std::move(owner);
    co_return co_await next(request);
  };
}

asio::awaitable<http::Response> Api::create_link(http::Request& request) {
  const auto upload = co_await visible_upload(caller(request), request.param("id"));
  if (upload.status != db::UploadStatus::complete) throw ApiError(errc::not_found, "no such file");
  // Optionally {"expires_in": "1d", "disposition": "inline"}.
  const auto body = co_await json_body(request);
  std::chrono::seconds ttl = deps_.downloads.url_ttl;
  bool show_inline = false;
  only_members(body, {"expires_in", "disposition"});
  for (const auto& member : body) {
    if (member.key() == "expires_in") {
      if (member.value().is_null()) continue;
      ttl = std::chrono::duration_cast<std::chrono::seconds>(duration_from(member.value(), "expires_in"));
      if (ttl.count() < 1 || ttl > deps_.downloads.max_link_ttl) {
        throw ApiError(errc::bad_request, fmt::format("expires_in must be between 1 s and {} s (download_link_max_ttl)",
                                                      deps_.downloads.max_link_ttl.count()));
      }
    } else if (member.key() == "disposition") {
      const auto* d = member.value().if_string();
      if (!d || (*d != "attachment" && *d != "inline")) {
        throw ApiError(errc::bad_request, "disposition must be \"attachment\" or \"inline\"");
      }
      show_inline = *d == "inline";
    }
  }
  const std::int64_t expires = unix_now() + ttl.count();
  const auto query = co_await links_.query_for(upload.id, expires, show_inline);
  const std::string url = absolute_url(request, "/files/" + upload.id + "/content?" + query);
  co_return http::Response::json(http::Status::ok,
                                 json::object{{"url", url},
                                              {"expires_at", util::rfc3339(expires * 1'000'000)},
                                              {"expires_in", ttl.count()},
                                              {"disposition", show_inline ? "inline" : "attachment"}});
}

asio::awaitable<http::Response> Api::client_config(http::Request& request) {
  const auto& principal = caller(request);
  const auto& limits = deps_.uploads.limits;
  json::array types;
  for (const auto& t : limits.allowed_types) types.emplace_back(t);
  json::object body{{"user", json::object{{"name", principal.user_name}, {"admin", principal.is_admin}}},
                    {"max_upload_bytes", limits.max_upload_bytes},
                    {"allowed_types", std::move(types)},
                    {"tus_endpoint", "/upload/resumable"},
                    {"download_link_ttl", deps_.downloads.url_ttl.count()}};
  // Where Locations point when the service is behind a proxy: a client may
  // send its token there too.
  if (!deps_.web.public_url.empty()) body["public_url"] = deps_.web.public_url;
  const auto quota = upload::effective_quota(principal, limits);
  if (quota == db::kNoQuota) {
    body["quota"] = nullptr;
  } else {
    const std::string name = principal.user_name;
    const auto user = co_await util::run_blocking(deps_.uploads.blocking,
                                                  [&] { return deps_.authenticator.users().find_user(name); });
    body["quota"] = json::object{{"bytes", quota}, {"used", user ? user->used_bytes : 0}};
  }
  co_return http::Response::json(http::Status::ok, body);
}

}  // namespace s3up::api
