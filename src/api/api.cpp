#include "api/api.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <boost/json/parse.hpp>

#include "metrics/metrics.hpp"
#include "util/blocking.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "util/units.hpp"

namespace s3up::api {

namespace asio = boost::asio;
namespace json = boost::json;
using boost::beast::http::field;
using boost::beast::http::verb;

ApiError api_error(const storage::Error& e) {
  switch (e.failure()) {
    case storage::Failure::not_found: return ApiError(errc::not_found, "no such object");
    case storage::Failure::unavailable: return ApiError(errc::storage_unavailable, e.what());
    case storage::Failure::rejected: return ApiError(errc::storage_error, e.what());
    case storage::Failure::full: return ApiError(errc::insufficient_storage, e.what());
    case storage::Failure::too_large: return ApiError(errc::file_too_large, e.what());
    case storage::Failure::refused:
    case storage::Failure::internal: break;
  }
  return ApiError(errc::internal, e.what());
}

ApiError api_error(const db::Error& e) {
  switch (e.failure()) {
    case db::Failure::conflict: return ApiError(errc::conflict, e.what());
    case db::Failure::unavailable: break;
  }
  return ApiError(errc::database_unavailable, e.what());
}

ApiError api_error(const auth::Unauthorized& e) {
  // RFC 6750 §3: a refused credential is invalid_token, with the reason;
  // a request with none gets the challenge alone.
  if (!e.presented()) return ApiError(errc::unauthorized, e.what());
  std::string description;
  for (const char c : std::string_view(e.what())) {
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') description += c;  // the quoted-string's safe subset
  }
  return ApiError(errc::unauthorized, e.what(),
                  http::Headers{{"WWW-Authenticate", "Bearer realm=\"s3uploader\", error=\"invalid_token\", "
                                                     "error_description=\"" + description + "\""}});
}

ApiError api_error(const upload::Error& e) {
  using upload::Failure;
  switch (e.failure()) {
    case Failure::bad_request: return ApiError(errc::bad_request, e.what());
    case Failure::invalid_file_name: return ApiError(errc::invalid_file_name, e.what());
    case Failure::not_found: return ApiError(errc::not_found, e.what());
    case Failure::conflict: return ApiError(errc::conflict, e.what());
    case Failure::locked: return ApiError(errc::locked, e.what());
    case Failure::checksum_mismatch: return ApiError(errc::checksum_mismatch, e.what());
    case Failure::too_large: return ApiError(errc::file_too_large, e.what());
    case Failure::quota_exceeded: return ApiError(errc::quota_exceeded, e.what());
    case Failure::type_refused: return ApiError(errc::unsupported_media_type, e.what());
    case Failure::busy: return ApiError(errc::too_many_requests, e.what(), 1);
    case Failure::not_supported: return ApiError(errc::not_implemented, e.what());
    case Failure::length_required: return ApiError(errc::length_required, e.what());
    case Failure::link_full: return ApiError(errc::forbidden, e.what());
    case Failure::link_gone: return ApiError(errc::gone, e.what());
    case Failure::refused: return ApiError(errc::forbidden, e.what());
    case Failure::unprocessable: return ApiError(errc::unprocessable, e.what());
    case Failure::check_unavailable: return ApiError(errc::hook_unavailable, e.what(), 5);
  }
  return ApiError(errc::internal, e.what());
}

std::optional<ApiError> api_error(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const storage::Error& e) {
    return api_error(e);
  } catch (const db::Error& e) {
    return api_error(e);
  } catch (const auth::LinkGone& e) {
    return ApiError(errc::gone, e.what());
  } catch (const auth::Unauthorized& e) {
    return api_error(e);
  } catch (const upload::Error& e) {
    return api_error(e);
  } catch (...) {
  }
  return std::nullopt;
}

// Refuses members other than `known`: a typo must not pass as a no-op.
void only_members(const json::object& body, std::initializer_list<std::string_view> known) {
  for (const auto& member : body) {
    if (std::find(known.begin(), known.end(), member.key()) == known.end()) {
      const std::string_view key = member.key();
      throw ApiError(errc::bad_request,
                     util::is_displayable_text(key) && key.size() <= 64
                         ? fmt::format("unknown field \"{}\"; expected {}", key, fmt::join(known, ", "))
                         : fmt::format("an unknown field; expected {}", fmt::join(known, ", ")));
    }
  }
}

std::int64_t page_limit(std::string_view value) {
  const auto n = util::parse_integer<std::int64_t>(value);
  if (!n || *n < 1 || *n > kMaxPageSize) {
    throw ApiError(errc::bad_request, fmt::format("limit must be a whole number from 1 to {}", kMaxPageSize));
  }
  return *n;
}

asio::awaitable<json::object> json_body(http::Request& request) {
  if (const auto length = request.body.content_length(); length && *length > kMaxJsonBody) {
    throw ApiError(errc::file_too_large, "a JSON body is at most 64 KiB");
  }
  std::string text;
  for (;;) {
    const auto piece = co_await request.body.read_some();
    if (piece.empty()) break;
    if (text.size() + piece.size() > kMaxJsonBody) throw ApiError(errc::file_too_large, "a JSON body is at most 64 KiB");
    text.append(piece.data(), piece.size());
  }
  if (util::trim(text).empty()) co_return json::object{};
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec || !value.is_object()) throw ApiError(errc::bad_request, "the body must be a JSON object");
  co_return std::move(value.as_object());
}

