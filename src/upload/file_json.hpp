#pragma once
// An upload as clients see it, in the API's answers and in webhook payloads
// alike: one writer, so a receiver can treat an event's data and GET
// /files/{id} as the same thing.
#include <optional>

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

// A moment as the API writes it (RFC 3339), or null.
boost::json::value time_json(const std::optional<util::Micros>& at);

}  // namespace s3up::upload
