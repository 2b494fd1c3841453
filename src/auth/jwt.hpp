#pragma once
// JSON Web Tokens (RFC 7519) signed as compact JWS (RFC 7515), checked against
// a JSON Web Key Set (RFC 7517) or a shared secret, on OpenSSL 3. Only
// verification: the service never signs a JWT.
//
// What is accepted, and why it is strict:
// - The algorithm comes from the token's header, but it must be one we list
//   (RS*, PS*, ES*, EdDSA/Ed25519, and HS* only with a secret) and it must
//   fit the key's type and curve; a key that names its own "alg" must name
//   this one. So "none" is refused, and a token "signed" by HMAC with an RSA
//   public key as the secret finds no key to check it with.
// - The key is the one the header's "kid" names, or without a kid the only
//   key of a fitting type.
// - exp is required; nbf and iat are honoured, each with the leeway; aud
//   (a string or an array) must contain the audience; iss must match when
//   one is expected.
// Checked on OpenSSL 3's EVP interface: no JOSE library in Debian 12 covers
// the algorithms above (libjwt 1.10 reads no JWKS, cjose 0.6 and libjose 11
// have no Ed25519).
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/failure.hpp"

namespace s3up::auth::jwt {

// Why a token was refused. Each one's message is one line for the client
// and the log, never with any part of the token in it.
enum class Failure {
  malformed,        // not three base64url parts of JSON, or a claim of the wrong type
  unsupported,      // an algorithm we do not accept ("none", an HS* without a secret, ...)
  unknown_key,      // no key fits the header (kid unknown, or no key of the type)
  bad_signature,    // the signature does not verify
  expired,          // exp (plus leeway) is past, or exp is missing
  not_yet_valid,    // nbf or iat (less leeway) is in the future
  wrong_audience,   // aud does not contain the audience
  wrong_issuer,     // iss is not the issuer
  no_user,          // the user claim is missing or not a non-empty string
};
using Error = util::KindedError<Failure>;

struct Expectations {
  std::string audience;                // required
  std::optional<std::string> issuer;   // checked when set
  std::chrono::seconds leeway{60};
  std::string user_claim = "sub";
  std::string admin_claim;             // empty: no claim makes an admin
  std::string admin_value;
};

struct Claims {
  std::string issuer;  // iss, or empty when the token has none
  std::string user;    // the user claim's value
  bool admin = false;  // the admin claim has the admin value (or contains it)
  std::int64_t expires_at = 0;  // exp, unix seconds
};

// The verification keys: a JWKS's usable signature keys, or a secret for HS*.
class KeySet {
 public:
  KeySet();
  ~KeySet();
  KeySet(KeySet&&) noexcept;
  KeySet& operator=(KeySet&&) noexcept;

  // The signature keys of a JWKS document. Keys this verifier cannot use
  // (encryption keys, unknown types or curves, RSA under 2048 bits) are
  // skipped, each named in `skipped` (kid and why). Throws
  // std::invalid_argument if the text is not a JWKS ({"keys": [...]}).
  static KeySet from_jwks(std::string_view json, std::vector<std::string>* skipped = nullptr);
  // A shared secret for HS256/384/512 (e.g. Supabase's legacy JWT secret).
  static KeySet from_secret(std::string_view secret);

  std::size_t size() const;
  bool empty() const { return size() == 0; }

  struct Key;

 private:
  friend Claims verify(std::string_view, const KeySet&, const Expectations&, std::int64_t);
  std::vector<std::unique_ptr<Key>> keys_;
};

// Whether `token` has the shape of a compact JWS (three base64url parts, the
// first beginning as a JSON object does), so it is told from other bearer
// tokens without decoding it.
bool looks_like_jwt(std::string_view token);

// Verifies `token` with `keys` at `now` (unix seconds) against `expect`;
// throws Error saying why it is refused. Error(unknown_key) means the set
// has no key for it: a provider that rotated keys since the set was fetched
// would have it (JwksCache refetches then).
Claims verify(std::string_view token, const KeySet& keys, const Expectations& expect, std::int64_t now);

}  // namespace s3up::auth::jwt
