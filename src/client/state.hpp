#pragma once
// push's memory between runs (internal to client/): for each file being
// uploaded, the tus URL the server gave it, in a small JSON file under
// ~/.cache/s3uploader/uploads/. The file's name is a hash of the server, the
// absolute path, the size and the mtime, so an edited file (new size or
// mtime) starts a new upload instead of resuming the old bytes.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace s3up::client {

class UploadState {
 public:
  explicit UploadState(std::filesystem::path dir);

  static std::string key(const std::string& server, const std::filesystem::path& absolute_path, std::uint64_t size,
                         std::int64_t mtime_ns);

  // The saved upload URL, if any (an unreadable or foreign file counts as none).
  std::optional<std::string> load(const std::string& key) const;
  // Atomically (write, fsync, rename), readable by the user alone.
  void save(const std::string& key, const std::string& url) const;
  void remove(const std::string& key) const;
  // Forgets entries older than `age`: the server has expired those uploads.
  void prune(std::chrono::hours age) const;

 private:
  std::filesystem::path file_of(const std::string& key) const;
  std::filesystem::path dir_;
};

}  // namespace s3up::client
