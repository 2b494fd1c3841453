#include "util/text.hpp"

#include <cstdint>

#include <boost/url/parse.hpp>

namespace s3up::util {
namespace {

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

// Code points displayable text may not contain: they are invisible, or change how
// the rest of the name displays. C0 and C1 controls and DEL; the bidirectional
// embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which
// make a file name "evil\u202Egpj.exe" display as "evilexe.jpg"; and the bidi marks
// U+200E, U+200F and U+061C.
bool is_refused_for_display(std::uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
         cp == 0x200E || cp == 0x200F || cp == 0x061C;
}

}  // namespace

bool is_displayable_text(std::string_view s) {
  return for_each_code_point(s, [](std::uint32_t cp) { return !is_refused_for_display(cp); });
}

bool is_valid_utf8(std::string_view s) {
  return for_each_code_point(s, [](std::uint32_t) { return true; });
}

bool is_https_or_loopback(std::string_view url) {
  const auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return false;
  const std::string scheme = ascii_lower(parsed->scheme());
  if (scheme == "https") return true;
  if (scheme != "http") return false;
  const std::string host = ascii_lower(parsed->host_address());
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

}  // namespace s3up::util
