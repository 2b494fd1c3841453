#pragma once
// Small text helpers shared by the protocol code (HTTP headers, multipart,
// SigV4, INI files, config values).
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace s3up::util {

// Valid UTF-8 without control characters or the bidirectional formatting
// characters that make text display as something else: fit to show a
// person (file names, user names).
bool is_displayable_text(std::string_view s);
// Valid UTF-8, whatever its characters.
bool is_valid_utf8(std::string_view s);

// Without leading and trailing spaces, tabs, CR and LF.
inline std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t\r\n";
  const auto first = s.find_first_not_of(ws);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(ws) - first + 1);
}

// The whole of `s` as a decimal integer (std::from_chars: no spaces, no '+');
// nullopt if anything is left over, it is empty, or it does not fit.
template <class Int>
std::optional<Int> parse_integer(std::string_view s) {
  Int n{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return n;
}

// A-Z to a-z; other bytes (UTF-8 included) unchanged.
inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A Content-Type's media type without its parameters, trimmed, in lower
// case: "Text/HTML; charset=x" -> "text/html".
inline std::string media_type_essence(std::string_view content_type) {
  return ascii_lower(trim(content_type.substr(0, content_type.find(';'))));
}

// RFC 3986: unreserved characters (A-Z a-z 0-9 - _ . ~) as they are, every
// other byte as %XX in upper case; '/' too unless keep_slash.
inline std::string percent_encode(std::string_view s, bool keep_slash = false) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '_' || c == '.' || c == '~';
    if (unreserved || (c == '/' && keep_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

// Content-Disposition for a download under the client's original name
// (RFC 6266): an ASCII fallback with anything unsafe replaced by '_', and the
// exact UTF-8 name in RFC 8187's filename*.
inline std::string content_disposition(std::string_view disposition, std::string_view file_name) {
  std::string ascii;
  for (unsigned char c : file_name) {
    if (c >= 0x80 && c < 0xc0) continue;  // a UTF-8 continuation byte: its character is already a '_'
    ascii.push_back(c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? '_' : static_cast<char>(c));
  }
  return std::string(disposition) + "; filename=\"" + ascii + "\"; filename*=UTF-8''" + percent_encode(file_name);
}
inline std::string content_disposition_attachment(std::string_view file_name) {
  return content_disposition("attachment", file_name);
}

// A URL with its userinfo (user and password) replaced by REDACTED: what a
// log or `config` may show of an endpoint written as http://key:secret@host.
inline std::string redact_url_userinfo(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const auto authority_end = url.find_first_of("/?#", scheme + 3);
  const auto authority =
      url.substr(scheme + 3, authority_end == std::string_view::npos ? url.npos : authority_end - scheme - 3);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, scheme + 3)) + "REDACTED@" + std::string(url.substr(scheme + 3 + at + 1));
}

// Whether the service may send credentials or events to `url`: https, or
// http only to a loopback host (what a test or a sidecar listens on); any
// cleartext URL elsewhere could be anyone's.
bool is_https_or_loopback(std::string_view url);

}  // namespace s3up::util
