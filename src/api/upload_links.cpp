// Upload links: a URL a user hands to people without an account, through
// which they upload into the user's account (Dropbox's file requests,
// Supabase's signed upload URLs). The link's credential is the token in its
// URL (/u/<token>), kept only as its SHA-256; it works only for uploads (the
// page at its URL, PUT <url>/<name>, and tus with the token as its bearer),
// within its file count, byte total and types, until it expires or is
// revoked. Its owner makes, lists and revokes links with their own token.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/json/array.hpp>
#include <boost/url/decode_view.hpp>

#include "api/api.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "util/units.hpp"

namespace s3up::api {

namespace asio = boost::asio;
namespace json = boost::json;
using boost::beast::http::field;

namespace {

constexpr std::size_t kMaxNoteBytes = 1000;
constexpr std::int64_t kMaxLinksListed = 1000;

json::value optional_number(const std::optional<std::int64_t>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::array types_json(std::string_view list) {
  json::array out;
  for (const auto& t : upload::parse_type_patterns(list).value_or(std::vector<std::string>{})) out.emplace_back(t);
  return out;
}

// A positive whole number from JSON (a count, or bytes as a number or a size).
std::optional<std::int64_t> positive(const json::object& body, std::string_view field, bool size) {
  const auto* v = body.if_contains(field);
  if (!v || v->is_null()) return std::nullopt;
  std::optional<std::uint64_t> n;
  if (v->is_int64() && v->get_int64() > 0) n = static_cast<std::uint64_t>(v->get_int64());
  if (v->is_uint64()) n = v->get_uint64();
  if (size && v->is_string()) n = util::parse_size(v->get_string());
  if (!n || *n == 0 || *n > static_cast<std::uint64_t>(db::kNoQuota)) {
    throw ApiError(errc::bad_request, size ? fmt::format("{} must be a number of bytes or a size such as \"2GiB\"", field)
                                           : fmt::format("{} must be a whole number above 0", field));
  }
  return static_cast<std::int64_t>(*n);
}

// An HTML page for a link that does not work: the person holding it
// should read what happened, not a JSON error.
http::Response link_page(http::Status status, std::string_view title, std::string_view text) {
  http::Response res(status);
  res.body() = fmt::format(
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
      "content=\"width=device-width\"><title>{0}</title></head><body style=\"font-family:sans-serif;max-width:32rem;"
      "margin:4rem auto;padding:0 1rem\"><h1>{0}</h1><p>{1}</p></body></html>",
      title, text);
  res.set(field::content_type, "text/html; charset=utf-8");
  res.set(field::cache_control, "no-store");
  res.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  return res;
}

}  // namespace

json::object upload_link_json(const db::UploadLink& l) {
  return {{"id", l.id},
          {"note", l.note},
          {"max_files", optional_number(l.max_files)},
          {"max_bytes", optional_number(l.max_bytes)},
          {"allowed_types", types_json(l.allowed_types)},
          {"files", l.files_used},
          {"bytes", l.bytes_used},
          {"created_at", util::rfc3339(l.created_at)},
          {"expires_at", util::rfc3339(l.expires_at)},
          {"revoked_at", time_json(l.revoked_at)}};
}

http::Middleware upload_link_in_path(auth::Authenticator& authenticator) {
  return [&authenticator](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    std::optional<auth::Principal> found;
    try {
      found = co_await authenticator.authenticate_link(request.param("token"));
    } catch (const auth::LinkGone&) {
      throw;  // 410
    } catch (const auth::Unauthorized&) {
      // The URL names no link: not found, as any other path.
    }
    if (!found) throw ApiError(errc::not_found, "no such upload link");
    auto principal = std::move(*found);
    request.context.user_id = principal.user_id;
    request.context.caller = std::move(principal);
    co_return co_await next(request);
  };
}

asio::awaitable<http::Response> Api::create_upload_link(http::Request& request) {
  const auto& owner = caller(request);
  const auto body = co_await json_body(request);
  only_members(body, {"expires_in", "max_files", "max_bytes", "allowed_types", "note"});
  const auto& limits = deps_.upload_links;
  std::chrono::milliseconds lifetime = limits.default_lifetime;
  if (const auto* v = body.if_contains("expires_in"); v && !v->is_null()) lifetime = duration_from(*v, "expires_in");
  if (lifetime > limits.max_lifetime) {
    throw ApiError(errc::bad_request, fmt::format("expires_in is at most {} s here (upload_link_max_lifetime)",
                                                  std::chrono::duration_cast<std::chrono::seconds>(
                                                      limits.max_lifetime).count()));
  }
  db::UploadLink link;
  link.user_id = owner.user_id;
  link.max_files = positive(body, "max_files", false);
  link.max_bytes = positive(body, "max_bytes", true);
  if (const auto* v = body.if_contains("allowed_types"); v && !v->is_null()) {
    std::string list;
    if (v->is_string()) {
      list = std::string(v->get_string());
    } else if (v->is_array()) {
      for (const auto& t : v->get_array()) {
        if (!t.is_string()) throw ApiError(errc::bad_request, "allowed_types must be a list of media types");
        list += (list.empty() ? "" : ",") + std::string(t.get_string());
      }
    }
    const auto patterns = upload::parse_type_patterns(list);
    if (!patterns || (v->is_array() && patterns->size() != v->get_array().size())) {
      throw ApiError(errc::bad_request, "allowed_types must be media types or patterns such as image/*, application/pdf");
    }
    link.allowed_types = fmt::format("{}", fmt::join(*patterns, ","));
  }
  if (const auto* v = body.if_contains("note"); v && !v->is_null()) {
    if (!v->is_string() || v->get_string().size() > kMaxNoteBytes || !util::is_displayable_text(v->get_string())) {
      throw ApiError(errc::bad_request, "note must be text of at most 1000 bytes, without control characters");
    }
    link.note = std::string(v->get_string());
  }
  std::array<std::uint8_t, 8> id_bytes{};
  util::random_bytes(id_bytes);
  link.id = "lnk_" + util::to_hex(id_bytes);
  link.created_at = util::now_micros();
  link.expires_at = link.created_at + std::chrono::duration_cast<std::chrono::microseconds>(lifetime).count();
  const std::string secret = auth::generate_link_secret();
  co_await util::run_blocking(deps_.uploads.blocking,
                              [&] { accounts().create_upload_link(link, auth::hash_token(secret)); });
  spdlog::info("user {} made upload link {} (expires {})", owner.user_id, link.id, util::rfc3339(link.expires_at));
  json::object out = upload_link_json(link);
  // The URL carries the link's secret: shown this once, never stored.
  out["url"] = absolute_url(request, "/u/" + secret);
  co_return http::Response::json(http::Status::created, out);
}

asio::awaitable<http::Response> Api::list_upload_links(http::Request& request) {
  const auto user_id = caller(request).user_id;
  const auto links = co_await util::run_blocking(
      deps_.uploads.blocking, [&] { return accounts().list_upload_links(user_id, kMaxLinksListed); });
  json::array list;
  for (const auto& l : links) list.push_back(upload_link_json(l));
  co_return http::Response::json(http::Status::ok, json::object{{"links", std::move(list)}});
}

asio::awaitable<http::Response> Api::revoke_upload_link(http::Request& request) {
  const std::string id(request.param("id"));
  const auto user_id = caller(request).user_id;
  const auto now = util::now_micros();
  bool revoked = false;
  if (id.starts_with("lnk_") && id.size() == 20) {
    revoked = co_await util::run_blocking(deps_.uploads.blocking,
                                          [&] { return accounts().revoke_upload_link(id, user_id, now); });
  }
  if (!revoked) throw ApiError(errc::not_found, "no such active upload link");
  spdlog::info("user {} revoked upload link {}", user_id, id);
  co_return http::Response(http::Status::no_content);
}

// GET /u/{token}: the web page, which sees the /u/ path and opens in
// drop-box mode; a link that does not work gets a page saying why.
asio::awaitable<http::Response> Api::upload_link_page(http::Request& request) {
  std::optional<http::Response> refusal;
  try {
    co_await deps_.authenticator.authenticate_link(request.param("token"));
  } catch (const auth::LinkGone& e) {
    refusal = link_page(http::Status::gone, "This upload link no longer works",
                        std::string(e.what()) + ". Ask the person who sent it for a new one.");
  } catch (const auth::Unauthorized&) {
    refusal = link_page(http::Status::not_found, "No such upload link",
                        "Check that the whole link was copied, or ask the person who sent it for a new one.");
  }
  if (refusal) co_return std::move(*refusal);
  co_return co_await web_page(request);
}

// GET /u/{token}/info: what the page in drop-box mode shows and checks
// before a byte is sent: the note, the limits, what is left of them.
asio::awaitable<http::Response> Api::upload_link_info(http::Request& request) {
  const auto& principal = caller(request);
  const auto id = principal.link->id;
  const auto link = co_await util::run_blocking(deps_.uploads.blocking,
                                                [&] { return deps_.uploads.records.get_upload_link(id); });
  if (!link) throw ApiError(errc::gone, "this upload link was revoked");
  json::object body{{"note", link->note},
                    {"expires_at", util::rfc3339(link->expires_at)},
                    {"allowed_types", types_json(link->allowed_types)},
                    {"max_upload_bytes", deps_.uploads.limits.max_upload_bytes},
                    {"tus_endpoint", "/upload/resumable"}};
  body["files_left"] = link->max_files ? json::value(*link->max_files - link->files_used) : json::value(nullptr);
  body["bytes_left"] = link->max_bytes ? json::value(*link->max_bytes - link->bytes_used) : json::value(nullptr);
  co_return http::Response::json(http::Status::ok, body);
}

}  // namespace s3up::api
