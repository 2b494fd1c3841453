#include "auth/jwt.hpp"

#include "auth/authenticator.hpp"
#include "util/text.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "util/crypto.hpp"

namespace s3up::auth::jwt {
namespace {

namespace json = boost::json;

// Owners for OpenSSL's objects.
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using Bignum = std::unique_ptr<BIGNUM, BnFree>;

enum class KeyType { rsa, ec, okp, secret };
enum class Scheme { pkcs1, pss, ecdsa, eddsa, hmac };

// An algorithm we accept: what key it needs and how it signs.
struct Algorithm {
  std::string_view name;
  KeyType key_type;
  Scheme scheme;
  std::string_view digest;  // OpenSSL's name; empty for EdDSA (which hashes itself)
  std::string_view curve;   // EC and OKP keys: the JWK "crv" it needs
  std::size_t coordinate = 0;  // ECDSA: bytes per coordinate (r and s in the signature)
};

constexpr std::array kAlgorithms{
    Algorithm{"RS256", KeyType::rsa, Scheme::pkcs1, "SHA256", ""},
    Algorithm{"RS384", KeyType::rsa, Scheme::pkcs1, "SHA384", ""},
    Algorithm{"RS512", KeyType::rsa, Scheme::pkcs1, "SHA512", ""},
    Algorithm{"PS256", KeyType::rsa, Scheme::pss, "SHA256", ""},
    Algorithm{"PS384", KeyType::rsa, Scheme::pss, "SHA384", ""},
    Algorithm{"PS512", KeyType::rsa, Scheme::pss, "SHA512", ""},
    Algorithm{"ES256", KeyType::ec, Scheme::ecdsa, "SHA256", "P-256", 32},
    Algorithm{"ES384", KeyType::ec, Scheme::ecdsa, "SHA384", "P-384", 48},
    Algorithm{"ES512", KeyType::ec, Scheme::ecdsa, "SHA512", "P-521", 66},
    // RFC 8037's name, and RFC 9864's fully specified one.
    Algorithm{"EdDSA", KeyType::okp, Scheme::eddsa, "", "Ed25519"},
    Algorithm{"Ed25519", KeyType::okp, Scheme::eddsa, "", "Ed25519"},
    Algorithm{"HS256", KeyType::secret, Scheme::hmac, "SHA256", ""},
    Algorithm{"HS384", KeyType::secret, Scheme::hmac, "SHA384", ""},
    Algorithm{"HS512", KeyType::secret, Scheme::hmac, "SHA512", ""},
};

const Algorithm* find_algorithm(std::string_view name) {
  for (const auto& a : kAlgorithms) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

// The EC curves JOSE names, with OpenSSL's group names and coordinate sizes.
struct Curve {
  std::string_view jose, openssl;
  std::size_t coordinate;
};
constexpr std::array kCurves{Curve{"P-256", "prime256v1", 32}, Curve{"P-384", "secp384r1", 48},
                             Curve{"P-521", "secp521r1", 66}};

constexpr int kMinRsaBits = 2048;

[[noreturn]] void refuse(Failure failure, const std::string& why) { throw Error(failure, why); }

const json::string* string_member(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  return v ? v->if_string() : nullptr;
}

std::optional<std::string> decoded_member(const json::object& o, std::string_view name) {
  const auto* s = string_member(o, name);
  if (!s) return std::nullopt;
  return util::base64url_decode(std::string_view(*s));
}

Bignum bignum(const std::string& big_endian) {
  return Bignum(BN_bin2bn(reinterpret_cast<const unsigned char*>(big_endian.data()),
                          static_cast<int>(big_endian.size()), nullptr));
}

// A public key from OpenSSL parameters (RSA and EC keys are built this way).
Pkey key_from_params(const char* type, OSSL_PARAM_BLD* builder) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(builder);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  const bool ok = params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
                  EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  if (!ok) {
    EVP_PKEY_free(key);
    return nullptr;
  }
  return Pkey(key);
}

struct BuilderFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};

Pkey rsa_key(const json::object& jwk, std::string& why) {
  const auto n = decoded_member(jwk, "n");
  const auto e = decoded_member(jwk, "e");
  if (!n || !e || n->empty() || e->empty()) {
    why = "an RSA key needs n and e in base64url";
    return nullptr;
  }
  const Bignum bn_n = bignum(*n), bn_e = bignum(*e);
  std::unique_ptr<OSSL_PARAM_BLD, BuilderFree> builder(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !builder || !OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    why = "its parameters could not be read";
    return nullptr;
  }
  Pkey key = key_from_params("RSA", builder.get());
  if (!key) {
    why = "it is not a valid RSA public key";
    return nullptr;
  }
  if (EVP_PKEY_get_bits(key.get()) < kMinRsaBits) {
    why = "RSA keys under 2048 bits are not accepted";
    return nullptr;
  }
  return key;
}

Pkey ec_key(const json::object& jwk, std::string_view crv, std::string& why) {
  const auto curve = std::find_if(kCurves.begin(), kCurves.end(), [&](const Curve& c) { return c.jose == crv; });
  if (curve == kCurves.end()) {
    why = "its curve is not P-256, P-384 or P-521";
    return nullptr;
  }
  const auto x = decoded_member(jwk, "x");
  const auto y = decoded_member(jwk, "y");
  if (!x || !y || x->size() != curve->coordinate || y->size() != curve->coordinate) {
    why = "an EC key needs x and y of its curve's size in base64url";
    return nullptr;
  }
  // The uncompressed point: 0x04 || x || y.
  const std::string point = std::string(1, '\x04') + *x + *y;
  std::unique_ptr<OSSL_PARAM_BLD, BuilderFree> builder(OSSL_PARAM_BLD_new());
  const std::string group(curve->openssl);
  if (!builder || !OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.c_str(), 0) ||
      !OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
    why = "its parameters could not be read";
    return nullptr;
  }
  Pkey key = key_from_params("EC", builder.get());
  // fromdata does not check that the point is on the curve: do it here.
  EVP_PKEY_CTX* check = key ? EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr) : nullptr;
  const bool on_curve = check && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!on_curve) {
    why = "it is not a valid point on its curve";
    return nullptr;
  }
  return key;
}

