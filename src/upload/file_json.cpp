#include "upload/file_json.hpp"

#include "util/crypto.hpp"
#include "util/text.hpp"

namespace s3up::upload {

namespace json = boost::json;

json::object metadata_json(std::string_view header) {
  json::object o;
  if (const auto pairs = parse_metadata(header)) {
    for (const auto& [key, value] : *pairs) {
      o[key] = util::is_valid_utf8(value) ? value : util::base64(value);
    }
  }
  return o;
}

json::value time_json(const std::optional<util::Micros>& at) {
  return at ? json::value(util::rfc3339(*at)) : json::value(nullptr);
}

json::object file_json(const db::Upload& u, bool details) {
  json::object o{
      {"file_id", u.id},
      {"file_name", u.file_name},
      {"file_size", u.file_size},
      {"upload_time", util::rfc3339(u.created_at)},
      {"content_type", u.content_type},
      {"sha256", u.sha256},
      {"completed_at", time_json(u.completed_at)},
  };
  if (u.upload_link_id) o["upload_link"] = *u.upload_link_id;
  if (details) {
    o["user_id"] = u.user_id;
    o["status"] = db::to_string(u.status);
  }
  return o;
}

}  // namespace s3up::upload
