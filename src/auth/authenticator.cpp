#include "auth/authenticator.hpp"

#include <array>
#include <cctype>
#include <cmath>

#include <spdlog/spdlog.h>

#include "auth/jwks.hpp"
#include "auth/jwt.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

namespace s3up::auth {

bool is_valid_user_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxUserNameBytes && util::is_displayable_text(name);
}

std::string hash_token(std::string_view secret) { return util::sha256_hex(secret); }

namespace {
std::string random_secret(std::string_view prefix) {
  std::array<std::uint8_t, kTokenRandomBytes> bytes{};
  util::random_bytes(bytes);
  return std::string(prefix) + util::base64url(bytes);
}

bool looks_like_secret(std::string_view secret, std::string_view prefix) {
  constexpr std::size_t encoded = (kTokenRandomBytes * 4 + 2) / 3;
  if (secret.size() != prefix.size() + encoded || !secret.starts_with(prefix)) return false;
  for (char c : secret.substr(prefix.size())) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

std::vector<std::string> split_types(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = util::trim(list.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}
}  // namespace

bool looks_like_token(std::string_view secret) { return looks_like_secret(secret, kTokenPrefix); }
std::string generate_token_secret() { return random_secret(kTokenPrefix); }
std::string generate_link_secret() { return random_secret(kLinkTokenPrefix); }
bool looks_like_link_token(std::string_view secret) { return looks_like_secret(secret, kLinkTokenPrefix); }

IssuedToken issue_token(db::Accounts& store, const db::User& user, std::string_view name,
                        std::optional<std::chrono::milliseconds> expires_in) {
  std::array<std::uint8_t, 8> id_bytes{};
  util::random_bytes(id_bytes);
  IssuedToken t;
  t.secret = generate_token_secret();
  t.record.id = "tok_" + util::to_hex(id_bytes);
  t.record.user_id = user.id;
  t.record.user_name = user.name;
  t.record.name = std::string(name);
  t.record.created_at = util::now_micros();
  if (expires_in) t.record.expires_at = t.record.created_at + expires_in->count() * 1000;
  store.create_token(t.record, hash_token(t.secret));
  return t;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size() + 1) return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return std::nullopt;
  }
  if (authorization[scheme.size()] != ' ') return std::nullopt;
  std::string_view token = authorization.substr(scheme.size() + 1);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

std::optional<int> TokenBuckets::take(const std::string& key, std::chrono::steady_clock::time_point now) {
  const double rate = limit_.per_second;
  const double burst = limit_.burst > 0 ? limit_.burst : std::max(1.0, rate);
  std::lock_guard lock(mutex_);
  if (buckets_.size() > 100'000) {
    // Forget buckets that have refilled completely: they hold no state worth keeping.
    std::erase_if(buckets_, [&](const auto& kv) {
      return kv.second.tokens + std::chrono::duration<double>(now - kv.second.updated).count() * rate >= burst;
    });
  }
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst, now});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst, b.tokens + std::chrono::duration<double>(now - b.updated).count() * rate);
    b.updated = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return std::nullopt;
  }
  return static_cast<int>(std::ceil((1 - b.tokens) / rate));
}

Authenticator::Authenticator(db::UserStore& store, boost::asio::thread_pool& blocking, JwtSettings jwt)
    : store_(store), blocking_(blocking), jwt_(std::move(jwt)) {
  if (const auto problem = jwt_.problem(); !problem.empty()) throw std::invalid_argument(problem);
  if (jwt_.enabled()) keys_ = KeySource::make(jwt_, blocking_);
}

Authenticator::~Authenticator() = default;

boost::asio::awaitable<void> Authenticator::start() {
  if (keys_) co_await keys_->start();
}

boost::asio::awaitable<Principal> Authenticator::authenticate(std::string_view authorization) {
  if (authorization.empty()) throw Unauthorized("missing Authorization: Bearer token", /*presented=*/false);
  const auto token = bearer_token(authorization);
  if (!token) throw Unauthorized("malformed Authorization header: expected 'Bearer <token>'");
  if (keys_ && jwt::looks_like_jwt(*token)) co_return co_await jwt_principal(*token);
  if (looks_like_link_token(*token)) co_return co_await authenticate_link(*token);
  // Garbage is refused without a database round trip.
  if (!looks_like_token(*token)) throw Unauthorized("invalid token");
  co_return co_await api_token_principal(*token);
}

