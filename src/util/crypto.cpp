#include "util/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <zlib.h>
// CRC-32C with the CPU's CRC32 instruction (Intel's ISA-L); CRC-64/NVME,
// which has no instruction of its own, table-driven 4 bytes per step
// (Google's crcutil).
#include <crcutil/generic_crc.h>
#include <isa-l/crc.h>

#include <stdexcept>

namespace s3up::util {

EvpHash::EvpHash(const evp_md_st* algorithm) : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, algorithm, nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw std::runtime_error("EVP digest init failed");
  }
}

EvpHash::~EvpHash() { EVP_MD_CTX_free(ctx_); }

void EvpHash::update(std::string_view data) {
  if (!data.empty() && EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) {
    throw std::runtime_error("EVP digest update failed");
  }
}

void EvpHash::finish_into(std::span<std::uint8_t> digest) {
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, digest.data(), &len) != 1 || len != digest.size()) {
    throw std::runtime_error("EVP digest final failed");
  }
}

Sha256::Sha256() : FixedSizeHash(EVP_sha256()) {}
Md5::Md5() : FixedSizeHash(EVP_md5()) {}

std::array<std::uint8_t, 32> hmac_sha256(std::string_view key, std::string_view data) {
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), out.data(), &len) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

class EvpNamedHash final : public NamedHash, private EvpHash {
 public:
  EvpNamedHash(const evp_md_st* algorithm, std::size_t size) : EvpHash(algorithm), size_(size) {}
  void update(std::string_view data) override { EvpHash::update(data); }
  std::string finish() override {
    std::string digest(size_, '\0');
    finish_into(std::span(reinterpret_cast<std::uint8_t*>(digest.data()), digest.size()));
    return digest;
  }

 private:
  std::size_t size_;
};

// Big-endian bytes of a CRC, as S3 (and tus) carry them.
template <class Word>
std::string big_endian(Word crc) {
  std::string out(sizeof(Word), '\0');
  for (std::size_t i = 0; i < sizeof(Word); ++i) out[i] = static_cast<char>(crc >> (8 * (sizeof(Word) - 1 - i)));
  return out;
}

class Crc32 final : public NamedHash {
 public:
  void update(std::string_view data) override {
    crc_ = crc32_z(crc_, reinterpret_cast<const Bytef*>(data.data()), data.size());
  }
  std::string finish() override { return big_endian(static_cast<std::uint32_t>(crc_)); }

 private:
  uLong crc_ = crc32_z(0, nullptr, 0);
};

class Crc32c final : public NamedHash {
 public:
  void update(std::string_view data) override {
    auto* bytes = reinterpret_cast<unsigned char*>(const_cast<char*>(data.data()));
    // ISA-L counts in int: pieces of at most 1 GiB.
    for (std::size_t done = 0; done < data.size();) {
      const auto n = std::min<std::size_t>(data.size() - done, std::size_t{1} << 30);
      crc_ = crc32_iscsi(bytes + done, static_cast<int>(n), crc_);
      done += n;
    }
  }
  // ISA-L leaves the final inversion to the caller (its iSCSI convention).
  std::string finish() override { return big_endian<std::uint32_t>(~crc_); }

 private:
  unsigned int crc_ = ~0u;
};

class Crc64Nvme final : public NamedHash {
 public:
  using Generic = crcutil::GenericCrc<crcutil::uint64, crcutil::uint64, crcutil::uint64, 4>;
  void update(std::string_view data) override { crc_ = tables().CrcDefault(data.data(), data.size(), crc_); }
  std::string finish() override { return big_endian<std::uint64_t>(crc_); }

 private:
  // The polynomial 0xad93d23594c93659 bit-reversed (crcutil works LSB first);
  // "canonical": starts from and ends with all ones, as CRC-64/NVME does.
  static const Generic& tables() {
    static const Generic generic(0x9a6c9329ac4bc9b5ull, 64, true);
    return generic;
  }
  crcutil::uint64 crc_ = 0;
};

}  // namespace

std::unique_ptr<NamedHash> NamedHash::make(std::string_view name) {
  if (name == "sha1") return std::make_unique<EvpNamedHash>(EVP_sha1(), 20);
  if (name == "sha256") return std::make_unique<EvpNamedHash>(EVP_sha256(), 32);
  if (name == "md5") return std::make_unique<EvpNamedHash>(EVP_md5(), 16);
  if (name == "crc32") return std::make_unique<Crc32>();
  if (name == "crc32c") return std::make_unique<Crc32c>();
  if (name == "crc64nvme") return std::make_unique<Crc64Nvme>();
  return nullptr;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return to_hex(h.finish());
}

void random_bytes(std::span<std::uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xf]);
  }
  return out;
}

std::string base64(std::span<const std::uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');  // + the NUL EVP_EncodeBlock writes
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64url(std::span<const std::uint8_t> bytes) {
  std::string out = base64(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

namespace {

// Base64 without padding over the alphabet whose last two digits are `c62`
// and `c63`; nullopt for anything else, or for non-canonical trailing bits.
std::optional<std::string> decode_base64_digits(std::string_view text, char c62, char c63) {
  if (text.size() % 4 == 1) return std::nullopt;
  const auto value = [&](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == c62) return 62;
    if (c == c63) return 63;
    return -1;
  };
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  if (bits & ((1u << count) - 1)) return std::nullopt;  // non-canonical trailing bits
  return out;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view text) { return decode_base64_digits(text, '-', '_'); }

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  while (padding < 2 && text.size() > padding && text[text.size() - 1 - padding] == '=') ++padding;
  return decode_base64_digits(text.substr(0, text.size() - padding), '+', '/');
}

}  // namespace s3up::util
