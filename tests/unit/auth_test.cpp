#include "auth/authenticator.hpp"

#include <gtest/gtest.h>

#include <set>

#include "util/crypto.hpp"

namespace s3up::auth {
namespace {

TEST(Tokens, HavePrefixAnd256RandomBits) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const auto t = generate_token_secret();
    EXPECT_TRUE(t.starts_with("s3u_")) << t;
    EXPECT_EQ(t.size(), 4u + 43u);  // 32 bytes in unpadded base64url
    EXPECT_TRUE(looks_like_token(t));
    EXPECT_TRUE(seen.insert(t).second);
  }
}

TEST(Tokens, HashIsHexSha256OfTheWholeSecret) {
  const std::string t = "s3u_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  EXPECT_EQ(hash_token(t), util::sha256_hex(t));
  EXPECT_EQ(hash_token(t).size(), 64u);
  EXPECT_NE(hash_token(t), hash_token(t + "x"));
}

TEST(Tokens, LooksLikeTokenRejectsGarbage) {
  EXPECT_FALSE(looks_like_token(""));
  EXPECT_FALSE(looks_like_token("s3u_"));
  EXPECT_FALSE(looks_like_token("abc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  EXPECT_FALSE(looks_like_token("s3u_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!"));
  EXPECT_FALSE(looks_like_token("s3u_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));  // one too long
}

TEST(BearerHeader, Parsing) {
  EXPECT_EQ(bearer_token("Bearer abc").value_or(""), "abc");
  EXPECT_EQ(bearer_token("bearer   abc  ").value_or(""), "abc");
  EXPECT_FALSE(bearer_token("Basic dXNlcjpwYXNz"));
  EXPECT_FALSE(bearer_token("Bearer"));
  EXPECT_FALSE(bearer_token("Bearer "));
  EXPECT_FALSE(bearer_token("Bearerabc"));
  EXPECT_FALSE(bearer_token(""));
}

}  // namespace
}  // namespace s3up::auth

namespace s3up::auth {
namespace {

TEST(TokenBuckets, BurstThenTheRateWithRetryAfter) {
  TokenBuckets buckets(RateLimit{2, 3});  // 2/s, bursts of 3
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(buckets.take("tok_a", t0)) << i;
  EXPECT_EQ(buckets.take("tok_a", t0), 1);  // half a second to the next, rounded up
  EXPECT_FALSE(buckets.take("tok_b", t0)) << "each token has its own bucket";
  EXPECT_FALSE(buckets.take("tok_a", t0 + std::chrono::milliseconds(500)));  // one refilled
  EXPECT_TRUE(buckets.take("tok_a", t0 + std::chrono::milliseconds(500)));
  // Long idle refills to the burst, not beyond.
  const auto later = t0 + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(buckets.take("tok_a", later)) << i;
  EXPECT_TRUE(buckets.take("tok_a", later));
  // A slow rate says so in Retry-After.
  TokenBuckets slow(RateLimit{0.1, 1});
  EXPECT_FALSE(slow.take("k", t0));
  EXPECT_EQ(slow.take("k", t0), 10);
}

}  // namespace
}  // namespace s3up::auth
