// ResumableSha256 (crypto.hpp). OpenSSL 3 deprecates the SHA256_* functions
// in favour of EVP, but EVP has no way to export a hash's state; these are
// the same implementation (SHA-NI where the CPU has it) with a public state.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <cstring>
#include <stdexcept>

#include "util/crypto.hpp"

namespace s3up::util {

namespace {

constexpr std::string_view kFormat = "sha256.1:";

void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
std::uint32_t get32(std::string_view in, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(in[at + i]);
  return v;
}

}  // namespace

struct ResumableSha256::State {
  SHA256_CTX ctx;
};

ResumableSha256::ResumableSha256() : state_(std::make_unique<State>()) {
  if (SHA256_Init(&state_->ctx) != 1) throw std::runtime_error("SHA256_Init failed");
}
ResumableSha256::~ResumableSha256() = default;
ResumableSha256::ResumableSha256(const ResumableSha256& other) : state_(std::make_unique<State>(*other.state_)) {}
ResumableSha256& ResumableSha256::operator=(const ResumableSha256& other) {
  *state_ = *other.state_;
  return *this;
}

void ResumableSha256::update(std::string_view data) {
  if (SHA256_Update(&state_->ctx, data.data(), data.size()) != 1) throw std::runtime_error("SHA256_Update failed");
}

std::uint64_t ResumableSha256::bytes_hashed() const {
  const auto bits = (static_cast<std::uint64_t>(state_->ctx.Nh) << 32) | state_->ctx.Nl;
  return bits / 8;
}

// The chaining values and the bit count as big-endian numbers, then the
// partial block's bytes as they are: the same text on any machine.
std::string ResumableSha256::save() const {
  const auto& c = state_->ctx;
  std::string raw;
  for (const auto h : c.h) put32(raw, h);
  put32(raw, c.Nh);
  put32(raw, c.Nl);
  raw.append(reinterpret_cast<const char*>(c.data), c.num);
  return std::string(kFormat) + base64url(raw);
}

std::optional<ResumableSha256> ResumableSha256::restore(std::string_view saved) {
  if (!saved.starts_with(kFormat)) return std::nullopt;
  const auto raw = base64url_decode(saved.substr(kFormat.size()));
  constexpr std::size_t kFixed = 10 * 4;
  if (!raw || raw->size() < kFixed || raw->size() >= kFixed + SHA256_CBLOCK) return std::nullopt;
  ResumableSha256 out;
  auto& c = out.state_->ctx;
  for (std::size_t i = 0; i < 8; ++i) c.h[i] = get32(*raw, 4 * i);
  c.Nh = get32(*raw, 32);
  c.Nl = get32(*raw, 36);
  c.num = static_cast<unsigned>(raw->size() - kFixed);
  // The partial block is what the count says is left over from whole blocks.
  if (c.Nl % 8 != 0 || (c.Nl / 8) % SHA256_CBLOCK != c.num) return std::nullopt;
  std::memcpy(c.data, raw->data() + kFixed, c.num);
  return out;
}

std::array<std::uint8_t, 32> ResumableSha256::digest() const {
  SHA256_CTX copy = state_->ctx;
  std::array<std::uint8_t, 32> out{};
  if (SHA256_Final(out.data(), &copy) != 1) throw std::runtime_error("SHA256_Final failed");
  return out;
}

}  // namespace s3up::util
