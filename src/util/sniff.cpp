#include "util/sniff.hpp"

#include <magic.h>

#include <mutex>
#include <stdexcept>

namespace s3up::util {
namespace {

// One shared handle: a magic_t is not thread-safe, and each loaded database
// costs megabytes of memory, so one handle behind a mutex beats one per thread.
struct Magic {
  magic_t handle = nullptr;
  std::mutex mutex;
  Magic() {
    handle = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (handle == nullptr || magic_load(handle, nullptr) != 0) {
      const std::string err = handle ? magic_error(handle) : "magic_open failed";
      if (handle) magic_close(handle);
      throw std::runtime_error("libmagic: " + err);
    }
  }
  ~Magic() { magic_close(handle); }
};

}  // namespace

std::string sniff_mime_type(std::string_view head) {
  if (head.empty()) return "application/octet-stream";
  static Magic magic;
  std::lock_guard lock(magic.mutex);
  const char* type = magic_buffer(magic.handle, head.data(), head.size());
  if (type == nullptr) return "application/octet-stream";
  return type;
}

}  // namespace s3up::util
