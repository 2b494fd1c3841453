#include "util/sniff.hpp"

#include <magic.h>

#include <stdexcept>

namespace s3up::util {
namespace {

// A magic_t is not thread-safe: each thread that sniffs has its own handles
// (no lock on the path). The compiled database is mapped, not copied, so a
// handle costs little memory.
class Magic {
 public:
  explicit Magic(int flags) : handle_(magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR | flags)) {
    if (handle_ == nullptr || magic_load(handle_, nullptr) != 0) {
      const std::string err = handle_ ? magic_error(handle_) : "magic_open failed";
      if (handle_) magic_close(handle_);
      throw std::runtime_error("libmagic: " + err);
    }
  }
  ~Magic() { magic_close(handle_); }
  Magic(const Magic&) = delete;
  Magic& operator=(const Magic&) = delete;

  std::string type_of(std::string_view data) {
    const char* type = magic_buffer(handle_, data.data(), data.size());
    return type == nullptr ? "application/octet-stream" : type;
  }

 private:
  magic_t handle_;
};

Magic& every_test() {
  thread_local Magic magic(0);
  return magic;
}

// Without the "soft" (pattern) database: the encoding, text, JSON and CSV
// tests only, a few microseconds. On binary data it says octet-stream.
Magic& cheap_tests() {
  thread_local Magic magic(MAGIC_NO_CHECK_SOFT);
  return magic;
}

// Text whose type the pattern tests decide from its first bytes: markup
// (HTML, XML, SVG), PDF and PostScript (%), RTF, scripts (#!).
bool starts_like_a_format(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n\xef\xbb\xbf");  // whitespace, a UTF-8 BOM
  if (first == std::string_view::npos) return false;
  text.remove_prefix(first);
  return text.starts_with('<') || text.starts_with('%') || text.starts_with("{\\rtf") || text.starts_with("#!");
}

}  // namespace

std::string sniff_mime_type(std::string_view head, SniffPurpose purpose) {
  if (head.empty()) return "application/octet-stream";
  if (purpose == SniffPurpose::label) {
    std::string type = cheap_tests().type_of(head);
    if (type != "application/octet-stream" && !starts_like_a_format(head)) return type;  // text of some kind
  }
  return every_test().type_of(head);
}

}  // namespace s3up::util
