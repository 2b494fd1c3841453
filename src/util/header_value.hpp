#pragma once
// The `value; name=param; ...` shape shared by Content-Type,
// Content-Disposition and other HTTP header values.
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace s3up::util {

// A parsed header value such as `form-data; name="file"; filename="a.txt"`:
// the value lower-cased, parameter names lower-cased, quoted strings unquoted.
// An extended parameter (RFC 8187, `filename*=UTF-8''%E2%82%AC.txt`) is decoded
// and stored under its name with the '*' ("filename*").
struct HeaderValue {
  std::string value;
  std::map<std::string, std::string> params;
};
std::optional<HeaderValue> parse_header_value(std::string_view text);

}  // namespace s3up::util
