#include "upload/sniff.hpp"

#include <fcntl.h>
#include <magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace s3up::upload {
namespace {

// The compiled databases libmagic would load (each element of its search
// path, with ".mgc"), mapped once and shared by every handle; empty if there
// are none, and then each handle loads its own. The mapping is private and
// writable so that libmagic may byte-swap in place if it ever needs to; the
// pages it only reads stay shared with the page cache.
struct MappedDatabase {
  void* data;
  std::size_t size;
};

const std::vector<MappedDatabase>& shared_databases() {
  static const std::vector<MappedDatabase> databases = [] {
    std::vector<MappedDatabase> out;
    const std::string_view path = magic_getpath(nullptr, 0);
    std::size_t start = 0;
    while (start <= path.size()) {
      const auto colon = std::min(path.find(':', start), path.size());
      const std::string file = std::string(path.substr(start, colon - start)) + ".mgc";
      start = colon + 1;
      const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      struct ::stat st {};
      if (::fstat(fd, &st) == 0 && st.st_size > 0) {
        const auto size = static_cast<std::size_t>(st.st_size);
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) out.push_back({p, size});  // kept for the process's lifetime
      }
      ::close(fd);
    }
    return out;
  }();
  return databases;
}

// A magic_t is not thread-safe: each thread that sniffs has its own handles,
// so there is no lock on the path. They share one mapping of the database:
// a mapping per handle would count its pages again for every thread in the
// process's resident memory (~8 MB each).
class Magic {
 public:
  explicit Magic(int flags) : handle_(magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR | flags)) {
    if (handle_ == nullptr) throw std::runtime_error("libmagic: magic_open failed");
    const auto& databases = shared_databases();
    int rc = 0;
    if (databases.empty()) {
      rc = magic_load(handle_, nullptr);
    } else {
      std::vector<void*> buffers;
      std::vector<std::size_t> sizes;
      for (const auto& d : databases) {
        buffers.push_back(d.data);
        sizes.push_back(d.size);
      }
      rc = magic_load_buffers(handle_, buffers.data(), sizes.data(), buffers.size());
    }
    if (rc != 0) {
      const std::string err = magic_error(handle_) ? magic_error(handle_) : "cannot load the database";
      magic_close(handle_);
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

}  // namespace s3up::upload
