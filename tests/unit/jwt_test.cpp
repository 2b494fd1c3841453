// The JWT verifier (auth/jwt.hpp) against tokens signed here with OpenSSL:
// every algorithm it accepts, and each way a token must be refused.
// (tests/tus-client/jwt.test.mjs checks the same against jose's tokens.)
#include "auth/jwt.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <deque>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "util/crypto.hpp"

namespace s3up::auth::jwt {
namespace {

namespace json = boost::json;
constexpr std::int64_t kNow = 1'800'000'000;

struct TestKey {
  std::string alg, kid;
  EVP_PKEY* key = nullptr;
  std::string secret;  // HS*
  json::object jwk;
};

std::string pad_left(std::string bytes, std::size_t size) {
  if (bytes.size() < size) bytes.insert(0, size - bytes.size(), '\0');
  return bytes;
}

std::string bn_param(EVP_PKEY* key, const char* name, std::size_t size = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, name, &bn), 1);
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return pad_left(out, size);
}

// A key pair for `alg` and its public JWK.
TestKey make_key(const std::string& alg, const std::string& kid, int rsa_bits = 2048) {
  TestKey k{alg, kid};
  k.jwk = {{"kid", kid}, {"alg", alg}, {"use", "sig"}};
  const char family = alg[0];
  if (family == 'R' || family == 'P') {
    k.key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(rsa_bits));
    k.jwk["kty"] = "RSA";
    k.jwk["n"] = util::base64url(bn_param(k.key, OSSL_PKEY_PARAM_RSA_N));
    k.jwk["e"] = util::base64url(bn_param(k.key, OSSL_PKEY_PARAM_RSA_E));
  } else if (family == 'E' && alg.starts_with("ES")) {
    const std::string crv = alg == "ES256" ? "P-256" : alg == "ES384" ? "P-384" : "P-521";
    const std::size_t size = alg == "ES256" ? 32 : alg == "ES384" ? 48 : 66;
    k.key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", crv.c_str());
    k.jwk["kty"] = "EC";
    k.jwk["crv"] = crv;
    k.jwk["x"] = util::base64url(bn_param(k.key, OSSL_PKEY_PARAM_EC_PUB_X, size));
    k.jwk["y"] = util::base64url(bn_param(k.key, OSSL_PKEY_PARAM_EC_PUB_Y, size));
  } else if (family == 'E') {  // EdDSA, Ed25519
    k.key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    std::string raw(32, '\0');
    std::size_t size = raw.size();
    EVP_PKEY_get_raw_public_key(k.key, reinterpret_cast<unsigned char*>(raw.data()), &size);
    k.jwk["kty"] = "OKP";
    k.jwk["crv"] = "Ed25519";
    k.jwk["x"] = util::base64url(raw);
  } else {
    k.secret = "a shared secret of at least thirty-two bytes";
  }
  return k;
}

std::string encode(const json::object& o) { return util::base64url(json::serialize(o)); }

std::string sign(const TestKey& k, const std::string& alg, std::string_view input) {
  const std::string digest = alg.ends_with("256") ? "SHA256" : alg.ends_with("384") ? "SHA384" : "SHA512";
  if (alg.starts_with("HS")) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    std::size_t size = 0;
    EVP_Q_mac(nullptr, "HMAC", nullptr, digest.c_str(), nullptr, k.secret.data(), k.secret.size(),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, sizeof mac, &size);
    return std::string(reinterpret_cast<char*>(mac), size);
  }
  const bool eddsa = alg == "EdDSA" || alg == "Ed25519";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit_ex(ctx, &pctx, eddsa ? nullptr : digest.c_str(), nullptr, nullptr, k.key, nullptr), 1);
  if (alg.starts_with("PS")) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  std::size_t size = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  EVP_DigestSign(ctx, nullptr, &size, data, input.size());
  std::string sig(size, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &size, data, input.size()), 1);
  sig.resize(size);
  EVP_MD_CTX_free(ctx);
  if (alg.starts_with("ES")) {  // DER to JOSE's r || s
    const std::size_t coordinate = alg == "ES256" ? 32 : alg == "ES384" ? 48 : 66;
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string r(static_cast<std::size_t>(BN_num_bytes(ECDSA_SIG_get0_r(ecdsa))), '\0');
    std::string s(static_cast<std::size_t>(BN_num_bytes(ECDSA_SIG_get0_s(ecdsa))), '\0');
    BN_bn2bin(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(r.data()));
    BN_bn2bin(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(s.data()));
    ECDSA_SIG_free(ecdsa);
    return pad_left(r, coordinate) + pad_left(s, coordinate);
  }
  return sig;
}

