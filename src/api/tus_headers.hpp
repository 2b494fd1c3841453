#pragma once
// The tus 1.0.0 protocol's own headers (https://tus.io/protocols/resumable-upload),
// read and written: Upload-Metadata, Upload-Checksum, and the HTTP-date of
// Upload-Expires. The endpoints that use them arrive with resumable uploads.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "util/time.hpp"

#include "upload/file_json.hpp"

namespace s3up::api::tus {

inline constexpr std::string_view kVersion = "1.0.0";
// The algorithms Upload-Checksum may name here (sha1 is the one the
// checksum extension requires; crc32 is the cheap one), as
// Tus-Checksum-Algorithm lists them.
inline constexpr std::string_view kChecksumAlgorithms = "sha1,sha256,md5,crc32,crc32c,crc64nvme";

using upload::Metadata;
using upload::parse_metadata;

// Upload-Checksum: "<algorithm> <base64 digest>".
struct Checksum {
  std::string algorithm;  // one of kChecksumAlgorithms
  std::string digest;     // raw bytes, of the algorithm's length
};
enum class ChecksumProblem {
  malformed,    // 400
  unsupported,  // 400 as well, but says which algorithms are
};
std::variant<Checksum, ChecksumProblem> parse_checksum(std::string_view header);

// An HTTP-date (RFC 9110 §5.6.7, IMF-fixdate): "Tue, 01 Dec 2026 14:00:00 GMT".
std::string http_date(util::Micros t);

}  // namespace s3up::api::tus