Pkey okp_key(const json::object& jwk, std::string_view crv, std::string& why) {
  if (crv != "Ed25519") {
    why = "its curve is not Ed25519";
    return nullptr;
  }
  const auto x = decoded_member(jwk, "x");
  if (!x || x->size() != 32) {
    why = "an Ed25519 key needs x of 32 bytes in base64url";
    return nullptr;
  }
  Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x->data()),
                                       x->size()));
  if (!key) why = "it is not a valid Ed25519 public key";
  return key;
}

// ECDSA signatures in JWS are r || s, each the coordinate's size; OpenSSL
// verifies the DER form.
std::optional<std::string> ecdsa_der(std::string_view raw, std::size_t coordinate) {
  if (raw.size() != 2 * coordinate) return std::nullopt;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(coordinate), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + coordinate),
                        static_cast<int>(coordinate), nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int size = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (size <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(size));
  OPENSSL_free(der);
  return out;
}

std::optional<json::object> json_object(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional.
std::optional<std::int64_t> numeric_date(const json::object& claims, std::string_view name) {
  const auto* v = claims.if_contains(name);
  if (!v) return std::nullopt;
  double seconds = 0;
  if (v->is_int64()) {
    seconds = static_cast<double>(v->as_int64());
  } else if (v->is_uint64()) {
    seconds = static_cast<double>(v->as_uint64());
  } else if (v->is_double()) {
    seconds = v->as_double();
  } else {
    refuse(Failure::malformed, "the token's " + std::string(name) + " is not a number");
  }
  if (!std::isfinite(seconds) || std::abs(seconds) > 1e15) {
    refuse(Failure::malformed, "the token's " + std::string(name) + " is out of range");
  }
  return static_cast<std::int64_t>(std::floor(seconds));
}

// Whether a claim is `value`, or an array containing it.
bool claim_has(const json::value* claim, std::string_view value) {
  if (!claim) return false;
  if (const auto* s = claim->if_string()) return *s == value;
  if (const auto* a = claim->if_array()) {
    return std::any_of(a->begin(), a->end(), [&](const json::value& v) { return v.is_string() && v.get_string() == value; });
  }
  return false;
}

}  // namespace

struct KeySet::Key {
  KeyType type = KeyType::rsa;
  std::string kid;    // may be empty
  std::string alg;    // the key's own "alg", if it names one
  std::string curve;  // EC and OKP
  Pkey public_key;    // RSA, EC, OKP
  std::string secret; // HS*

  bool fits(const Algorithm& a) const {
    if (a.key_type != type) return false;
    if (!a.curve.empty() && a.curve != curve) return false;
    return alg.empty() || alg == a.name;
  }
};

KeySet::KeySet() = default;
KeySet::~KeySet() = default;
KeySet::KeySet(KeySet&&) noexcept = default;
KeySet& KeySet::operator=(KeySet&&) noexcept = default;
std::size_t KeySet::size() const { return keys_.size(); }

