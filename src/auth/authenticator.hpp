#pragma once
// API tokens: how they are made, stored (only their SHA-256) and checked.
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "db/metadata_store.hpp"
#include "util/byte_source.hpp"

namespace s3up::auth {

// A request whose credentials do not admit it (the API answers 401). The
// message says why, never with the credential in it.
class Unauthorized : public util::RequestFailure {
 public:
  using util::RequestFailure::RequestFailure;
};

// "s3u_" + 43 characters of base64url: 256 random bits with a prefix that
// secret scanners and people recognise.
inline constexpr std::string_view kTokenPrefix = "s3u_";
inline constexpr std::size_t kTokenRandomBytes = 32;

std::string generate_token_secret();
std::string hash_token(std::string_view secret);  // hex SHA-256
bool looks_like_token(std::string_view secret);   // prefix, length and alphabet

struct IssuedToken {
  std::string secret;  // shown once, never stored
  db::ApiToken record;
};
IssuedToken issue_token(db::UserStore& store, const db::User& user, std::string_view name,
                        std::optional<std::chrono::milliseconds> expires_in);

// Who is making a request.
struct Principal {
  std::int64_t user_id = 0;
  std::string user_name;
  bool is_admin = false;
  std::string token_id;
  std::optional<std::int64_t> quota_bytes;  // the user's own; none: the service's default
};

// The token of an "Authorization: Bearer <token>" header value, if well-formed.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// Requests per token, as a token bucket: `per_second` on average, bursts of
// up to `burst`. Kept in this instance's memory: behind a load balancer each
// instance allows the rate (state the limit per instance).
struct RateLimit {
  double per_second = 0;  // 0: no limit
  double burst = 0;       // 0: max(1, per_second)
};

class TokenBuckets {
 public:
  explicit TokenBuckets(RateLimit limit) : limit_(limit) {}
  // Takes one request for `key` at `now`; nullopt if allowed, else how many
  // seconds until the next one would be (for Retry-After).
  std::optional<int> take(const std::string& key, std::chrono::steady_clock::time_point now);

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point updated;
  };
  RateLimit limit_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

class Authenticator {
 public:
  Authenticator(db::UserStore& store, boost::asio::thread_pool& blocking) : store_(store), blocking_(blocking) {}
  db::UserStore& users() const { return store_; }  // where the users it knows are kept

  // The principal for an Authorization header value. Throws Unauthorized
  // for a missing, malformed, unknown, revoked or expired token or a disabled user;
  // the message says which, but never echoes the token.
  boost::asio::awaitable<Principal> authenticate(std::string_view authorization);

 private:
  db::UserStore& store_;
  boost::asio::thread_pool& blocking_;
};

}  // namespace s3up::auth
