// The documents credentials come in: the metadata endpoints' JSON and the
// shared credentials file (credentials.hpp). Apart from the providers that
// fetch them, so they are parsed (and fuzzed, tests/fuzz) without any I/O.
#include <boost/json/parse.hpp>

#include "storage/s3/credentials.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

namespace s3up::storage::s3 {

std::optional<ExpiringCredentials> parse_metadata_credentials(std::string_view json) {
  boost::system::error_code ec;
  const auto value = boost::json::parse(json, ec);
  if (ec || !value.is_object()) return std::nullopt;
  const auto& o = value.as_object();
  const auto text = [&](std::string_view key) -> std::string {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  if (o.contains("Code") && text("Code") != "Success") return std::nullopt;
  ExpiringCredentials out;
  out.credentials = {text("AccessKeyId"), text("SecretAccessKey"), text("Token")};
  if (out.credentials.access_key_id.empty() || out.credentials.secret_access_key.empty()) return std::nullopt;
  if (o.contains("Expiration")) {
    out.expires_micros = util::parse_rfc3339(text("Expiration"));
    if (!out.expires_micros) return std::nullopt;
  }
  return out;
}

std::optional<Credentials> parse_credentials_file(std::string_view text, std::string_view profile) {
  Credentials c;
  bool in_profile = false, found = false;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = util::trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      const auto close = line.find(']');
      if (close == std::string_view::npos) continue;
      std::string_view name = util::trim(line.substr(1, close - 1));
      if (name.starts_with("profile ")) name = util::trim(name.substr(8));  // the config file's spelling
      in_profile = name == profile;
      found |= in_profile;
      continue;
    }
    if (!in_profile) continue;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = util::trim(line.substr(0, eq));
    const std::string value(util::trim(line.substr(eq + 1)));
    if (key == "aws_access_key_id")
      c.access_key_id = value;
    else if (key == "aws_secret_access_key")
      c.secret_access_key = value;
    else if (key == "aws_session_token")
      c.session_token = value;
  }
  if (!found || c.access_key_id.empty() || c.secret_access_key.empty()) return std::nullopt;
  return c;
}

}  // namespace s3up::storage::s3
