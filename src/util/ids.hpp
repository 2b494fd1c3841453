#pragma once
// Upload ids.
#include <string>
#include <string_view>

namespace s3up::util {

// UUID version 7 (RFC 9562): 48-bit Unix milliseconds, then random bits, so ids
// sort by creation time and index well. Lower-case canonical text form.
std::string uuid_v7();
bool is_uuid(std::string_view s);

}  // namespace s3up::util
