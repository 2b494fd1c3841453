#pragma once
// Who a request is: API tokens (how they are made, stored (only their
// SHA-256) and checked) and the JWTs of an app's own identity provider.
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "db/metadata_store.hpp"
#include "util/byte_source.hpp"

namespace s3up::auth {

// A request whose credentials do not admit it (the API answers 401). The
// message says why, never with the credential in it.
class Unauthorized : public util::RequestFailure {
 public:
  // `presented`: the request carried a credential, which was refused (RFC
  // 6750's invalid_token); false when it carried none.
  explicit Unauthorized(const std::string& message, bool presented = true)
      : util::RequestFailure(message), presented_(presented) {}
  bool presented() const { return presented_; }

 private:
  bool presented_;
};

// A link that was real but is expired, revoked, or its owner's account is
// gone or disabled: its URL answers 410.
class LinkGone : public Unauthorized {
 public:
  using Unauthorized::Unauthorized;
};

// User names: 1-255 bytes of text fit to show (util::is_displayable_text).
// A JWT user's name is their user claim (an OIDC "sub" is at most 255).
inline constexpr std::size_t kMaxUserNameBytes = 255;
bool is_valid_user_name(std::string_view name);

// "s3u_" + 43 characters of base64url: 256 random bits with a prefix that
// secret scanners and people recognise.
inline constexpr std::string_view kTokenPrefix = "s3u_";
inline constexpr std::size_t kTokenRandomBytes = 32;

std::string generate_token_secret();
std::string hash_token(std::string_view secret);  // hex SHA-256
bool looks_like_token(std::string_view secret);   // prefix, length and alphabet

// Upload links carry their own kind of token, in their URL: "s3l_" + the
// same 43 characters; only its SHA-256 is stored.
inline constexpr std::string_view kLinkTokenPrefix = "s3l_";
std::string generate_link_secret();
bool looks_like_link_token(std::string_view secret);

struct IssuedToken {
  std::string secret;  // shown once, never stored
  db::ApiToken record;
};
IssuedToken issue_token(db::Accounts& store, const db::User& user, std::string_view name,
                        std::optional<std::chrono::milliseconds> expires_in);

// What an upload link lets its bearer do: upload into its owner's account,
// within its limits, and nothing else.
struct LinkGrant {
  std::string id;
  std::optional<std::int64_t> max_bytes;   // the link's byte limit, if it has one
  std::vector<std::string> allowed_types;  // empty: whatever the service takes
};

// Who is making a request.
struct Principal {
  std::int64_t user_id = 0;
  std::string user_name;
  bool is_admin = false;
  std::string token_id;
  std::optional<std::int64_t> quota_bytes;  // the user's own; none: the service's default
  std::optional<LinkGrant> link;            // set when the credential is an upload link (user_id is its owner)
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

// JWTs from the app's identity provider as bearer tokens, beside API
// tokens. Keys from jwks_url, jwks_file or secret; with only the issuer
// set, from the issuer's OpenID discovery document.
struct JwtSettings {
  std::string jwks_url;   // https:// (or http:// on loopback)
  std::string jwks_file;  // a JWKS on disk
  std::string secret;     // HS256/384/512
  std::string issuer;     // checked against iss when set
  std::string audience;   // required when JWTs are on
  std::chrono::seconds leeway{60};
  std::string user_claim = "sub";
  std::string admin_claim;  // with admin_value: a claim (or an array claim) that makes its bearer an admin
  std::string admin_value;
  std::string ca_file;  // extra CA bundle (PEM) for the key fetches, beside the system's
  bool enabled() const { return !jwks_url.empty() || !jwks_file.empty() || !secret.empty() || !issuer.empty(); }
  // Why these settings cannot work (empty when they can): no audience, two
  // key sources, a short secret, a claim name missing.
  std::string problem() const;
};

class KeySource;

class Authenticator {
 public:
  // Throws std::invalid_argument for JWT settings that cannot work.
  Authenticator(db::UserStore& store, boost::asio::thread_pool& blocking, JwtSettings jwt = {});
  ~Authenticator();
  db::UserStore& users() const { return store_; }  // where the users it knows are kept

  // Loads the JWT keys (a failure is logged; tokens wait for the next try).
  boost::asio::awaitable<void> start();

  // The principal for an Authorization header value. Throws Unauthorized
  // for a missing, malformed, unknown, revoked or expired token, a JWT that
  // does not verify, or a disabled user; the message says which, but never
  // echoes the token.
  boost::asio::awaitable<Principal> authenticate(std::string_view authorization);
  // The principal for an upload link's token (from its URL): its owner,
  // limited to uploading through it. Throws Unauthorized for an unknown one,
  // LinkGone for one expired or revoked.
  boost::asio::awaitable<Principal> authenticate_link(std::string_view token);

 private:
  boost::asio::awaitable<Principal> api_token_principal(std::string_view token);
  boost::asio::awaitable<Principal> jwt_principal(std::string_view token);

  db::UserStore& store_;
  boost::asio::thread_pool& blocking_;
  JwtSettings jwt_;
  std::shared_ptr<KeySource> keys_;  // null: JWTs are off
};

}  // namespace s3up::auth