KeySet KeySet::from_jwks(std::string_view text, std::vector<std::string>* skipped) {
  const auto document = json_object(text);
  const json::value* keys = document ? document->if_contains("keys") : nullptr;
  if (!keys || !keys->is_array()) throw std::invalid_argument("not a JWK Set: no \"keys\" array");
  KeySet set;
  for (const json::value& entry : keys->get_array()) {
    const json::object* jwk = entry.if_object();
    if (!jwk) continue;
    auto key = std::make_unique<Key>();
    if (const auto* kid = string_member(*jwk, "kid")) key->kid = std::string(*kid);
    if (const auto* alg = string_member(*jwk, "alg")) key->alg = std::string(*alg);
    if (const auto* crv = string_member(*jwk, "crv")) key->curve = std::string(*crv);
    const json::string* kty = string_member(*jwk, "kty");
    const json::string* use = string_member(*jwk, "use");
    const json::value* ops = jwk->if_contains("key_ops");
    std::string why;
    if (use && *use != "sig") {
      why = "its use is not sig";
    } else if (ops && !claim_has(ops, "verify")) {
      why = "its key_ops do not include verify";
    } else if (!key->alg.empty() && !find_algorithm(key->alg)) {
      why = "its alg is not one we accept";
    } else if (kty && *kty == "RSA") {
      key->type = KeyType::rsa;
      key->public_key = rsa_key(*jwk, why);
    } else if (kty && *kty == "EC") {
      key->type = KeyType::ec;
      key->public_key = ec_key(*jwk, key->curve, why);
    } else if (kty && *kty == "OKP") {
      key->type = KeyType::okp;
      key->public_key = okp_key(*jwk, key->curve, why);
    } else {
      why = "its kty is not RSA, EC or OKP";  // "oct" too: a shared secret has no place in a published set
    }
    if (!key->public_key) {
      if (skipped) skipped->push_back((key->kid.empty() ? std::string("a key without kid") : "key " + key->kid) + ": " + why);
      continue;
    }
    set.keys_.push_back(std::move(key));
  }
  return set;
}

KeySet KeySet::from_secret(std::string_view secret) {
  KeySet set;
  auto key = std::make_unique<Key>();
  key->type = KeyType::secret;
  key->secret = std::string(secret);
  set.keys_.push_back(std::move(key));
  return set;
}

