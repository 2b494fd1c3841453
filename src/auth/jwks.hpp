#pragma once
// Where the JWT verification keys come from, and how long they are kept: a
// JWKS URL, OIDC discovery from the issuer, a JWKS file, or a shared secret.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "auth/jwt.hpp"

namespace s3up::auth {

struct JwtSettings;

// The keys, fetched at start-up and kept for the provider's Cache-Control
// max-age (within kMinKeyLifetime..kMaxKeyLifetime), then refetched in the
// background while the old set keeps working (after a failed fetch, again
// kRefetchInterval later). A token naming a key the set lacks makes it
// refetch at once, at most once per kRefetchInterval, so a flood of forged
// kids costs the provider one request per interval. When the provider is
// down the last good set stays: known keys keep working, and key rotation
// works without a restart.
class KeySource : public std::enable_shared_from_this<KeySource> {
 public:
  static constexpr std::chrono::seconds kMinKeyLifetime{300};
  static constexpr std::chrono::seconds kMaxKeyLifetime{24 * 3600};
  static constexpr std::chrono::seconds kDefaultKeyLifetime{600};  // no max-age given
  static constexpr std::chrono::seconds kRefetchInterval{30};
  static constexpr std::chrono::seconds kFetchTimeout{10};
  static constexpr std::size_t kMaxDocumentBytes = 1024 * 1024;

  // For settings JwtSettings::problem() accepts. Shared: a background
  // refresh holds it until it ends.
  static std::shared_ptr<KeySource> make(const JwtSettings& settings, boost::asio::thread_pool& blocking);

  // The first fetch; a failure is logged, not thrown (the service starts,
  // and the next token tries again).
  boost::asio::awaitable<void> start();
  // The keys now (possibly empty); a stale set is refreshed in the background.
  boost::asio::awaitable<std::shared_ptr<const jwt::KeySet>> current();
  // For a token naming a key `seen` (the set the caller checked) lacks: the
  // set that came since, or the one a fetch under way brings, or else a
  // fresh fetch unless one was made within kRefetchInterval.
  boost::asio::awaitable<std::shared_ptr<const jwt::KeySet>> refetch(const jwt::KeySet* seen);

 private:
  KeySource(const JwtSettings& settings, boost::asio::thread_pool& blocking);
  struct Fetched {
    jwt::KeySet keys;
    std::chrono::seconds lifetime;
  };
  // On a pool thread: the keys from wherever the settings say.
  Fetched fetch_blocking();
  std::string jwks_url_blocking();  // the URL, from discovery when only the issuer is set
  // Fetches; keeps the old set on failure. On a pool thread.
  void refresh_blocking(const char* why);

  const std::string jwks_url_, jwks_file_, secret_, issuer_, ca_file_;
  boost::asio::thread_pool& blocking_;
  std::mutex mutex_;
  std::shared_ptr<const jwt::KeySet> keys_;
  std::chrono::steady_clock::time_point stale_at_{};      // refreshed in the background from then on
  std::chrono::steady_clock::time_point refetched_at_{};  // the last refetch for an unknown key
  bool refetched_ = false;
  bool refreshing_ = false;  // a background refresh is under way
  std::string discovered_url_;  // jwks_uri from the issuer's discovery document
};

}  // namespace s3up::auth
