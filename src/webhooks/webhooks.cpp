#include "webhooks/webhooks.hpp"

#include <algorithm>
#include <random>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "upload/file_json.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

namespace s3up::webhooks {

namespace json = boost::json;

namespace {

constexpr std::string_view kSecretPrefix = "whsec_";

// The key a whsec_ secret stands for; nullopt if it is not one.
std::optional<std::string> secret_key(std::string_view secret) {
  if (!secret.starts_with(kSecretPrefix)) return std::nullopt;
  auto key = util::base64_decode(secret.substr(kSecretPrefix.size()));
  if (!key || key->size() < 24) return std::nullopt;
  return key;
}

}  // namespace

std::string WebhookSettings::problem() const {
  if (!pre_upload_hook_url.empty()) {
    if (!util::is_https_or_loopback(pre_upload_hook_url)) {
      return fmt::format("pre_upload_hook_url: {} is not https:// (http:// only to a loopback address)",
                         util::redact_url_userinfo(pre_upload_hook_url));
    }
    if (secrets.empty()) return "webhook_secret is required with pre_upload_hook_url: the hook's requests are signed";
    if (pre_upload_hook_timeout < std::chrono::milliseconds(100)) return "pre_upload_hook_timeout must be at least 100ms";
  }
  for (const auto& secret : secrets) {
    // Never echoed: a near-miss of a secret is still most of it.
    if (!secret_key(secret)) return "webhook_secret must be whsec_ + base64 of at least 24 bytes (e.g. 32 random ones)";
  }
  if (urls.empty()) return "";
  for (const auto& url : urls) {
    if (!util::is_https_or_loopback(url)) {
      return fmt::format("webhook_urls: {} is not https:// (http:// only to a loopback address)",
                         util::redact_url_userinfo(url));
    }
  }
  if (secrets.empty()) return "webhook_secret is required with webhook_urls (whsec_ + base64 of 24 to 64 bytes)";
  for (const auto& event : events) {
    if (std::find(kEventTypes.begin(), kEventTypes.end(), event) == kEventTypes.end()) {
      return fmt::format("webhook_events: unknown event '{}'; known: {}", event, fmt::join(kEventTypes, ", "));
    }
  }
  if (timeout < std::chrono::seconds(1)) return "webhook_timeout must be at least 1s";
  return "";
}

std::string signature(const std::vector<std::string>& secrets, std::string_view id, std::int64_t timestamp,
                      std::string_view body) {
  const std::string signed_content = fmt::format("{}.{}.{}", id, timestamp, body);
  std::string out;
  for (const auto& secret : secrets) {
    const auto key = secret_key(secret);
    if (!key) continue;  // refused at start-up (WebhookSettings::problem)
    const auto mac = util::hmac_sha256(*key, signed_content);
    if (!out.empty()) out += ' ';
    out += "v1," + util::base64(std::span<const std::uint8_t>(mac));
  }
  return out;
}

std::string payload(const db::WebhookDelivery& d) {
  json::object data = upload::file_json(d.upload, /*details=*/true);
  data["user_name"] = d.user_name;
  data["metadata"] = upload::metadata_json(d.metadata);
  const json::object body{
      {"type", d.event_type},
      {"timestamp", util::rfc3339(d.created_at)},
      {"data", std::move(data)},
  };
  return json::serialize(body);
}

std::chrono::milliseconds backoff(int attempts, std::chrono::seconds retry_after) {
  using std::chrono::milliseconds;
  constexpr milliseconds kFirst{5'000}, kLongest{3'600'000};
  const int doublings = std::clamp(attempts - 1, 0, 20);
  const milliseconds base = std::min<milliseconds>(kLongest, kFirst * (1LL << doublings));
  // Jitter, so deliveries that failed together do not come back together.
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::uniform_real_distribution<double> spread(0.8, 1.2);
  const milliseconds jittered{static_cast<std::int64_t>(static_cast<double>(base.count()) * spread(random))};
  return std::max<milliseconds>(jittered, std::min<milliseconds>(retry_after, kLongest));
}

}  // namespace s3up::webhooks
