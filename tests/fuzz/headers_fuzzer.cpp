// Header values clients send: Content-Type / Content-Disposition, tus's
// Upload-Metadata (parsed, written again, parsed the same) and
// Upload-Checksum, and a download's Range and If-None-Match.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/error.hpp"
#include "api/file_requests.hpp"
#include "api/tus_headers.hpp"
#include "upload/file_json.hpp"
#include "util/crypto.hpp"
#include "util/header_value.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  s3up::util::parse_header_value(text);
  s3up::api::tus::parse_checksum(text);
  if (const auto metadata = s3up::upload::parse_metadata(text)) {
    std::string again;
    for (const auto& [key, value] : *metadata) {
      if (!again.empty()) again += ",";
      again += key;
      if (!value.empty()) again += " " + s3up::util::base64(value);
    }
    const auto reread = s3up::upload::parse_metadata(again);
    if (!reread || *reread != *metadata) __builtin_trap();
  }
  // Range against a size taken from the input, so both ends get reached.
  const std::uint64_t object_size = size > 0 ? data[0] * 1000ull : 0;
  try {
    if (const auto range = s3up::api::parse_range(text, object_size, "\"etag\"")) {
      if (range->first > range->last || range->last >= object_size) __builtin_trap();
    }
  } catch (const s3up::ApiError&) {
  }
  s3up::api::none_match(text, "\"etag\"");
  return 0;
}