json::object claims(json::object extra = {}) {
  json::object c{{"iss", "https://idp.example"}, {"aud", "uploads"}, {"sub", "alice"},
                 {"iat", kNow - 10},           {"exp", kNow + 600}};
  for (auto& [name, value] : extra) {
    if (value.is_null()) {
      c.erase(name);
    } else {
      c[name] = value;
    }
  }
  return c;
}

std::string token(const TestKey& k, const json::object& body, json::object header = {}) {
  json::object h{{"alg", k.alg}, {"typ", "JWT"}};
  if (!k.kid.empty()) h["kid"] = k.kid;
  for (auto& [name, value] : header) {
    if (value.is_null()) {
      h.erase(name);
    } else {
      h[name] = value;
    }
  }
  const std::string input = encode(h) + "." + encode(body);
  const std::string alg(h.at("alg").as_string());
  return input + "." + util::base64url(sign(k, alg, input));
}

KeySet jwks(const std::vector<const TestKey*>& keys, std::vector<std::string>* skipped = nullptr) {
  json::array list;
  for (const auto* k : keys) list.push_back(k->jwk);
  return KeySet::from_jwks(json::serialize(json::object{{"keys", list}}), skipped);
}

const Expectations kExpect{.audience = "uploads", .issuer = "https://idp.example"};

Failure refusal(std::string_view t, const KeySet& keys, const Expectations& expect = kExpect) {
  try {
    verify(t, keys, expect, kNow);
  } catch (const Error& e) {
    return e.failure();
  }
  ADD_FAILURE() << "accepted";
  return Failure::malformed;
}

class Jwt : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& k : keys_) EVP_PKEY_free(k.key);
  }
  const TestKey& key(const std::string& alg, const std::string& kid) {
    keys_.push_back(make_key(alg, kid));
    return keys_.back();
  }
  std::deque<TestKey> keys_;
};

TEST_F(Jwt, EveryAcceptedAlgorithmVerifies) {
  for (const std::string alg : {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                                "EdDSA", "Ed25519"}) {
    const auto& k = key(alg, "k-" + alg);
    const auto set = jwks({&k});
    const auto c = verify(token(k, claims()), set, kExpect, kNow);
    EXPECT_EQ(c.user, "alice") << alg;
    EXPECT_EQ(c.issuer, "https://idp.example") << alg;
    EXPECT_EQ(c.expires_at, kNow + 600) << alg;
  }
  for (const std::string alg : {"HS256", "HS384", "HS512"}) {
    auto k = make_key(alg, "");
    EXPECT_EQ(verify(token(k, claims()), KeySet::from_secret(k.secret), kExpect, kNow).user, "alice") << alg;
  }
}

TEST_F(Jwt, ClaimsAreCheckedWithTheLeeway) {
  const auto& k = key("ES256", "es");
  const auto set = jwks({&k});
  const auto check = [&](json::object extra) { return refusal(token(k, claims(std::move(extra))), set); };
  EXPECT_EQ(check({{"exp", kNow - 61}}), Failure::expired);
  EXPECT_NO_THROW(verify(token(k, claims({{"exp", kNow - 59}})), set, kExpect, kNow));
  EXPECT_EQ(check({{"exp", nullptr}}), Failure::expired);
  EXPECT_EQ(check({{"exp", "tomorrow"}}), Failure::malformed);
  EXPECT_EQ(check({{"nbf", kNow + 61}}), Failure::not_yet_valid);
  EXPECT_NO_THROW(verify(token(k, claims({{"nbf", kNow + 59}})), set, kExpect, kNow));
  EXPECT_EQ(check({{"iat", kNow + 3600}}), Failure::not_yet_valid);
  EXPECT_EQ(check({{"aud", "another-app"}}), Failure::wrong_audience);
  EXPECT_EQ(check({{"aud", json::array{"a", "b"}}}), Failure::wrong_audience);
  EXPECT_EQ(check({{"aud", nullptr}}), Failure::wrong_audience);
  EXPECT_NO_THROW(verify(token(k, claims({{"aud", json::array{"a", "uploads"}}})), set, kExpect, kNow));
  EXPECT_EQ(check({{"iss", "https://evil.example"}}), Failure::wrong_issuer);
  EXPECT_EQ(check({{"iss", nullptr}}), Failure::wrong_issuer);
  EXPECT_EQ(check({{"iss", 7}}), Failure::malformed);
  EXPECT_EQ(check({{"sub", nullptr}}), Failure::no_user);
  EXPECT_EQ(check({{"sub", ""}}), Failure::no_user);
  EXPECT_EQ(check({{"sub", 42}}), Failure::no_user);
  // Fractional dates are dates.
  EXPECT_NO_THROW(verify(token(k, claims({{"exp", kNow + 0.5}})), set, kExpect, kNow));
  // Without an expected issuer, any iss (or none) is the user's issuer.
  const Expectations any_issuer{.audience = "uploads"};
  EXPECT_EQ(verify(token(k, claims({{"iss", nullptr}})), set, any_issuer, kNow).issuer, "");
}