std::chrono::milliseconds duration_from(const json::value& value, std::string_view field) {
  std::optional<std::chrono::milliseconds> d;
  if (value.is_int64() && value.get_int64() > 0 && value.get_int64() < 100LL * 365 * 24 * 3600) {
    d = std::chrono::seconds(value.get_int64());
  } else if (value.is_string()) {
    d = util::parse_duration(value.get_string());
  }
  if (!d || d->count() <= 0) {
    throw ApiError(errc::bad_request, fmt::format("{} must be a duration such as \"1h\" or \"7d\", or seconds", field));
  }
  return *d;
}

upload::Requester requester(const http::Request& request, std::string_view source) {
  return {source, request.context.peer_address, request.context.request_id};
}

const auth::Principal& caller(const http::Request& request) {
  return std::any_cast<const auth::Principal&>(request.context.caller);
}

http::Middleware authenticated(auth::Authenticator& authenticator, UploadLinkUse links) {
  return [&authenticator, links](http::Request& request,
                                 const http::Handler& next) -> asio::awaitable<http::Response> {
    if (request.context.caller.has_value()) co_return co_await next(request);  // a download link's owner
    auto principal = co_await authenticator.authenticate(request.header[field::authorization]);
    if (principal.link && links == UploadLinkUse::refused) {
      throw ApiError(errc::forbidden, "an upload link can only upload files");
    }
    request.context.user_id = principal.user_id;
    request.context.caller = std::move(principal);
    co_return co_await next(request);
  };
}

http::Middleware api_errors() {
  return [](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    std::optional<http::Response> answer;
    std::exception_ptr failure;
    try {
      answer = co_await next(request);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      if (auto translated = api_error(failure)) throw *translated;
      std::rethrow_exception(failure);
    }
    co_return std::move(*answer);
  };
}

http::Middleware rate_limited(auth::TokenBuckets& buckets) {
  return [&buckets](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    if (const auto wait = buckets.take(caller(request).token_id, std::chrono::steady_clock::now())) {
      throw ApiError(errc::too_many_requests, "rate limit for this token exceeded", *wait);
    }
    co_return co_await next(request);
  };
}

Api::Api(Dependencies deps)
    : deps_(std::move(deps)),
      uploads_(deps_.uploads, deps_.resumable),
      links_(deps_.uploads.coordination, deps_.uploads.blocking) {
  // Every route but the health check is for a known caller, within their
  // rate; an upload link's bearer may only upload (tus, and its own URL).
  std::vector<http::Middleware> caller_steps{authenticated(deps_.authenticator)};
  std::vector<http::Middleware> uploader_steps{authenticated(deps_.authenticator, UploadLinkUse::allowed)};
  std::vector<http::Middleware> link_steps{upload_link_in_path(deps_.authenticator)};
  if (deps_.rate_limit.per_second > 0) {
    buckets_ = std::make_unique<auth::TokenBuckets>(deps_.rate_limit);
    for (auto* steps : {&caller_steps, &uploader_steps, &link_steps}) steps->push_back(rate_limited(*buckets_));
  }
  const auto route = [&](verb method, std::string_view pattern, auto member, std::vector<http::Middleware> steps) {
    router_.add(
        method, pattern, [this, member](http::Request& r) { return (this->*member)(r); }, std::move(steps));
  };
  route(verb::get, "/healthz", &Api::healthz, {});
  route(verb::get, "/readyz", &Api::readyz, {});
  if (deps_.metrics) route(verb::get, "/metrics", &Api::metrics, {});
  route(verb::get, "/", &Api::web_page, {});
  route(verb::get, "/assets/{name}", &Api::web_asset, {});
  route(verb::post, "/upload", &Api::upload_form, caller_steps);
  route(verb::put, "/upload/{name*}", &Api::upload_raw, caller_steps);
  // tus: the protocol's checks and headers around the caller's.
  std::vector<http::Middleware> tus_steps{tus_version()};
  tus_steps.insert(tus_steps.end(), uploader_steps.begin(), uploader_steps.end());
  route(verb::options, "/upload/resumable", &Api::tus_options, {});
  route(verb::post, "/upload/resumable", &Api::tus_create, tus_steps);
  route(verb::options, "/upload/resumable/{id}", &Api::tus_options, {});
  route(verb::head, "/upload/resumable/{id}", &Api::tus_head, tus_steps);
  route(verb::patch, "/upload/resumable/{id}", &Api::tus_patch, tus_steps);
  route(verb::delete_, "/upload/resumable/{id}", &Api::tus_delete, tus_steps);
  route(verb::post, "/upload/resumable/{id}", &Api::tus_override, tus_steps);
  route(verb::get, "/files", &Api::list_files, caller_steps);
  route(verb::get, "/files/{id}", &Api::get_file, caller_steps);
  route(verb::delete_, "/files/{id}", &Api::delete_file, caller_steps);
  std::vector<http::Middleware> content_steps{
      signed_download(links_, deps_.uploads.records, deps_.authenticator.users(), deps_.uploads.blocking)};
  content_steps.insert(content_steps.end(), caller_steps.begin(), caller_steps.end());
  route(verb::get, "/files/{id}/content", &Api::get_content, content_steps);
  route(verb::post, "/files/{id}/link", &Api::create_link, caller_steps);
  route(verb::get, "/api/config", &Api::client_config, caller_steps);
  route(verb::post, "/upload-links", &Api::create_upload_link, caller_steps);
  route(verb::get, "/upload-links", &Api::list_upload_links, caller_steps);
  route(verb::delete_, "/upload-links/{id}", &Api::revoke_upload_link, caller_steps);
  route(verb::get, "/u/{token}", &Api::upload_link_page, {});
  route(verb::get, "/u/{token}/info", &Api::upload_link_info, link_steps);
  route(verb::put, "/u/{token}/{name*}", &Api::upload_raw, link_steps);
  auto admin_steps = caller_steps;
  admin_steps.push_back(admins_only());
  route(verb::post, "/admin/users", &Api::admin_create_user, admin_steps);
  route(verb::get, "/admin/users", &Api::admin_list_users, admin_steps);
  route(verb::get, "/admin/users/{name}", &Api::admin_get_user, admin_steps);
  route(verb::patch, "/admin/users/{name}", &Api::admin_update_user, admin_steps);
  route(verb::delete_, "/admin/users/{name}", &Api::admin_delete_user, admin_steps);
  route(verb::post, "/admin/users/{name}/tokens", &Api::admin_create_token, admin_steps);
  route(verb::get, "/admin/users/{name}/tokens", &Api::admin_list_tokens, admin_steps);
  route(verb::delete_, "/admin/tokens/{id}", &Api::admin_revoke_token, admin_steps);
  route(verb::get, "/admin/webhooks", &Api::admin_list_webhooks, admin_steps);
  route(verb::post, "/admin/webhooks/retry", &Api::admin_retry_webhooks, admin_steps);
  route(verb::post, "/admin/webhooks/enable", &Api::admin_enable_webhook_endpoint, admin_steps);
  // CORS (and tus's header) outside the error answers, so errors are
  // readable by the page too (and marked as tus answers).
  handler_ = http::chain({cors(deps_.web), tus_resumable_header(), http::error_answers(), api_errors()},
                         [this](http::Request& r) { return router_(r); });
}

