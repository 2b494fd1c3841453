#include "util/header_value.hpp"

#include "util/text.hpp"

namespace s3up::util {
namespace {

std::string lower(std::string_view s) { return ascii_lower(s); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 8187 ext-value: charset'[language]'pct-encoded. UTF-8 and ISO-8859-1.
std::optional<std::string> decode_ext_value(std::string_view v) {
  const auto q1 = v.find('\'');
  if (q1 == std::string_view::npos) return std::nullopt;
  const auto q2 = v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return std::nullopt;
  const std::string charset = lower(v.substr(0, q1));
  if (charset != "utf-8" && charset != "iso-8859-1") return std::nullopt;
  std::string raw;
  for (std::size_t i = q2 + 1; i < v.size(); ++i) {
    if (v[i] == '%') {
      if (i + 2 >= v.size()) return std::nullopt;
      const int hi = hex_value(v[i + 1]), lo = hex_value(v[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      raw.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      raw.push_back(v[i]);
    }
  }
  if (charset == "utf-8") return raw;
  std::string utf8;  // ISO-8859-1 code points map 1:1 onto U+0000..U+00FF
  for (unsigned char c : raw) {
    if (c < 0x80) {
      utf8.push_back(static_cast<char>(c));
    } else {
      utf8.push_back(static_cast<char>(0xC0 | (c >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return utf8;
}

}  // namespace

std::optional<HeaderValue> parse_header_value(std::string_view text) {
  HeaderValue out;
  std::size_t i = 0;
  const auto semi = text.find(';');
  out.value = lower(trim(text.substr(0, semi)));
  if (out.value.empty()) return std::nullopt;
  if (semi == std::string_view::npos) return out;
  i = semi + 1;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == ';')) ++i;
    if (i >= text.size()) break;
    const auto eq = text.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    std::string name = lower(trim(text.substr(i, eq - i)));
    if (name.empty()) return std::nullopt;
    i = eq + 1;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    std::string value;
    if (i < text.size() && text[i] == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        const char c = text[i];
        // A quoted-pair only for '"' and '\': browsers send Windows paths
        // ("C:\dir\a.txt") with bare backslashes.
        if (c == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) {
          value.push_back(text[i + 1]);
          i += 2;
          continue;
        }
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        value.push_back(c);
        ++i;
      }
      if (!closed) return std::nullopt;
    } else {
      const auto end = text.find(';', i);
      value = std::string(trim(text.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i)));
      i = end == std::string_view::npos ? text.size() : end;
    }
    if (!name.empty() && name.back() == '*') {
      auto decoded = decode_ext_value(value);
      if (!decoded) return std::nullopt;
      value = std::move(*decoded);
    }
    out.params[std::move(name)] = std::move(value);
  }
  return out;
}

}  // namespace s3up::util
