#include "util/units.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

#include <fmt/format.h>

namespace s3up::util {
namespace {

std::string lower_trimmed(std::string_view s) { return ascii_lower(trim(s)); }

struct NumberWithUnit {
  double number = 0;
  std::uint64_t integer = 0;  // exact value when is_integer
  bool is_integer = false;
  std::string unit;  // lower-case, trimmed
};

// Splits "12.5 GiB" into 12.5 and "gib". Only digits and one '.' in the number.
std::optional<NumberWithUnit> split_number(std::string_view text) {
  const std::string s = lower_trimmed(text);
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  const std::string num = s.substr(0, i);
  if (std::count(num.begin(), num.end(), '.') > 1 || num == ".") return std::nullopt;
  NumberWithUnit out;
  out.unit = lower_trimmed(s.substr(i));
  out.is_integer = num.find('.') == std::string::npos;
  if (out.is_integer) {
    const auto integer = parse_integer<std::uint64_t>(num);
    if (!integer) return std::nullopt;
    out.integer = *integer;
    out.number = static_cast<double>(out.integer);
  } else {
    out.number = std::stod(num);
  }
  return out;
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
  const auto parsed = split_number(text);
  if (!parsed) return std::nullopt;
  const auto& [number, integer, is_integer, unit] = *parsed;
  std::uint64_t mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kib")
    mult = 1ull << 10;
  else if (unit == "m" || unit == "mib")
    mult = 1ull << 20;
  else if (unit == "g" || unit == "gib")
    mult = 1ull << 30;
  else if (unit == "t" || unit == "tib")
    mult = 1ull << 40;
  else if (unit == "kb")
    mult = 1000ull;
  else if (unit == "mb")
    mult = 1000ull * 1000;
  else if (unit == "gb")
    mult = 1000ull * 1000 * 1000;
  else if (unit == "tb")
    mult = 1000ull * 1000 * 1000 * 1000;
  else
    return std::nullopt;
  if (is_integer) {
    if (integer > std::numeric_limits<std::uint64_t>::max() / mult) return std::nullopt;
    return integer * mult;
  }
  const double v = number * static_cast<double>(mult);
  if (v >= 18446744073709551615.0) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  const auto parsed = split_number(text);
  if (!parsed) return std::nullopt;
  const auto& [number, integer, is_integer, unit] = *parsed;
  double ms_per_unit = 0;
  if (unit == "ms")
    ms_per_unit = 1;
  else if (unit.empty() || unit == "s")
    ms_per_unit = 1000;
  else if (unit == "m" || unit == "min")
    ms_per_unit = 60'000;
  else if (unit == "h")
    ms_per_unit = 3'600'000;
  else if (unit == "d")
    ms_per_unit = 86'400'000;
  else
    return std::nullopt;
  const double ms = number * ms_per_unit;
  if (ms > 9.0e15) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::string format_size(std::uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  if (v == static_cast<double>(static_cast<std::uint64_t>(v)))
    return fmt::format("{} {}", static_cast<std::uint64_t>(v), units[u]);
  return fmt::format("{:.1f} {}", v, units[u]);
}

}  // namespace s3up::util
