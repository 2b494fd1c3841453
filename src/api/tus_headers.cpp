#include "api/tus_headers.hpp"

#include <ctime>

#include <fmt/format.h>

#include "util/crypto.hpp"

namespace s3up::api::tus {

namespace {

std::optional<std::size_t> digest_size(std::string_view algorithm) {
  if (algorithm == "sha1") return 20;
  if (algorithm == "sha256") return 32;
  if (algorithm == "md5") return 16;
  if (algorithm == "crc32" || algorithm == "crc32c") return 4;
  if (algorithm == "crc64nvme") return 8;
  return std::nullopt;
}

}  // namespace

std::variant<Checksum, ChecksumProblem> parse_checksum(std::string_view header) {
  const auto space = header.find(' ');
  if (space == std::string_view::npos || space == 0) return ChecksumProblem::malformed;
  const std::string_view algorithm = header.substr(0, space);
  const auto size = digest_size(algorithm);
  if (!size) return ChecksumProblem::unsupported;
  const auto digest = util::base64_decode(header.substr(space + 1));
  if (!digest || digest->size() != *size) return ChecksumProblem::malformed;
  return Checksum{std::string(algorithm), *digest};
}

std::string http_date(util::Micros t) {
  static constexpr std::string_view kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t seconds = static_cast<std::time_t>(t / 1'000'000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  // Written out, not strftime: %a and %b follow the locale, the header must not.
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

}  // namespace s3up::api::tus
