#include "upload/file_json.hpp"

#include "util/crypto.hpp"
#include "util/text.hpp"

namespace s3up::upload {

namespace json = boost::json;

namespace {

bool is_key_char(char c) { return c > 0x20 && c < 0x7f && c != ','; }

}  // namespace

std::optional<Metadata> parse_metadata(std::string_view header) {
  Metadata out;
  if (header.empty()) return out;
  while (true) {
    const auto comma = header.find(',');
    std::string_view pair = header.substr(0, comma);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    while (!pair.empty() && pair.back() == ' ') pair.remove_suffix(1);
    const auto space = pair.find(' ');
    const std::string_view key = pair.substr(0, space);
    if (key.empty()) return std::nullopt;
    for (const char c : key) {
      if (!is_key_char(c)) return std::nullopt;
    }
    for (const auto& [k, v] : out) {
      if (k == key) return std::nullopt;
    }
    std::string value;
    if (space != std::string_view::npos) {
      const auto decoded = util::base64_decode(pair.substr(space + 1));
      if (!decoded) return std::nullopt;
      value = *decoded;
    }
    out.emplace_back(std::string(key), std::move(value));
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return out;
}

std::string with_metadata(std::string_view header, const Metadata& added) {
  Metadata pairs = parse_metadata(header).value_or(Metadata{});
  for (const auto& [key, value] : added) {
    std::erase_if(pairs, [&](const auto& p) { return p.first == key; });
    pairs.emplace_back(key, value);
  }
  std::string out;
  for (const auto& [key, value] : pairs) {
    if (!out.empty()) out += ',';
    out += key;
    if (!value.empty()) out += ' ' + util::base64(value);
  }
  return out;
}

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
