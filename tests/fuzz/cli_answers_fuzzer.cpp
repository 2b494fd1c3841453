// What the CLI (s3uploader push/ls/get/rm) makes of a server's answers: a
// Location made absolute, the origin it checks before sending the token,
// the JSON error message it shows, Retry-After, and the text it prints,
// which must never carry a control character to the terminal.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "client/transport.hpp"

namespace {

// No C0 control, no DEL, no C1 (U+0080..U+009F, as UTF-8 C2 80..C2 9F).
bool terminal_safe(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Fields split by NUL: a Location, a Retry-After, then a body.
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  const auto field = [&] {
    const auto nul = rest.find('\0');
    const std::string_view f = rest.substr(0, nul);
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
    return f;
  };
  const std::string_view location = field(), retry_after = field(), body = rest;
  namespace client = s3up::client;

  const std::string server = "https://files.example.com:8443/base";
  const std::string url = client::resolve_location(server, location);
  if (location.find("://") == std::string_view::npos && !location.starts_with("//") &&
      client::origin_of(url) != client::origin_of(server)) {
    __builtin_trap();  // a relative Location stays on the server
  }
  const std::string origin = client::origin_of(url);
  for (const char c : origin) {
    if (c >= 'A' && c <= 'Z') __builtin_trap();
  }

  client::Response response;
  response.status = size > 0 ? 400 + data[0] % 200 : 500;
  response.body = std::string(body);
  response.headers["retry-after"] = std::string(retry_after);
  if (!terminal_safe(client::describe(response))) __builtin_trap();
  if (!terminal_safe(client::printable(location))) __builtin_trap();

  const auto now = std::chrono::system_clock::now();
  if (const auto wait = client::parse_retry_after(retry_after, now)) {
    if (wait->count() < 0 || wait->count() > 24 * 3600) __builtin_trap();
  }
  return 0;
}
