#pragma once
// Content sniffing with libmagic: the MIME type of a file from its first bytes.
#include <string_view>
#include <string>

namespace s3up::util {

// How many leading bytes are worth sniffing; libmagic looks at most at the
// first few KiB for the types that matter here.
inline constexpr std::size_t kSniffBytes = 4096;

// The MIME type (no parameters) of data that starts with `head`;
// "application/octet-stream" when libmagic cannot tell or the data is empty.
// Blocking (libmagic is slow-ish and not thread-safe): call from the blocking pool.
std::string sniff_mime_type(std::string_view head);

}  // namespace s3up::util
