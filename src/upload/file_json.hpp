#pragma once
// An upload as clients see it, in the API's answers and in webhook payloads
// alike: one writer, so a receiver can treat an event's data and GET
// /files/{id} as the same thing.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "db/metadata_store.hpp"
#include "util/time.hpp"

namespace s3up::upload {

// {file_id, file_name, file_size, upload_time (when it started), content_type,
// sha256, completed_at (when its last byte was stored; null until then),
// upload_link (if it came through one)}, and with `details` also its owner
// (user_id) and status.
boost::json::object file_json(const db::Upload& upload, bool details);

// tus Upload-Metadata, as a creation sends it and a resumable upload keeps
// it: comma-separated pairs "key base64-value", or a key alone. Keys are
// non-empty, unique, without spaces or commas; values are padded base64,
// decoded here. nullopt for a header that breaks those rules.
using Metadata = std::vector<std::pair<std::string, std::string>>;
std::optional<Metadata> parse_metadata(std::string_view header);
// `header` with `added` pairs (each replacing a pair of its key), written
// back as Upload-Metadata.
std::string with_metadata(std::string_view header, const Metadata& added);
// The pairs as a JSON object (a value that is not UTF-8 as base64 instead).
boost::json::object metadata_json(std::string_view header);

// A moment as the API writes it (RFC 3339), or null.
boost::json::value time_json(const std::optional<util::Micros>& at);

}  // namespace s3up::upload
