#pragma once
// What an upload may be, decided apart from how it arrives: file names,
// declared and sniffed types, sizes. The errors an upload ends with when it
// breaks a rule are written here once, in the upload's terms (the API turns
// them into statuses).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/byte_source.hpp"
#include "util/failure.hpp"

namespace s3up::upload {

enum class Failure {
  bad_request,        // a value the upload cannot take (a length below its offset, an unknown checksum)
  invalid_file_name,  // see is_acceptable_file_name
  not_found,          // no such upload, or not the caller's
  conflict,           // not at the upload's offset, or it was cancelled meanwhile
  locked,             // another request writes the upload now
  checksum_mismatch,  // the chunk's bytes do not match the digest sent with them
  too_large,          // over the size limit or the upload's own length
  quota_exceeded,     // over the owner's storage quota
  type_refused,       // the bytes are of a type not allowed here
  busy,               // the owner has as many uploads at once as allowed; retry soon
  not_supported,      // the store cannot do what the upload needs (resumable writes)
  length_required,    // through a link with a byte limit, an upload that does not say its length
  link_full,          // the upload link takes no more files
  link_gone,          // the upload link expired or was revoked meanwhile
  refused,            // the pre-upload hook said no (403)
  unprocessable,      // the pre-upload hook said no, as 422
  check_unavailable,  // the pre-upload hook could not be asked (it failed closed)
};

using Error = util::KindedError<Failure, util::RequestFailure>;

struct Limits {
  std::uint64_t max_upload_bytes = 5ull << 30;
  unsigned max_concurrent_uploads = 0;         // per user, in this instance; 0 = no limit
  std::vector<std::string> allowed_types;      // patterns ("image/*", "application/pdf"); empty = any
  std::optional<std::uint64_t> default_quota;  // bytes per user without a quota of their own; none = unlimited
};

// Whether a media type (parameters ignored, any case) matches one of the
// patterns: "type/subtype", "type/*", "*/*" or "*".
bool type_allowed(std::string_view media_type, const std::vector<std::string>& patterns);
// A comma-separated list of such patterns, each trimmed and in lower case
// (empty items dropped); nullopt if one is not a pattern.
std::optional<std::vector<std::string>> parse_type_patterns(std::string_view list);

inline constexpr std::size_t kMaxFileNameBytes = 1024;

// Checks applied to a client's file name, which is kept as metadata only:
// 1..kMaxFileNameBytes bytes of valid UTF-8 without C0/C1 control characters, DEL, or
// bidirectional formatting characters (embeddings, overrides, isolates, marks).
bool is_acceptable_file_name(std::string_view name);

// A client's declared Content-Type as it is stored and served back: one
// media type, "type/subtype" in lower case, plus its charset when that is one
// of a few well-known ones; nullopt if the text is not a single valid media
// type (a list, stray characters...), and then the bytes decide.
std::optional<std::string> normalize_media_type(std::string_view declared);

// The errors of these rules.
Error file_too_large(const Limits& limits);
Error quota_exceeded();
Error invalid_file_name();
Error type_not_accepted(std::string_view sniffed);
Error too_many_uploads(const Limits& limits);

}  // namespace s3up::upload
