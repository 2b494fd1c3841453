#pragma once
// Hashing, randomness and encodings, all on OpenSSL 3.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

struct evp_md_ctx_st;
struct evp_md_st;

namespace s3up::util {

// Incremental hashing on OpenSSL EVP (which uses SHA-NI / AVX2 where the CPU
// has them). Sha256 and Md5 below fix the algorithm and the digest size.
class EvpHash {
 public:
  EvpHash(const EvpHash&) = delete;
  EvpHash& operator=(const EvpHash&) = delete;

  void update(std::string_view data);
  void update(std::span<const char> data) { update(std::string_view(data.data(), data.size())); }
  void update(const std::string& data) { update(std::string_view(data)); }

 protected:
  explicit EvpHash(const evp_md_st* algorithm);
  ~EvpHash();
  void finish_into(std::span<std::uint8_t> digest);  // once; no update afterwards

 private:
  evp_md_ctx_st* ctx_;
};

// The digest as a fixed-size array.
template <std::size_t DigestSize>
class FixedSizeHash : public EvpHash {
 public:
  using Digest = std::array<std::uint8_t, DigestSize>;
  Digest finish() {  // once; no update afterwards
    Digest digest{};
    finish_into(digest);
    return digest;
  }

 protected:
  using EvpHash::EvpHash;
};

class Sha256 : public FixedSizeHash<32> {
 public:
  Sha256();
};

// SHA-256 whose running state can be saved as text and restored exactly,
// anywhere: a resumable upload's whole-file hash carried from one request
// (and one instance) to the next with its durable offset, so the bytes are
// never read a second time. (EVP cannot export its state; this runs on
// OpenSSL's SHA256_CTX, the same SHA-NI code underneath.)
class ResumableSha256 {
 public:
  ResumableSha256();
  ~ResumableSha256();
  ResumableSha256(const ResumableSha256& other);
  ResumableSha256& operator=(const ResumableSha256& other);

  // The state save() made; nullopt for text it did not make.
  static std::optional<ResumableSha256> restore(std::string_view saved);
  void update(std::string_view data);
  void update(std::span<const char> data) { update(std::string_view(data.data(), data.size())); }
  // Printable ASCII of at most 200 bytes; the same state gives the same text.
  std::string save() const;
  std::uint64_t bytes_hashed() const;
  // The digest of what was hashed so far; the state itself goes on.
  std::array<std::uint8_t, 32> digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// MD5 only where a protocol asks for it (S3's Content-MD5), never for security.
class Md5 : public FixedSizeHash<16> {
 public:
  Md5();
};

// A checksum named at run time, as tus's Upload-Checksum and S3's
// x-amz-checksum-* name them: "sha1", "sha256", "md5" (OpenSSL), "crc32"
// (zlib: the CRC-32 of gzip), "crc32c" (Castagnoli, with the CPU's CRC32
// instruction) and "crc64nvme" (CRC-64/NVME); a CRC's digest is its bytes
// big-endian. A CRC catches corruption on the way at a fraction of SHA-256's
// CPU, which is what lets every chunk of a fast upload be checked without
// slowing it.
class NamedHash {
 public:
  virtual ~NamedHash() = default;
  // nullptr for a name it does not know.
  static std::unique_ptr<NamedHash> make(std::string_view name);
  virtual void update(std::string_view data) = 0;
  void update(std::span<const char> data) { update(std::string_view(data.data(), data.size())); }
  void update(const std::string& data) { update(std::string_view(data)); }
  virtual std::string finish() = 0;  // the raw digest; once
};

std::string sha256_hex(std::string_view data);

// HMAC-SHA256 of `data` under `key`.
std::array<std::uint8_t, 32> hmac_sha256(std::string_view key, std::string_view data);
// Equal contents, in time that does not depend on where they differ (MACs).
bool constant_time_equal(std::string_view a, std::string_view b);

// Cryptographically secure random bytes (RAND_bytes); throws if the DRBG fails.
void random_bytes(std::span<std::uint8_t> out);

std::string to_hex(std::span<const std::uint8_t> bytes);
std::string base64(std::span<const std::uint8_t> bytes);     // padded, RFC 4648 §4
std::string base64url(std::span<const std::uint8_t> bytes);  // unpadded, RFC 4648 §5
// The same for bytes held as text (a raw digest, a file name).
inline std::span<const std::uint8_t> as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}
inline std::string to_hex(std::string_view bytes) { return to_hex(as_bytes(bytes)); }
inline std::string base64(std::string_view bytes) { return base64(as_bytes(bytes)); }
inline std::string base64url(std::string_view bytes) { return base64url(as_bytes(bytes)); }
std::optional<std::string> base64url_decode(std::string_view text);  // nullopt if not unpadded base64url
std::optional<std::string> base64_decode(std::string_view text);     // nullopt if not padded RFC 4648 §4 base64

}  // namespace s3up::util
