#include "storage/object_store.hpp"

#include <stdexcept>

#include "storage/local/local_store.hpp"

namespace s3up::storage {

std::unique_ptr<ObjectStore> open_object_store(std::string_view url, boost::asio::thread_pool& blocking) {
  constexpr std::string_view file_scheme = "file://";
  if (url.starts_with(file_scheme)) {
    std::string path(url.substr(file_scheme.size()));
    if (path.empty()) throw std::invalid_argument("file URL has no path: " + std::string(url));
    return std::make_unique<LocalStore>(path, blocking);
  }
  throw std::invalid_argument("unsupported storage URL (expected file://PATH): " + std::string(url));
}

bool is_valid_key(std::string_view key) {
  if (key.empty() || key.front() == '/' || key.size() > 1024) return false;
  std::size_t start = 0;
  while (start <= key.size()) {
    auto end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    const auto seg = key.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    for (char c : seg) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

}  // namespace s3up::storage
