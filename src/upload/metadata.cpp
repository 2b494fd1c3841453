// tus Upload-Metadata, read and written (file_json.hpp); apart from the
// JSON writers so it is parsed (and fuzzed, tests/fuzz) on its own.
#include "upload/file_json.hpp"

#include "util/crypto.hpp"
#include "util/text.hpp"

namespace s3up::upload {

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
  for (const auto& pair : added) {
    std::erase_if(pairs, [&](const auto& p) { return p.first == pair.first; });
    pairs.push_back(pair);
  }
  std::string out;
  for (const auto& [key, value] : pairs) {
    if (!out.empty()) out += ',';
    out += key;
    if (!value.empty()) out += ' ' + util::base64(value);
  }
  return out;
}

}  // namespace s3up::upload
