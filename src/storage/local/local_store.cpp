#include "storage/local/local_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/api_error.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"

namespace s3up::storage {
namespace {

namespace asio = boost::asio;

// Writes are gathered into blocks so each trip to the blocking pool moves
// enough bytes to be worth the hop.
constexpr std::size_t kBlockSize = 512 * 1024;
// Start write-back every 8 MiB (sync_file_range), as RocksDB's bytes_per_sync
// does: the final fsync then finds little left to flush, and dirty pages never
// pile up into one long stall at commit.
constexpr std::uint64_t kWritebackWindow = 8 * 1024 * 1024;

[[noreturn]] void throw_errno(int err, std::string_view what, const std::filesystem::path& path) {
  spdlog::error("local store: {} {}: {}", what, path.string(), std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) throw ApiError(errc::insufficient_storage, "the storage volume is full");
  throw ApiError(errc::storage_unavailable, "the object store failed");
}

void fsync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, "open directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw_errno(err, "fsync directory", dir);
}

class LocalWriter final : public ObjectWriter {
 public:
  LocalWriter(std::filesystem::path final_path, std::filesystem::path temp_path, int fd, asio::thread_pool& blocking)
      : final_(std::move(final_path)), temp_(std::move(temp_path)), fd_(fd), blocking_(blocking) {
    block_.reserve(kBlockSize);
  }

  ~LocalWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!finished_) ::unlink(temp_.c_str());  // never leave a stray temporary file
  }

  asio::awaitable<void> write(std::span<const char> data) override {
    while (!data.empty()) {
      const std::size_t n = std::min(data.size(), kBlockSize - block_.size());
      block_.insert(block_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
      data = data.subspan(n);
      if (block_.size() == kBlockSize) co_await flush_block();
    }
  }

  asio::awaitable<CommittedObject> commit() override {
    co_await flush_block();
    co_await util::run_blocking(blocking_, [this] {
      if (::fsync(fd_) != 0) throw_errno(errno, "fsync", temp_);
      ::close(fd_);
      fd_ = -1;
      if (::rename(temp_.c_str(), final_.c_str()) != 0) throw_errno(errno, "rename", final_);
      finished_ = true;
      fsync_dir(final_.parent_path());
    });
    co_return CommittedObject{size_, ""};
  }

  asio::awaitable<void> abort() override {
    if (finished_) co_return;
    co_await util::run_blocking(blocking_, [this] {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      ::unlink(temp_.c_str());
      finished_ = true;
    });
  }

 private:
  asio::awaitable<void> flush_block() {
    if (block_.empty()) co_return;
    co_await util::run_blocking(blocking_, [this] {
      std::size_t done = 0;
      while (done < block_.size()) {
        const ssize_t n = ::write(fd_, block_.data() + done, block_.size() - done);
        if (n < 0) {
          if (errno == EINTR) continue;
          throw_errno(errno, "write", temp_);
        }
        done += static_cast<std::size_t>(n);
      }
      const std::uint64_t before = size_;
      size_ += block_.size();
      if (size_ / kWritebackWindow != before / kWritebackWindow) {
        const auto window_start = static_cast<off64_t>((size_ / kWritebackWindow - 1) * kWritebackWindow);
        ::sync_file_range(fd_, window_start, kWritebackWindow, SYNC_FILE_RANGE_WRITE);  // a hint; errors surface at fsync
      }
    });
    block_.clear();
  }

  std::filesystem::path final_;
  std::filesystem::path temp_;
  int fd_;
  asio::thread_pool& blocking_;
  std::vector<char> block_;
  std::uint64_t size_ = 0;
  bool finished_ = false;
};

}  // namespace

LocalStore::LocalStore(std::filesystem::path root, asio::thread_pool& blocking)
    : root_(std::filesystem::absolute(std::move(root)).lexically_normal()), blocking_(blocking) {
  std::filesystem::create_directories(root_);
}

std::filesystem::path LocalStore::path_of(std::string_view key) const {
  if (!is_valid_key(key)) throw ApiError(errc::internal, fmt::format("invalid object key '{}'", key));
  return root_ / std::filesystem::path(std::string(key));
}

asio::awaitable<std::unique_ptr<ObjectWriter>> LocalStore::open_writer(const std::string& key, const ObjectMetadata& metadata) {
  (void)metadata;  // local files carry no metadata
  const auto final_path = path_of(key);
  co_return co_await util::run_blocking(blocking_, [&]() -> std::unique_ptr<ObjectWriter> {
    std::error_code ec;
    std::filesystem::create_directories(final_path.parent_path(), ec);
    if (ec) throw_errno(ec.value(), "create directory", final_path.parent_path());
    std::array<std::uint8_t, 8> rnd{};
    util::random_bytes(rnd);
    auto temp = final_path.parent_path() / (".tmp-" + final_path.filename().string() + "-" + util::to_hex(rnd));
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) throw_errno(errno, "create", temp);
    return std::make_unique<LocalWriter>(final_path, temp, fd, blocking_);
  });
}

asio::awaitable<std::optional<ObjectInfo>> LocalStore::stat(const std::string& key) {
  const auto path = path_of(key);
  co_return co_await util::run_blocking(blocking_, [&]() -> std::optional<ObjectInfo> {
    struct ::stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return std::nullopt;
      throw_errno(errno, "stat", path);
    }
    return ObjectInfo{static_cast<std::uint64_t>(st.st_size),
                      fmt::format("{:x}-{:x}", st.st_size, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec)};
  });
}

asio::awaitable<void> LocalStore::remove(const std::string& key) {
  const auto path = path_of(key);
  co_await util::run_blocking(blocking_, [&] {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "unlink", path);
  });
}

}  // namespace s3up::storage
