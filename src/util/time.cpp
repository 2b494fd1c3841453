#include "util/time.hpp"

#include <chrono>
#include <ctime>

#include <fmt/format.h>

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
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

std::optional<Micros> parse_rfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fff...](Z|+hh:mm|-hh:mm)
  const auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > text.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  const auto is = [&](std::size_t at, char c) { return at < text.size() && text[at] == c; };
  const auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  const auto hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || !is(4, '-') || !is(7, '-') ||
      !(is(10, 'T') || is(10, 't') || is(10, ' ')) || !is(13, ':') || !is(16, ':')) {
    return std::nullopt;
  }
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  Micros fraction = 0;
  if (is(pos, '.')) {
    ++pos;
    Micros scale = 100'000;
    const std::size_t first = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      fraction += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == first) return std::nullopt;
  }
  Micros offset = 0;
  if (is(pos, 'Z') || is(pos, 'z')) {
    ++pos;
  } else if (is(pos, '+') || is(pos, '-')) {
    // "+hh:mm"; PostgreSQL's ISO output writes whole hours as "+hh"
    const auto oh = digits(pos + 1, 2);
    if (!oh) return std::nullopt;
    int minutes = 0;
    if (is(pos + 3, ':')) {
      const auto om = digits(pos + 4, 2);
      if (!om) return std::nullopt;
      minutes = *om;
    }
    offset = (is(pos, '+') ? 1 : -1) * (Micros{*oh} * 3600 + minutes * 60) * 1'000'000;
    pos += is(pos + 3, ':') ? 6 : 3;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = *year - 1900;
  tm.tm_mon = *month - 1;
  tm.tm_mday = *day;
  tm.tm_hour = *hour;
  tm.tm_min = *minute;
  tm.tm_sec = *second;
  const std::time_t secs = timegm(&tm);
  return Micros{secs} * 1'000'000 + fraction - offset;
}

}  // namespace s3up::util