boost::asio::awaitable<Principal> Authenticator::api_token_principal(std::string_view token) {
  const std::string hash = hash_token(token);
  auto owner = co_await util::run_blocking(blocking_, [&] { return store_.find_token(hash); });
  if (!owner) throw Unauthorized("invalid token");
  if (owner->token.revoked_at) throw Unauthorized("token revoked");
  if (owner->token.expires_at && *owner->token.expires_at <= util::now_micros()) {
    throw Unauthorized("token expired");
  }
  if (owner->user.disabled) throw Unauthorized("user disabled");
  co_return Principal{owner->user.id, owner->user.name, owner->user.is_admin, owner->token.id, owner->user.quota_bytes};
}

boost::asio::awaitable<Principal> Authenticator::authenticate_link(std::string_view token) {
  if (!looks_like_link_token(token)) throw Unauthorized("invalid upload link");
  const std::string hash = hash_token(token);
  struct Found {
    std::optional<db::UploadLink> link;
    std::optional<db::User> owner;
  };
  const auto found = co_await util::run_blocking(blocking_, [&] {
    Found f;
    f.link = store_.find_upload_link(hash);
    if (f.link) f.owner = store_.get_user(f.link->user_id);
    return f;
  });
  if (!found.link) throw Unauthorized("invalid upload link");
  if (found.link->revoked_at) throw LinkGone("this upload link was revoked");
  if (found.link->expires_at <= util::now_micros()) throw LinkGone("this upload link has expired");
  if (!found.owner || found.owner->disabled) throw LinkGone("this upload link no longer works");
  const auto& owner = *found.owner;
  co_return Principal{
      .user_id = owner.id,
      .user_name = owner.name,
      .is_admin = false,  // a link never carries its owner's other rights
      .token_id = "link:" + found.link->id,  // its own rate-limit bucket
      .quota_bytes = owner.quota_bytes,
      .link = LinkGrant{found.link->id, found.link->max_bytes, split_types(found.link->allowed_types)},
  };
}

boost::asio::awaitable<Principal> Authenticator::jwt_principal(std::string_view token) {
  const jwt::Expectations expect{
      .audience = jwt_.audience,
      .issuer = jwt_.issuer.empty() ? std::nullopt : std::optional(jwt_.issuer),
      .leeway = jwt_.leeway,
      .user_claim = jwt_.user_claim,
      .admin_claim = jwt_.admin_claim,
      .admin_value = jwt_.admin_value,
  };
  std::optional<jwt::Claims> claims;
  try {
    auto keys = co_await keys_->current();
    try {
      claims = jwt::verify(token, *keys, expect, util::now_micros() / 1'000'000);
    } catch (const jwt::Error& e) {
      if (e.failure() != jwt::Failure::unknown_key) throw;
    }
    if (!claims) {
      // Signed by a key the set lacks: the provider may have rotated one in.
      keys = co_await keys_->refetch(keys.get());
      claims = jwt::verify(token, *keys, expect, util::now_micros() / 1'000'000);
    }
  } catch (const jwt::Error& e) {
    throw Unauthorized(e.what());
  }
  if (!is_valid_user_name(claims->user)) {
    throw Unauthorized("the token's " + jwt_.user_claim + " claim is not a usable user name (1-255 bytes of text)");
  }
  const auto now = util::now_micros();
  const auto user =
      co_await util::run_blocking(blocking_, [&] { return store_.external_user(claims->issuer, claims->user, now); });
  if (!user) throw Unauthorized("the token's user name belongs to another account here");
  if (user->disabled) throw Unauthorized("user disabled");
  // Each JWT user is one rate-limit bucket, whichever token they bring.
  co_return Principal{user->id, user->name, user->is_admin || claims->admin, "jwt:" + std::to_string(user->id),
                      user->quota_bytes};
}

}  // namespace s3up::auth
