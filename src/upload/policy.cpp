#include "upload/policy.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "util/header_value.hpp"
#include "util/text.hpp"

namespace s3up::upload {

namespace {

constexpr std::size_t kMaxFileNameBytes = 1024;
constexpr std::size_t kMaxMediaTypeBytes = 255;

// Decodes `s` as UTF-8, calling `each(code point)`; false if it is not
// valid UTF-8 (truncated or overlong sequences, surrogates, beyond U+10FFFF)
// or `each` returned false.
template <class Each>
bool for_each_code_point(std::string_view s, Each each) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      n = 0;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size() && n > 0) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    if (!each(cp)) return false;
    i += n + 1;
  }
  return true;
}

// Code points a file name may not contain: they are invisible, or change how
// the rest of the name displays. C0 and C1 controls and DEL; the bidirectional
// embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which
// make "evil\u202Egpj.exe" display as "evilexe.jpg"; and the bidi marks
// U+200E, U+200F and U+061C.
bool is_refused_in_file_names(std::uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
         cp == 0x200E || cp == 0x200F || cp == 0x061C;
}

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

bool is_acceptable_file_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxFileNameBytes) return false;
  return for_each_code_point(name, [](std::uint32_t cp) { return !is_refused_in_file_names(cp); });
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
