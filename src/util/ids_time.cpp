#include "util/ids_time.hpp"

#include <array>
#include <ctime>

#include <fmt/format.h>

#include "util/crypto.hpp"

namespace s3up::util {

Micros now_micros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string rfc3339(Micros t) {
  std::time_t secs = static_cast<std::time_t>(t / 1'000'000);
  int millis = static_cast<int>((t % 1'000'000) / 1000);
  if (t < 0 && t % 1'000'000 != 0) {
    secs -= 1;
    millis = static_cast<int>(((t % 1'000'000) + 1'000'000) / 1000);
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

std::string uuid_v7() {
  std::array<std::uint8_t, 16> b{};
  random_bytes(b);
  const auto ms = static_cast<std::uint64_t>(now_micros() / 1000);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  b[6] = static_cast<std::uint8_t>(0x70 | (b[6] & 0x0f));  // version 7
  b[8] = static_cast<std::uint8_t>(0x80 | (b[8] & 0x3f));  // variant 10
  std::string hex = to_hex(b);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace s3up::util
