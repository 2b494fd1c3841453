#include "upload/policy.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "util/header_value.hpp"
#include "util/text.hpp"

namespace s3up::upload {

namespace {

constexpr std::size_t kMaxMediaTypeBytes = 255;

bool is_token_char(char c) {  // RFC 9110 §5.6.2 tchar
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_token_char); }

// Character sets a stored type may name: the ones browsers decode the same
// way everywhere. (utf-7 and friends have been used to smuggle script.)
constexpr std::array<std::string_view, 7> kAllowedCharsets = {"utf-8",  "us-ascii", "iso-8859-1", "windows-1252",
                                                              "utf-16", "utf-16le", "utf-16be"};

}  // namespace

bool type_allowed(std::string_view media_type, const std::vector<std::string>& patterns) {
  if (patterns.empty()) return true;
  const std::string type = util::media_type_essence(media_type);
  for (const auto& p : patterns) {
    if (p == "*" || p == "*/*" || p == type) return true;
    if (p.ends_with("/*") && type.starts_with(std::string_view(p).substr(0, p.size() - 1))) return true;
  }
  return false;
}

std::optional<std::string> normalize_media_type(std::string_view declared) {
  if (declared.size() > kMaxMediaTypeBytes) return std::nullopt;
  // The same reading as a part's headers get: value lower-cased, parameters
  // unquoted; nullopt for a parameter without '=' or an unterminated quote.
  auto parsed = util::parse_header_value(declared);
  if (!parsed) return std::nullopt;
  const std::string_view essence = parsed->value;
  const auto slash = essence.find('/');
  if (slash == std::string_view::npos || !is_token(essence.substr(0, slash)) || !is_token(essence.substr(slash + 1))) {
    return std::nullopt;
  }
  std::string normalized = std::move(parsed->value);
  // Of the parameters only an allowed charset is kept: nothing else a client
  // wrote is served back.
  if (const auto charset = parsed->params.find("charset"); charset != parsed->params.end()) {
    const auto name = util::ascii_lower(charset->second);
    if (std::find(kAllowedCharsets.begin(), kAllowedCharsets.end(), name) != kAllowedCharsets.end()) {
      normalized += "; charset=" + name;
    }
  }
  return normalized;
}

std::optional<std::vector<std::string>> parse_type_patterns(std::string_view list) {
  std::vector<std::string> patterns;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto item = util::trim(list.substr(0, comma));
    if (!item.empty()) {
      std::string pattern = util::ascii_lower(item);
      const auto slash = pattern.find('/');
      if (pattern != "*" && (slash == std::string::npos || slash == 0 || slash + 1 == pattern.size() ||
                             !is_token(pattern.substr(0, slash)) ||
                             (pattern.substr(slash + 1) != "*" && !is_token(pattern.substr(slash + 1))))) {
        return std::nullopt;
      }
      patterns.push_back(std::move(pattern));
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return patterns;
}

bool is_acceptable_file_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxFileNameBytes) return false;
  return util::is_displayable_text(name);
}

Error file_too_large(const Limits& limits) {
  return Error(Failure::too_large,
               "file exceeds the maximum upload size of " + std::to_string(limits.max_upload_bytes) + " bytes");
}

Error quota_exceeded() { return Error(Failure::quota_exceeded, "this upload would exceed your storage quota"); }

Error invalid_file_name() {
  return Error(Failure::invalid_file_name,
               "file name must be 1-1024 bytes of UTF-8 without control or bidirectional formatting characters");
}

Error type_not_accepted(std::string_view sniffed) {
  return Error(Failure::type_refused, "files of type " + std::string(sniffed) + " are not accepted here");
}

Error too_many_uploads(const Limits& limits) {
  return Error(Failure::busy, fmt::format("at most {} uploads at once per user", limits.max_concurrent_uploads));
}

}  // namespace s3up::upload
