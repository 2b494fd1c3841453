// The web page: GET / (index.html) and GET /assets/{name}, from the files
// embedded at build time. Every answer carries a strict Content-Security-Policy
// (no inline script, nothing from other origins, no framing), nosniff and
// no-referrer; assets have content-hashed names and are cached for good,
// the page itself is revalidated (ETag) on every load.
#include <mutex>
#include <unordered_map>

#include "api/api.hpp"
#include "api/web_assets.hpp"
#include "util/crypto.hpp"

namespace s3up::api {

namespace asio = boost::asio;
using boost::beast::http::field;

namespace {

constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Served {
  const WebAsset* asset;
  std::string etag;
};

// The embedded files by path, each with its ETag (hashed once).
const std::unordered_map<std::string_view, Served>& served() {
  static const auto table = [] {
    std::unordered_map<std::string_view, Served> t;
    for (const auto& asset : web_assets()) {
      t.emplace(asset.path, Served{&asset, "\"" + util::sha256_hex(asset.bytes).substr(0, 32) + "\""});
    }
    return t;
  }();
  return table;
}

http::Response serve(const http::Request& request, std::string_view path, bool immutable) {
  const auto& table = served();
  const auto it = table.find(path);
  if (it == table.end()) throw ApiError(errc::not_found, "no such page");
  const auto& [asset, etag] = it->second;
  const bool fresh = request.header[field::if_none_match] == etag;
  http::Response res(fresh ? http::Status::not_modified : http::Status::ok);
  if (!fresh) res.body() = std::string(asset->bytes);
  res.set(field::content_type, asset->content_type);
  res.set(field::etag, etag);
  res.set(field::cache_control, immutable ? "public, max-age=31536000, immutable" : "no-cache");
  res.set("Content-Security-Policy", kContentSecurityPolicy);
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set("X-Frame-Options", "DENY");
  return res;
}

}  // namespace

asio::awaitable<http::Response> Api::web_page(http::Request& request) { co_return serve(request, "index.html", false); }

asio::awaitable<http::Response> Api::web_asset(http::Request& request) {
  const std::string path = "assets/" + std::string(request.param("name"));
  co_return serve(request, path, true);
}

}  // namespace s3up::api
