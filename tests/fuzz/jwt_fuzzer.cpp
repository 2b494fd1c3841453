// Bearer tokens and key sets: a JWT checked against a shared secret and
// against a JWKS, and the JWKS document itself.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "auth/jwt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace jwt = s3up::auth::jwt;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const jwt::KeySet secret = jwt::KeySet::from_secret("a-shared-secret-of-at-least-32-bytes!");
  static const jwt::KeySet jwks = jwt::KeySet::from_jwks(
      R"({"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig",)"
      R"("x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})");
  jwt::Expectations expect;
  expect.audience = "s3uploader";
  jwt::looks_like_jwt(text);
  for (const auto* keys : {&secret, &jwks}) {
    try {
      jwt::verify(text, *keys, expect, 1'800'000'000);
    } catch (const std::exception&) {
    }
  }
  try {
    jwt::KeySet::from_jwks(text);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
