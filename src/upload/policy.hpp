#pragma once
// What an upload may be, decided apart from how it arrives: file names,
// declared and sniffed types, sizes. The errors a client sees when an upload
// breaks a rule are written here once.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/error.hpp"

namespace s3up::upload {

struct Limits {
  std::uint64_t max_upload_bytes = 5ull << 30;
  unsigned max_concurrent_uploads = 0;     // per user, in this instance; 0 = no limit
  std::vector<std::string> allowed_types;  // patterns ("image/*", "application/pdf"); empty = any
  std::optional<std::uint64_t> default_quota;  // bytes per user without a quota of their own; none = unlimited
};

// Whether a media type (parameters ignored, any case) matches one of the
// patterns: "type/subtype", "type/*", "*/*" or "*".
bool type_allowed(std::string_view media_type, const std::vector<std::string>& patterns);

// Checks applied to a client's file name, which is kept as metadata only:
// 1..1024 bytes of valid UTF-8 without C0/C1 control characters, DEL, or
// bidirectional formatting characters (embeddings, overrides, isolates, marks).
bool is_acceptable_file_name(std::string_view name);

// A client's declared Content-Type as it is stored and served back: one
// media type, "type/subtype" in lower case, plus its charset when that is one
// of a few well-known ones; nullopt if the text is not a single valid media
// type (a list, stray characters...), and then the bytes decide.
std::optional<std::string> normalize_media_type(std::string_view declared);

// The errors of these rules.
ApiError file_too_large(const Limits& limits);
ApiError quota_exceeded();
ApiError invalid_file_name();
ApiError type_not_accepted(std::string_view sniffed);
ApiError too_many_uploads(const Limits& limits);

}  // namespace s3up::upload
