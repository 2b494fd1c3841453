#pragma once
// Hashing, randomness and encodings, all on OpenSSL 3.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace s3up::util {

// Incremental SHA-256 (OpenSSL EVP: uses SHA-NI / AVX2 where the CPU has them).
class Sha256 {
 public:
  using Digest = std::array<std::uint8_t, 32>;
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view data);
  void update(std::span<const char> data) { update(std::string_view(data.data(), data.size())); }
  void update(const std::string& data) { update(std::string_view(data)); }
  Digest finish();  // once; the object must not be updated afterwards

 private:
  evp_md_ctx_st* ctx_;
};

std::string sha256_hex(std::string_view data);

// Cryptographically secure random bytes (RAND_bytes); throws if the DRBG fails.
void random_bytes(std::span<std::uint8_t> out);

std::string to_hex(std::span<const std::uint8_t> bytes);
std::string base64url(std::span<const std::uint8_t> bytes);  // unpadded, RFC 4648 §5
std::optional<std::string> base64url_decode(std::string_view text);  // nullopt if not unpadded base64url

}  // namespace s3up::util