TEST_F(Jwt, TheUserAndAdminClaimsAreConfigurable) {
  const auto& k = key("RS256", "rs");
  const auto set = jwks({&k});
  const Expectations expect{.audience = "uploads", .user_claim = "email", .admin_claim = "roles", .admin_value = "admin"};
  const auto admin = verify(token(k, claims({{"email", "a@example.com"}, {"roles", json::array{"x", "admin"}}})), set,
                            expect, kNow);
  EXPECT_EQ(admin.user, "a@example.com");
  EXPECT_TRUE(admin.admin);
  EXPECT_FALSE(verify(token(k, claims({{"email", "b@example.com"}, {"roles", "staff"}})), set, expect, kNow).admin);
  EXPECT_TRUE(verify(token(k, claims({{"email", "c@example.com"}, {"roles", "admin"}})), set, expect, kNow).admin);
  EXPECT_FALSE(verify(token(k, claims({{"email", "d@example.com"}})), set, expect, kNow).admin);
  EXPECT_EQ(refusal(token(k, claims()), set, expect), Failure::no_user);
}

TEST_F(Jwt, SignaturesAreChecked) {
  const auto& k = key("RS256", "rs");
  const auto& other = key("RS256", "other");
  const auto set = jwks({&k});
  std::string t = token(k, claims());
  // A changed claim, a changed signature, another key's signature under this kid.
  const auto first_dot = t.find('.'), second_dot = t.rfind('.');
  const std::string forged_claims = encode(claims({{"sub", "root"}}));
  EXPECT_EQ(refusal(t.substr(0, first_dot + 1) + forged_claims + t.substr(second_dot), set), Failure::bad_signature);
  std::string flipped = t;
  flipped[second_dot + 5] = flipped[second_dot + 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(refusal(flipped, set), Failure::bad_signature);
  EXPECT_EQ(refusal(token(other, claims(), {{"kid", "rs"}}), set), Failure::bad_signature);
  // A truncated ECDSA signature is not a signature.
  const auto& es = key("ES256", "es");
  const auto es_set = jwks({&es});
  const std::string es_token = token(es, claims());
  const auto es_dot = es_token.rfind('.');
  const auto es_signature = *util::base64url_decode(std::string_view(es_token).substr(es_dot + 1));
  EXPECT_EQ(refusal(es_token.substr(0, es_dot + 1) + util::base64url(es_signature.substr(0, 61)), es_set),
            Failure::bad_signature);
}

TEST_F(Jwt, TheAlgorithmMustFitTheKey) {
  const auto& rs = key("RS256", "rs");
  const auto set = jwks({&rs});
  // "none": no signature at all.
  const std::string unsigned_token = encode({{"alg", "none"}}) + "." + encode(claims()) + ".";
  EXPECT_EQ(refusal(unsigned_token, set), Failure::unsupported);
  // HS256 "signed" with the RSA key's public JWK as the secret: HMAC needs a
  // configured secret, and a published key never is one.
  TestKey confused{"HS256", "rs"};
  confused.secret = json::serialize(rs.jwk);
  EXPECT_EQ(refusal(token(confused, claims()), set), Failure::unsupported);
  // The key names RS256; PS256 with the same RSA key is refused.
  EXPECT_EQ(refusal(token(rs, claims(), {{"alg", "PS256"}}), set), Failure::unsupported);
  // ES256 against an RSA key.
  const auto& es = key("ES256", "es");
  EXPECT_EQ(refusal(token(es, claims(), {{"kid", "rs"}}), set), Failure::unsupported);
  // An ES384 token with a P-256 key.
  auto es_jwk_without_alg = es;
  es_jwk_without_alg.jwk.erase("alg");
  const auto es_set = jwks({&es_jwk_without_alg});
  EXPECT_EQ(refusal(token(es, claims(), {{"alg", "ES384"}}), es_set), Failure::unsupported);
  // Unknown and critical extensions.
  EXPECT_EQ(refusal(token(rs, claims(), {{"alg", "RS1"}}), set), Failure::unsupported);
  EXPECT_EQ(refusal(token(rs, claims(), {{"crit", json::array{"b64"}}, {"b64", false}}), set), Failure::unsupported);
}

TEST_F(Jwt, TheKeyIsChosenByKidOrByBeingTheOnlyOne) {
  const auto& a = key("ES256", "a");
  const auto& b = key("ES256", "b");
  const auto both = jwks({&a, &b});
  EXPECT_EQ(verify(token(b, claims()), both, kExpect, kNow).user, "alice");
  EXPECT_EQ(refusal(token(a, claims(), {{"kid", "c"}}), both), Failure::unknown_key);
  EXPECT_EQ(refusal(token(a, claims(), {{"kid", nullptr}}), both), Failure::unknown_key);  // two fit
  EXPECT_EQ(refusal(token(a, claims(), {{"kid", 5}}), both), Failure::malformed);
  const auto only_a = jwks({&a});
  EXPECT_EQ(verify(token(a, claims(), {{"kid", nullptr}}), only_a, kExpect, kNow).user, "alice");
  EXPECT_EQ(refusal(token(key("RS256", "r"), claims(), {{"kid", nullptr}}), only_a), Failure::unknown_key);
  EXPECT_EQ(refusal(token(a, claims()), KeySet()), Failure::unknown_key);
}

TEST_F(Jwt, KeysItCannotUseAreSkippedAndNamed) {
  const auto& good = key("EdDSA", "good");
  auto small = make_key("RS256", "small", 1024);
  auto encryption = make_key("RS256", "enc");
  encryption.jwk["use"] = "enc";
  auto off_curve = make_key("ES256", "off-curve");
  std::string x = *util::base64url_decode(std::string_view(off_curve.jwk["x"].as_string()));
  x[31] ^= 1;
  off_curve.jwk["x"] = util::base64url(x);
  TestKey symmetric{"HS256", "oct"};
  symmetric.jwk = {{"kty", "oct"}, {"kid", "oct"}, {"k", util::base64url("a shared secret")}};
  TestKey unknown{"X", "unknown"};
  unknown.jwk = {{"kty", "RSA"}, {"kid", "unknown"}, {"alg", "RS1"}, {"n", "AQAB"}, {"e", "AQAB"}};
  std::vector<std::string> skipped;
  const auto set = jwks({&good, &small, &encryption, &off_curve, &symmetric, &unknown}, &skipped);
  EXPECT_EQ(set.size(), 1U);
  ASSERT_EQ(skipped.size(), 5U);
  EXPECT_NE(skipped[0].find("2048"), std::string::npos);
  EXPECT_NE(skipped[1].find("use"), std::string::npos);
  EXPECT_NE(skipped[2].find("curve"), std::string::npos);
  EXPECT_NE(skipped[3].find("kty"), std::string::npos);
  EXPECT_NE(skipped[4].find("alg"), std::string::npos);
  for (auto* k : {&small, &encryption, &off_curve}) EVP_PKEY_free(k->key);
  EXPECT_THROW(KeySet::from_jwks("[]"), std::invalid_argument);
  EXPECT_THROW(KeySet::from_jwks("{\"keys\": 1}"), std::invalid_argument);
  EXPECT_THROW(KeySet::from_jwks("not json"), std::invalid_argument);
}

TEST(JwtShape, MalformedTokensAreRefusedAsSuch) {
  const auto set = KeySet::from_secret("a shared secret of at least thirty-two bytes");
  for (const std::string_view bad : {"", "a", "a.b", "a.b.c.d", "!!.e30.", "e30.!!.", "e30.e30.!!", "bnVsbA.e30.",
                                     "W10.e30."}) {
    EXPECT_EQ(refusal(bad, set), Failure::malformed) << bad;
  }
  EXPECT_TRUE(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
  EXPECT_FALSE(looks_like_jwt("s3u_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"));
  EXPECT_FALSE(looks_like_jwt("eyJ.only-two"));
  EXPECT_FALSE(looks_like_jwt("eyJ.a.b c"));
}

}  // namespace
}  // namespace s3up::auth::jwt
