#pragma once
// Human-friendly sizes and durations for configuration and the CLI.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace s3up::util {

// "5GiB", "10MB", "512k", "1048576" -> bytes. Binary (KiB, MiB, GiB, TiB) and
// decimal (KB, MB, GB, TB) units; a bare K/M/G/T is binary. nullopt if malformed
// or if the value overflows 64 bits.
std::optional<std::uint64_t> parse_size(std::string_view text);

// "30s", "5m", "2h", "30d", "250ms", "90" (seconds) -> duration.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

std::string format_size(std::uint64_t bytes);  // "5 GiB", "1.5 MiB", "17 B"

}  // namespace s3up::util