asio::awaitable<http::Response> Api::handle(http::Request& request) { co_return co_await handler_(request); }

asio::awaitable<http::Response> Api::healthz(http::Request&) {
  co_return http::Response::json(http::Status::ok, json::object{{"status", "ok"}});
}

asio::awaitable<http::Response> Api::readyz(http::Request&) {
  if (!deps_.readiness) throw ApiError(errc::not_found, "no readiness check here");
  const auto report = co_await deps_.readiness->check();
  json::object checks{{"database", report.database}, {"storage", report.storage}};
  if (report.draining) checks["shutdown"] = "draining";
  co_return http::Response::json(report.ready ? http::Status::ok : http::Status::service_unavailable,
                                 json::object{{"status", report.ready ? "ready" : "unavailable"},
                                              {"checks", std::move(checks)}});
}

asio::awaitable<http::Response> Api::metrics(http::Request& request) {
  // Not behind the API token (a scraper has none), so not for the world:
  // only a client on this host. (A listener of its own is to come.)
  boost::system::error_code ec;
  const auto peer = asio::ip::make_address(request.context.peer_address, ec);
  if (ec || !peer.is_loopback()) throw ApiError(errc::forbidden, "metrics are served to loopback clients only");
  co_return metrics_answer();
}

http::Response metrics_answer() {
  http::Response res(http::Status::ok);
  res.body(metrics::registry().render());
  res.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  res.set("Cache-Control", "no-store");
  return res;
}

template <class Ask>
asio::awaitable<std::string> Readiness::answer(Probe& probe, Ask ask) {
  {
    std::lock_guard lock(probe.mutex);
    if (probe.asking || std::chrono::steady_clock::now() - probe.at < kKeptFor) co_return probe.answer;
    probe.asking = true;
  }
  std::string answer = "ok";
  try {
    co_await ask();
  } catch (const std::exception& e) {
    answer = std::string("error: ") + e.what();
  }
  std::lock_guard lock(probe.mutex);
  probe.answer = answer;
  probe.at = std::chrono::steady_clock::now();
  probe.asking = false;
  co_return answer;
}

asio::awaitable<Readiness::Report> Readiness::check() {
  Report report;
  report.draining = draining_;
  report.database = co_await answer(database_probe_, [this]() -> asio::awaitable<void> {
    co_await util::run_blocking(blocking_, [this] { database_.check_ready(); });
  });
  report.storage = co_await answer(storage_probe_, [this]() { return store_.check_ready(); });
  report.ready = !report.draining && report.database == "ok" && report.storage == "ok";
  co_return report;
}

}  // namespace s3up::api
