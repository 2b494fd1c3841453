#include "auth/authenticator.hpp"

#include <array>
#include <cctype>
#include <cmath>

#include "util/blocking.hpp"
#include "util/crypto.hpp"

namespace s3up::auth {

std::string generate_token_secret() {
  std::array<std::uint8_t, kTokenRandomBytes> bytes{};
  util::random_bytes(bytes);
  return std::string(kTokenPrefix) + util::base64url(bytes);
}

std::string hash_token(std::string_view secret) { return util::sha256_hex(secret); }

bool looks_like_token(std::string_view secret) {
  constexpr std::size_t encoded = (kTokenRandomBytes * 4 + 2) / 3;
  if (secret.size() != kTokenPrefix.size() + encoded || !secret.starts_with(kTokenPrefix)) return false;
  for (char c : secret.substr(kTokenPrefix.size())) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

IssuedToken issue_token(db::UserStore& store, const db::User& user, std::string_view name,
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

boost::asio::awaitable<Principal> Authenticator::authenticate(std::string_view authorization) {
  if (authorization.empty()) throw Unauthorized("missing Authorization: Bearer token");
  const auto token = bearer_token(authorization);
  if (!token) throw Unauthorized("malformed Authorization header: expected 'Bearer <token>'");
  // Garbage is refused without a database round trip.
  if (!looks_like_token(*token)) throw Unauthorized("invalid token");
  const std::string hash = hash_token(*token);
  auto owner = co_await util::run_blocking(blocking_, [&] { return store_.find_token(hash); });
  if (!owner) throw Unauthorized("invalid token");
  if (owner->token.revoked_at) throw Unauthorized("token revoked");
  if (owner->token.expires_at && *owner->token.expires_at <= util::now_micros()) {
    throw Unauthorized("token expired");
  }
  if (owner->user.disabled) throw Unauthorized("user disabled");
  co_return Principal{owner->user.id, owner->user.name, owner->user.is_admin, owner->token.id, owner->user.quota_bytes};
}

}  // namespace s3up::auth