bool looks_like_jwt(std::string_view token) {
  // A JSON object's first byte '{' always encodes to "ey" in base64url.
  if (!token.starts_with("ey") || std::count(token.begin(), token.end(), '.') != 2) return false;
  return std::all_of(token.begin(), token.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

Claims verify(std::string_view token, const KeySet& keys, const Expectations& expect, std::int64_t now) {
  // 1. The shape: header.payload.signature, each base64url.
  const auto first_dot = token.find('.');
  const auto second_dot = first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != std::string_view::npos) {
    refuse(Failure::malformed, "the token is not a JWT (three parts separated by dots)");
  }
  const std::string_view signing_input = token.substr(0, second_dot);
  const auto header_text = util::base64url_decode(token.substr(0, first_dot));
  const auto payload_text = util::base64url_decode(token.substr(first_dot + 1, second_dot - first_dot - 1));
  const auto signature = util::base64url_decode(token.substr(second_dot + 1));
  if (!header_text || !payload_text || !signature) refuse(Failure::malformed, "the token is not valid base64url");
  const auto header = json_object(*header_text);
  if (!header) refuse(Failure::malformed, "the token's header is not a JSON object");

  // 2. The algorithm and the key, chosen before anything else is believed.
  const json::string* alg_name = string_member(*header, "alg");
  if (!alg_name) refuse(Failure::malformed, "the token's header has no alg");
  const Algorithm* alg = find_algorithm(std::string_view(*alg_name));
  if (!alg) refuse(Failure::unsupported, "the token's algorithm is not accepted");
  if (header->contains("crit")) refuse(Failure::unsupported, "the token requires header extensions (crit)");
  const json::value* kid_value = header->if_contains("kid");
  if (kid_value && !kid_value->is_string()) refuse(Failure::malformed, "the token's kid is not a string");
  const KeySet::Key* key = nullptr;
  if (alg->key_type == KeyType::secret) {
    // A secret is configured or not; a kid does not choose it.
    for (const auto& k : keys.keys_) {
      if (k->type == KeyType::secret) key = k.get();
    }
    if (!key) refuse(Failure::unsupported, "HMAC-signed tokens are not accepted (no jwt_secret is set)");
  } else if (kid_value) {
    const std::string_view kid = kid_value->get_string();
    for (const auto& k : keys.keys_) {
      if (k->type != KeyType::secret && k->kid == kid) key = k.get();
    }
    if (!key) refuse(Failure::unknown_key, "the token's signing key (kid) is not in the key set");
    if (!key->fits(*alg)) refuse(Failure::unsupported, "the token's algorithm does not fit its key");
  } else {
    int fitting = 0;
    for (const auto& k : keys.keys_) {
      if (k->fits(*alg)) {
        key = k.get();
        ++fitting;
      }
    }
    if (fitting == 0) refuse(Failure::unknown_key, "no key in the key set fits the token's algorithm");
    if (fitting > 1) refuse(Failure::unknown_key, "the token names no key (kid) and several keys fit");
  }

  // 3. The signature.
  bool valid = false;
  const auto* data = reinterpret_cast<const unsigned char*>(signing_input.data());
  if (alg->scheme == Scheme::hmac) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    std::size_t mac_size = 0;
    const std::string digest(alg->digest);
    const bool ok = EVP_Q_mac(nullptr, "HMAC", nullptr, digest.c_str(), nullptr, key->secret.data(), key->secret.size(),
                              data, signing_input.size(), mac.data(), mac.size(), &mac_size) != nullptr;
    valid = ok && util::constant_time_equal(std::string_view(reinterpret_cast<const char*>(mac.data()), mac_size),
                                            *signature);
  } else {
    std::string checked = *signature;
    bool well_formed = true;
    if (alg->scheme == Scheme::ecdsa) {
      auto der = ecdsa_der(*signature, alg->coordinate);
      well_formed = der.has_value();
      if (der) checked = std::move(*der);
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    const std::string digest(alg->digest);
    const char* digest_name = digest.empty() ? nullptr : digest.c_str();
    bool ready = well_formed && ctx &&
                 EVP_DigestVerifyInit_ex(ctx, &pctx, digest_name, nullptr, nullptr, key->public_key.get(), nullptr) == 1;
    if (ready && alg->scheme == Scheme::pss) {
      ready = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    }
    valid = ready && EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(checked.data()), checked.size(), data,
                                      signing_input.size()) == 1;
    EVP_MD_CTX_free(ctx);
  }
  if (!valid) refuse(Failure::bad_signature, "the token's signature does not verify");

  // 4. The claims, now that they are the issuer's.
  const auto claims = json_object(*payload_text);
  if (!claims) refuse(Failure::malformed, "the token's claims are not a JSON object");
  const auto leeway = expect.leeway.count();
  const auto exp = numeric_date(*claims, "exp");
  if (!exp) refuse(Failure::expired, "the token has no expiry (exp)");
  if (now > *exp + leeway) refuse(Failure::expired, "the token has expired");
  if (const auto nbf = numeric_date(*claims, "nbf"); nbf && now + leeway < *nbf) {
    refuse(Failure::not_yet_valid, "the token is not valid yet (nbf)");
  }
  if (const auto iat = numeric_date(*claims, "iat"); iat && now + leeway < *iat) {
    refuse(Failure::not_yet_valid, "the token was issued in the future (iat)");
  }
  if (!claim_has(claims->if_contains("aud"), expect.audience)) {
    refuse(Failure::wrong_audience, "the token is not for this audience (aud)");
  }
  const json::value* iss = claims->if_contains("iss");
  if (iss && !iss->is_string()) refuse(Failure::malformed, "the token's iss is not a string");
  Claims out;
  if (iss) out.issuer = std::string(iss->get_string());
  if (expect.issuer && out.issuer != *expect.issuer) refuse(Failure::wrong_issuer, "the token is from another issuer (iss)");
  const json::string* user = string_member(*claims, expect.user_claim);
  if (!user || user->empty()) refuse(Failure::no_user, "the token has no " + expect.user_claim + " claim naming the user");
  out.user = std::string(*user);
  out.admin = !expect.admin_claim.empty() && claim_has(claims->if_contains(expect.admin_claim), expect.admin_value);
  out.expires_at = *exp;
  return out;
}

}  // namespace s3up::auth::jwt

namespace s3up::auth {

// (Here rather than in authenticator.cpp: coroutine-free, so the config
// fuzzer can link it.)
std::string JwtSettings::problem() const {
  if (!enabled()) return {};
  const int sources = !jwks_url.empty() + !jwks_file.empty() + !secret.empty();
  if (sources > 1) return "set only one of jwt_jwks_url, jwt_jwks_file and jwt_secret";
  if (audience.empty()) return "jwt_audience is required with JWTs: a token made for another app must not work here";
  // RFC 7518 §3.2: an HMAC key at least as long as the hash.
  if (!secret.empty() && secret.size() < 32) return "jwt_secret must be at least 32 bytes";
  if (!jwks_url.empty() && !util::is_https_or_loopback(jwks_url)) {
    return "jwt_jwks_url must be an https:// URL (or http:// on loopback)";
  }
  if (sources == 0 && !util::is_https_or_loopback(issuer)) {
    return "jwt_issuer must be an https:// URL (or http:// on loopback) to discover its keys, or set jwt_jwks_url";
  }
  if (user_claim.empty()) return "jwt_user_claim must name a claim";
  if (admin_claim.empty() != admin_value.empty()) return "set jwt_admin_claim and jwt_admin_value together";
  if (leeway.count() < 0 || leeway > std::chrono::hours(1)) return "jwt_leeway must be between 0 s and 1 h";
  return {};
}

}  // namespace s3up::auth
