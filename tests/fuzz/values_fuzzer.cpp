// Values of settings and of API fields: sizes, durations, RFC 3339 times
// (parsed, written, parsed to the same instant), integers, UUIDs, and the
// files list's page cursor (decoded, encoded, decoded the same).
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/file_requests.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "util/units.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  s3up::util::parse_size(text);
  s3up::util::parse_duration(text);
  s3up::util::parse_integer<std::int64_t>(text);
  s3up::util::parse_integer<std::uint64_t>(text);
  s3up::util::is_uuid(text);
  if (const auto t = s3up::util::parse_rfc3339(text)) {
    const auto again = s3up::util::parse_rfc3339(s3up::util::rfc3339(*t));
    // rfc3339() writes milliseconds: the instant survives to the millisecond
    // (rounded down, before 1970 too).
    const auto millis = [](std::int64_t micros) { return micros / 1000 - (micros % 1000 < 0 ? 1 : 0); };
    if (!again || millis(*again) != millis(*t)) __builtin_trap();
  }
  if (const auto cursor = s3up::api::decode_cursor(text)) {
    s3up::db::FileListing listing;
    listing.order = cursor->order;
    listing.descending = cursor->descending;
    s3up::db::Upload last;
    last.id = cursor->after.upload_id;
    last.created_at = cursor->after.created_at;
    last.file_name = cursor->after.file_name;
    last.file_size = cursor->after.file_size;
    const auto again = s3up::api::decode_cursor(s3up::api::encode_cursor(listing, last));
    if (!again || again->order != cursor->order || again->after.upload_id != cursor->after.upload_id) __builtin_trap();
  }
  return 0;
}
