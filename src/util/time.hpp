#pragma once
// Timestamps as they are stored and as the API shows them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace s3up::util {

// Microseconds since the Unix epoch: how every timestamp is stored.
using Micros = std::int64_t;
Micros now_micros();

// RFC 3339 in UTC with millisecond precision: "2026-11-27T23:41:00.123Z".
std::string rfc3339(Micros t);
// Reads "2026-11-28T08:00:00Z", with optional fractional seconds and a "Z",
// "+hh:mm" or "+hh" offset (what AWS metadata endpoints write, and
// PostgreSQL's ISO output: "2026-11-28 08:00:00.123456+00").
std::optional<Micros> parse_rfc3339(std::string_view text);

}  // namespace s3up::util
