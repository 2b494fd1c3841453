#include "auth/jwks.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include "auth/authenticator.hpp"
#include "util/blocking.hpp"
#include "util/text.hpp"

namespace s3up::auth {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

}  // namespace

namespace {

struct Answer {
  long status = 0;
  std::string body;
  std::string cache_control;
};

struct Transfer {
  Answer answer;
  bool too_large = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  if (t.answer.body.size() + n > KeySource::kMaxDocumentBytes) {
    t.too_large = true;
    return 0;  // ends the transfer
  }
  t.answer.body.append(data, n);
  return n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  const auto colon = line.find(':');
  if (colon != std::string_view::npos && util::ascii_lower(line.substr(0, colon)) == "cache-control") {
    t.answer.cache_control = std::string(util::trim(line.substr(colon + 1)));
  }
  return size * count;
}

// One GET with libcurl: system CAs (plus `ca_file`), no redirects, a
// timeout and a size limit. Throws std::runtime_error with the reason.
Answer http_get(const std::string& url, const std::string& ca_file) {
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURL* curl = curl_easy_init();
  if (!curl) throw std::runtime_error("libcurl could not start a transfer");
  Transfer transfer;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(KeySource::kFetchTimeout.count()));
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "s3uploader");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  if (!ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &transfer.answer.status);
  curl_easy_cleanup(curl);
  if (transfer.too_large) throw std::runtime_error("the document is larger than 1 MiB");
  if (rc != CURLE_OK) throw std::runtime_error(curl_easy_strerror(rc));
  if (transfer.answer.status != 200) {
    throw std::runtime_error("it answered HTTP " + std::to_string(transfer.answer.status));
  }
  return std::move(transfer.answer);
}

// How long the provider says its keys may be kept, within our bounds.
std::chrono::seconds key_lifetime(std::string_view cache_control) {
  const std::string lower = util::ascii_lower(cache_control);
  const auto at = lower.find("max-age=");
  if (at == std::string::npos) return KeySource::kDefaultKeyLifetime;
  std::string_view digits = std::string_view(lower).substr(at + 8);
  digits = digits.substr(0, std::min(digits.find_first_not_of("0123456789"), std::size_t{9}));
  const auto seconds = util::parse_integer<long>(digits);
  if (!seconds) return KeySource::kDefaultKeyLifetime;
  return std::clamp(std::chrono::seconds(*seconds), KeySource::kMinKeyLifetime, KeySource::kMaxKeyLifetime);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("it cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

jwt::KeySet parse_key_set(const std::string& document, const std::string& where) {
  std::vector<std::string> skipped;
  jwt::KeySet keys = jwt::KeySet::from_jwks(document, &skipped);
  for (const auto& s : skipped) spdlog::warn("jwt: {}: skipped {}", where, s);
  if (keys.empty()) throw std::runtime_error("it holds no signature key this service can use");
  return keys;
}

}  // namespace

std::shared_ptr<KeySource> KeySource::make(const JwtSettings& settings, asio::thread_pool& blocking) {
  return std::shared_ptr<KeySource>(new KeySource(settings, blocking));
}

KeySource::KeySource(const JwtSettings& settings, asio::thread_pool& blocking)
    : jwks_url_(settings.jwks_url),
      jwks_file_(settings.jwks_file),
      secret_(settings.secret),
      issuer_(settings.issuer),
      ca_file_(settings.ca_file),
      blocking_(blocking),
      keys_(std::make_shared<jwt::KeySet>()) {
  if (!secret_.empty()) {
    // Nothing to fetch: the secret is the key, for good.
    keys_ = std::make_shared<jwt::KeySet>(jwt::KeySet::from_secret(secret_));
    stale_at_ = Clock::time_point::max();
  }
}

asio::awaitable<void> KeySource::start() {
  {
    std::lock_guard lock(mutex_);
    if (refreshing_) co_return;
    refreshing_ = true;  // requests meanwhile do not start another fetch
  }
  co_await util::run_blocking(blocking_, [&] { refresh_blocking("at start-up"); });
  std::lock_guard lock(mutex_);
  refreshing_ = false;
}

asio::awaitable<std::shared_ptr<const jwt::KeySet>> KeySource::current() {
  std::lock_guard lock(mutex_);
  if (Clock::now() >= stale_at_ && !refreshing_) {
    // The old set keeps working while the new one is fetched.
    refreshing_ = true;
    asio::post(blocking_, [self = shared_from_this()] {
      self->refresh_blocking("their lifetime ran out");
      std::lock_guard done(self->mutex_);
      self->refreshing_ = false;
    });
  }
  co_return keys_;
}

asio::awaitable<std::shared_ptr<const jwt::KeySet>> KeySource::refetch(const jwt::KeySet* seen) {
  // A fetch under way (the first one, racing the first requests, or a
  // background refresh) may bring the key: wait for it rather than start a
  // second one. The wait polls, so no pool thread is held while it lasts.
  asio::steady_timer pause(co_await asio::this_coro::executor);
  const auto give_up_at = Clock::now() + 2 * kFetchTimeout;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (keys_.get() != seen) co_return keys_;  // a newer set arrived since the caller looked
      if (!refreshing_) {
        const auto now = Clock::now();
        if (refetched_ && now - refetched_at_ < kRefetchInterval) co_return keys_;
        refetched_ = true;
        refetched_at_ = now;
        refreshing_ = true;
        break;
      }
      if (Clock::now() >= give_up_at) co_return keys_;
    }
    pause.expires_after(std::chrono::milliseconds(20));
    co_await pause.async_wait(asio::use_awaitable);
  }
  co_await util::run_blocking(blocking_, [&] { refresh_blocking("a token names a key they lack"); });
  std::lock_guard lock(mutex_);
  refreshing_ = false;
  co_return keys_;
}

