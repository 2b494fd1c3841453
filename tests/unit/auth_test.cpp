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