void KeySource::refresh_blocking(const char* why) {
  if (!secret_.empty()) return;
  try {
    Fetched fetched = fetch_blocking();
    spdlog::info("jwt: {} signature key(s) loaded ({}), kept for {} s", fetched.keys.size(), why,
                 fetched.lifetime.count());
    std::lock_guard lock(mutex_);
    keys_ = std::make_shared<jwt::KeySet>(std::move(fetched.keys));
    stale_at_ = Clock::now() + fetched.lifetime;
  } catch (const std::exception& e) {
    std::lock_guard lock(mutex_);
    spdlog::warn("jwt: fetching the signature keys failed ({}): {}; {}", why, e.what(),
                 keys_->empty() ? "tokens cannot be checked until a fetch succeeds" : "the last keys stay in use");
    // Tried again in the background after a while, not on every request.
    stale_at_ = Clock::now() + kRefetchInterval;
  }
}

KeySource::Fetched KeySource::fetch_blocking() {
  if (!jwks_file_.empty()) {
    std::string document;
    try {
      document = read_file(jwks_file_);
    } catch (const std::exception& e) {
      throw std::runtime_error("jwt_jwks_file " + jwks_file_ + ": " + e.what());
    }
    // A file changes when its owner changes it: read it again as often as
    // a URL would be asked.
    return {parse_key_set(document, jwks_file_), kMinKeyLifetime};
  }
  const std::string url = jwks_url_blocking();
  Answer answer;
  try {
    answer = http_get(url, ca_file_);
  } catch (const std::exception& e) {
    throw std::runtime_error("GET " + url + ": " + e.what());
  }
  try {
    return {parse_key_set(answer.body, url), key_lifetime(answer.cache_control)};
  } catch (const std::exception& e) {
    throw std::runtime_error(url + ": " + e.what());
  }
}

std::string KeySource::jwks_url_blocking() {
  if (!jwks_url_.empty()) return jwks_url_;
  {
    std::lock_guard lock(mutex_);
    if (!discovered_url_.empty()) return discovered_url_;
  }
  // OpenID Connect Discovery 1.0 §4: the issuer's configuration document
  // names its keys, and must name the issuer exactly as configured.
  std::string issuer = issuer_;
  while (issuer.ends_with('/')) issuer.pop_back();
  const std::string url = issuer + "/.well-known/openid-configuration";
  Answer answer;
  try {
    answer = http_get(url, ca_file_);
  } catch (const std::exception& e) {
    throw std::runtime_error("GET " + url + ": " + e.what());
  }
  boost::system::error_code ec;
  const auto document = boost::json::parse(answer.body, ec);
  const auto* object = ec ? nullptr : document.if_object();
  const auto* named_issuer = object ? object->if_contains("issuer") : nullptr;
  const auto* jwks_uri = object ? object->if_contains("jwks_uri") : nullptr;
  if (!named_issuer || !named_issuer->is_string() || !jwks_uri || !jwks_uri->is_string()) {
    throw std::runtime_error(url + " is not an OpenID configuration (issuer, jwks_uri)");
  }
  if (named_issuer->get_string() != issuer_) {
    throw std::runtime_error(url + " names another issuer than jwt_issuer");
  }
  std::string found(jwks_uri->get_string());
  if (!util::is_https_or_loopback(found)) throw std::runtime_error(url + " names a jwks_uri that is not https");
  std::lock_guard lock(mutex_);
  discovered_url_ = found;
  return found;
}

}  // namespace s3up::auth
