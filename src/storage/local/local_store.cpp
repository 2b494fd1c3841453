#include "storage/local/local_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"

namespace s3up::storage {
namespace {

namespace asio = boost::asio;

// Writes are gathered into blocks so each trip to the blocking pool moves
// enough bytes to be worth the hop. A writer owns up to kBlocksPerWriter
// blocks: while the connection fills one, the others are hashed (in order, on
// a strand) and written (in parallel, at their offsets), so receiving, hashing
// and the disk all overlap. Memory per upload: kBlocksPerWriter * kBlockSize
// at most, taken from the process's buffer budget: when it is spent, an upload
// waits for a block and its connection stops reading (backpressure). (1 MiB
// blocks: a 1 GiB PUT ran 15 % faster than with 512 KiB. Four blocks, not
// three: with three, one 512 MiB tus PATCH ran at 0.87-0.94 of four in the
// same bench/tus.sh run, and a PUT no faster.)
constexpr std::size_t kBlockSize = 1024 * 1024;
constexpr int kBlocksPerWriter = 4;
// O_DIRECT needs buffers, offsets and lengths aligned to the device's logical
// block size; 4096 covers every common device.
constexpr std::size_t kDirectAlignment = 4096;
// With buffered I/O (where O_DIRECT is unsupported, e.g. tmpfs), start
// write-back every 8 MiB (sync_file_range), as RocksDB's bytes_per_sync does,
// so the final fsync finds little left to flush.
constexpr std::uint64_t kWritebackWindow = 8 * 1024 * 1024;

[[noreturn]] void throw_errno(int err, std::string_view what, const std::filesystem::path& path) {
  spdlog::error("local store: {} {}: {}", what, path.string(), std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) throw Error(Failure::full, "the storage volume is full");
  throw Error(Failure::unavailable, "the object store failed");
}

void fsync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, "open directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw_errno(err, "fsync directory", dir);
}

}  // namespace

// Group commit for directory entries: an object is durable once the rename
// into its directory is, which takes an fsync of the directory. Uploads that
// finish together in one directory (one user's) share one: a caller waits for
// a directory fsync that started after its rename, and if none is running
// starts one that covers everyone who asked so far.
class LocalStore::DirectorySync {
 public:
  void sync(const std::filesystem::path& dir) {
    std::unique_lock lock(mutex_);
    auto& state = dirs_[dir.native()];
    ++state.users;
    const std::uint64_t ticket = ++state.requested;
    std::exception_ptr error;
    while (state.synced < ticket && !error) {
      if (state.running) {
        state.changed.wait(lock);
        continue;
      }
      state.running = true;
      const std::uint64_t covers = state.requested;
      lock.unlock();
      try {
        fsync_dir(dir);
      } catch (...) {
        error = std::current_exception();  // ours alone: the others try again
      }
      lock.lock();
      if (!error) state.synced = covers;
      state.running = false;
      state.changed.notify_all();
    }
    if (--state.users == 0) dirs_.erase(dir.native());
    lock.unlock();
    if (error) std::rethrow_exception(error);
  }

 private:
  struct State {
    std::uint64_t requested = 0, synced = 0;
    bool running = false;
    int users = 0;
    std::condition_variable changed;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, State> dirs_;
};

namespace {

// Where an object is written before it is renamed into place. Keys are never
// reused (upload ids), so the name needs nothing random: the janitor finds a
// crashed upload's file from its key, without listing the directory.
std::filesystem::path temp_path_of(const std::filesystem::path& final_path) {
  return final_path.parent_path() / (".tmp-" + final_path.filename().string());
}

// A resumable upload's directory: one data file per writer that could not
// carry on in the last one's (see open_resumable), all removed together.
std::filesystem::path resumable_dir_of(const std::filesystem::path& final_path) {
  return final_path.parent_path() / (".tmp-" + final_path.filename().string() + ".tus");
}

void write_all(int fd, const char* data, std::size_t size, off_t offset, const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, "write", path);
    }
    done += static_cast<std::size_t>(n);
  }
}

// A block of the memory budget (4096-aligned, as O_DIRECT needs), shared so a
// block write in flight keeps its memory even if the writer goes.
using AlignedBlock = std::shared_ptr<util::BufferPool::Buffer>;

// The file a writer writes, shared with its block writes in flight on the
// blocking pool: it outlives the writer if the writer is dropped mid-write.
// Its last owner closes it, and removes it unless it is to be kept (it was
// committed, or it is a resumable upload's data, which the next request
// resumes).
struct DataFile {
  std::filesystem::path path;  // its temporary name
  int fd = -1;                 // block writes: O_DIRECT where the file system has it
  int plain = -1;              // buffered: what is not a whole aligned block, reads, fsync
  bool direct = false;
  util::ResumableSha256 hash;  // updated in file order by the block writes; read once none is in flight
  std::atomic<bool> keep{false};
  std::once_flag opened;

  ~DataFile() {
    if (direct) ::close(fd);
    if (plain >= 0) ::close(plain);
    if (!keep) ::unlink(path.c_str());  // never leave a stray temporary file
  }

  // Creates the file on the blocking pool on first need, when the writer
  // did not open one: for a file smaller than one block that is in the
  // commit's own trip to the pool, so a small upload costs one trip fewer.
  // (A failure is retried by the next caller: call_once only counts a call
  // that returned.)
  void ensure_open() {
    std::call_once(opened, [this] {
      if (plain >= 0) return;
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec) throw_errno(ec.value(), "create directory", path.parent_path());
      plain = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
      if (plain < 0) throw_errno(errno, "create", path);
      open_direct();
    });
  }

  // O_DIRECT: the bytes go from our block to the device without a copy into
  // the page cache, which on this kind of machine costs more CPU than
  // hashing them. Not every file system has it (tmpfs): then buffered I/O.
  void open_direct() {
    const int direct_fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT);
    direct = direct_fd >= 0;
    fd = direct ? direct_fd : plain;
  }
};

// A block write reports back with its error (if any) and returns its block.
using Completion =
    asio::experimental::concurrent_channel<void(boost::system::error_code, std::exception_ptr, AlignedBlock)>;

// Where block writes report. The channel belongs to the writer (it lives on the
// connection's io_context, which may be gone by the time an abandoned write
// finishes); the mailbox, shared with the tasks, forgets it when the writer goes.
struct Mailbox {
  std::mutex mutex;
  Completion* channel = nullptr;
  void deliver(std::exception_ptr error, AlignedBlock block) {
    std::lock_guard lock(mutex);
    if (channel != nullptr) channel->try_send(boost::system::error_code{}, std::move(error), std::move(block));
  }
  void close() {
    std::lock_guard lock(mutex);
    channel = nullptr;
  }
};

// A resumable upload's writer, beyond what every writer has.
struct ResumableFileWriter {
  std::string data_name;          // the file's name in the upload's directory (the store state)
  std::uint64_t block_start = 0;  // where the first block starts (the offset, rounded down to an aligned block)
  std::string prefix;             // bytes [block_start, offset): read back to keep blocks aligned, already hashed
  bool moved = false;             // the durable bytes were copied into a file the database does not name yet
  WriteFence* fence = nullptr;
};

// The local store's one writer. Blocks come from the memory budget; sealed
// ones are hashed in order on a strand and written in parallel (O_DIRECT
// where the file system has it) while the connection fills the next one.
// The commit writes the last partial block, fsyncs, renames the file into
// place and fsyncs the directory (group commit, DirectorySync).
//
// A resumable upload's writer starts at any byte (the partial block before
// it is read back, so blocks stay aligned), and keeps checkpoints: the
// partial block written (its aligned part directly, the rest buffered), then
// fsync. Its data file is its state; it stays when the writer goes.
class LocalWriter final : public ObjectWriter, public BlockingCommit {
 public:
  LocalWriter(std::shared_ptr<DataFile> file, std::filesystem::path final_path, asio::thread_pool& blocking,
              asio::any_io_executor executor, std::shared_ptr<LocalStore::DirectorySync> directory_sync,
              std::shared_ptr<util::BufferPool> buffers, std::optional<ResumableFileWriter> resumable = std::nullopt)
      : file_(std::move(file)),
        final_path_(std::move(final_path)),
        directory_sync_(std::move(directory_sync)),
        buffers_(std::move(buffers)),
        blocking_(blocking),
        hash_order_(asio::make_strand(blocking.get_executor())),
        done_(std::make_unique<Completion>(executor, kBlocksPerWriter)),
        mailbox_(std::make_shared<Mailbox>()),
        resumable_(std::move(resumable)) {
    mailbox_->channel = done_.get();
    if (resumable_) {
      file_->keep = true;
      block_start_ = resumable_->block_start;
    }
  }

  ~LocalWriter() override {
    mailbox_->close();
    // Unlink now rather than when the last block write in flight lets go of
    // the file: nothing of an abandoned upload stays visible.
    if (file_ && !file_->keep) ::unlink(file_->path.c_str());
  }

  asio::awaitable<void> write(std::span<const char> data) override {
    while (!data.empty()) {
      if (!block_) co_await take_block();
      const std::size_t n = std::min(data.size(), kBlockSize - filled_);
      std::memcpy(block_->data() + filled_, data.data(), n);
      filled_ += n;
      data = data.subspan(n);
      if (filled_ == kBlockSize) seal_block();
    }
  }

  asio::awaitable<CommittedObject> commit() override {
    co_await prepare();
    co_return co_await util::run_blocking(blocking_, [&] { return commit_here(); });
  }

  BlockingCommit* blocking_commit() override { return this; }

  asio::awaitable<void> prepare() override {
    co_await drain(/*rethrow=*/true);
    // A resumable upload's data file is its writer's own, but the object's
    // name is everyone's: only the lease's holder may publish.
    if (resumable_ && resumable_->fence) co_await resumable_->fence->check();
  }

  // The last block, fsync, rename, the directory's fsync: on a pool thread.
  CommittedObject commit_here() override {
    flush_here();
    // A resumable upload's other data files go first: a late writer could
    // otherwise commit its own between our rename and their removal. (One
    // still holding a descriptor writes into a file with no name.)
    if (resumable_) remove_other_data_files();
    if (::rename(file_->path.c_str(), final_path_.c_str()) != 0) throw_errno(errno, "rename", final_path_);
    file_->keep = true;
    committed_ = true;
    directory_sync_->sync(final_path_.parent_path());
    if (resumable_) {
      std::error_code ec;
      std::filesystem::remove_all(resumable_dir_of(final_path_), ec);
      if (ec) spdlog::warn("local store: removing {} failed: {}", resumable_dir_of(final_path_).string(), ec.message());
    }
    return CommittedObject{offset(), util::to_hex(file_->hash.digest()), ""};
  }

  asio::awaitable<void> abort() override {
    co_await drain(/*rethrow=*/false);
    // Unlinked here: a block write that just reported back may still hold
    // the file for a moment, and its last owner would unlink it only then.
    co_await util::run_blocking(blocking_, [&] {
      // A commit that failed after its rename (the directory's fsync) left
      // the file under its final name.
      ::unlink((committed_ ? final_path_ : file_->path).c_str());
      file_->keep = true;  // gone already
      file_.reset();
    });
  }

  // Checkpoints (a resumable upload's writer).

  asio::awaitable<ResumePoint> checkpoint() override {
    if (!resumable_) co_return co_await ObjectWriter::checkpoint();
    co_await drain(/*rethrow=*/true);
    co_await util::run_blocking(blocking_, [&] { flush_here(); });
    resumable_->moved = false;
    co_return ResumePoint{offset(), resumable_->data_name, file_->hash.save(), 0};
  }

  std::optional<ResumePoint> settled() override {
    if (!resumable_ || !resumable_->moved || in_flight_ > 0 || (block_ && filled_ > hashed_)) return std::nullopt;
    resumable_->moved = false;
    return ResumePoint{offset(), resumable_->data_name, file_->hash.save(), 0};
  }

  asio::awaitable<std::string> head(std::size_t n) override {
    if (!resumable_) co_return co_await ObjectWriter::head(n);
    co_await drain(/*rethrow=*/true);
    std::string bytes(std::min<std::uint64_t>(n, offset()), '\0');
    co_await util::run_blocking(blocking_, [&] {
      const auto got = ::pread(file_->plain, bytes.data(), bytes.size(), 0);
      if (got < 0) throw_errno(errno, "read", file_->path);
      bytes.resize(static_cast<std::size_t>(got));
    });
    co_return bytes;
  }

  asio::awaitable<void> quiesce() noexcept override { co_await drain(/*rethrow=*/false); }

 private:
  std::uint64_t offset() const {
    const std::size_t unwritten = block_ ? filled_ : (resumable_ ? resumable_->prefix.size() : 0);
    return block_start_ + unwritten;
  }

  void remove_other_data_files() const {
    std::error_code ec;
    if (temp_path_of(final_path_) != file_->path) std::filesystem::remove(temp_path_of(final_path_), ec);
    for (const auto& entry : std::filesystem::directory_iterator(resumable_dir_of(final_path_), ec)) {
      if (entry.path() != file_->path) std::filesystem::remove(entry.path(), ec);
    }
  }

  // The block to fill next: one a finished write gave back, a new one from
  // the budget while fewer than kBlocksPerWriter are out, else the next one
  // a write gives back. A writer with writes in flight never waits on the
  // budget (its own blocks come back); one with none waits there holding
  // nothing, so uploads cannot deadlock on the budget.
  asio::awaitable<void> take_block() {
    if (failure_) std::rethrow_exception(failure_);
    if (free_blocks_.empty() && in_flight_ < kBlocksPerWriter) {
      if (in_flight_ == 0) {
        block_ = std::make_shared<util::BufferPool::Buffer>(co_await buffers_->acquire(kBlockSize));
      } else if (auto fresh = buffers_->try_acquire(kBlockSize)) {
        block_ = std::make_shared<util::BufferPool::Buffer>(std::move(fresh));
      }
    }
    if (!block_) {
      if (free_blocks_.empty()) {
        co_await receive_one();
        if (failure_) std::rethrow_exception(failure_);
      }
      block_ = std::move(free_blocks_.back());
      free_blocks_.pop_back();
    }
    if (resumable_ && !resumable_->prefix.empty()) {
      // The partial block before the upload's offset, read back at opening:
      // already hashed, written again with the block.
      std::memcpy(block_->data(), resumable_->prefix.data(), resumable_->prefix.size());
      filled_ = hashed_ = resumable_->prefix.size();
      resumable_->prefix.clear();
    }
  }

  // Sends the full block off to be hashed (from where the hash stands in it)
  // and written; the next write takes another (take_block).
  void seal_block() {
    AlignedBlock block = std::move(block_);
    const auto at = static_cast<off_t>(block_start_);
    const std::size_t hash_from = hashed_;
    block_start_ += kBlockSize;
    filled_ = hashed_ = 0;
    ++in_flight_;
    // The tasks share what they touch (file, block, mailbox), so a writer
    // destroyed mid-write leaves them safe to finish.
    asio::post(hash_order_, [file = file_, mailbox = mailbox_, block, at, hash_from, &pool = blocking_]() mutable {
      file->hash.update(std::span<const char>(block->data() + hash_from, kBlockSize - hash_from));
      asio::post(pool, [file = std::move(file), mailbox = std::move(mailbox), block = std::move(block), at] {
        std::exception_ptr error;
        try {
          file->ensure_open();
          write_all(file->fd, block->data(), kBlockSize, at, file->path);
          const auto end = static_cast<std::uint64_t>(at) + kBlockSize;
          if (!file->direct && end / kWritebackWindow != static_cast<std::uint64_t>(at) / kWritebackWindow) {
            // a hint; errors surface at fsync
            ::sync_file_range(file->fd, at, static_cast<off_t>(kBlockSize), SYNC_FILE_RANGE_WRITE);
          }
        } catch (...) {
          error = std::current_exception();
        }
        mailbox->deliver(error, block);
      });
    });
  }

  // On a pool thread, nothing in flight: the partial block's bytes hashed
  // and written (its aligned part directly, the rest buffered), then fsync.
  void flush_here() {
    auto& f = *file_;
    f.ensure_open();
    if (block_ && filled_ > 0) {
      f.hash.update(std::span<const char>(block_->data() + hashed_, filled_ - hashed_));
      hashed_ = filled_;
      const std::size_t aligned = f.direct ? filled_ / kDirectAlignment * kDirectAlignment : filled_;
      const auto at = static_cast<off_t>(block_start_);
      if (aligned > 0) write_all(f.fd, block_->data(), aligned, at, f.path);
      if (aligned < filled_) {
        write_all(f.plain, block_->data() + aligned, filled_ - aligned, at + static_cast<off_t>(aligned), f.path);
      }
    }
    if (::fsync(f.plain) != 0) throw_errno(errno, "fsync", f.path);
  }

  asio::awaitable<void> receive_one() {
    auto [error, block] = co_await done_->async_receive(asio::use_awaitable);
    --in_flight_;
    if (error && !failure_) failure_ = error;
    free_blocks_.push_back(std::move(block));
  }

  asio::awaitable<void> drain(bool rethrow) {
    while (in_flight_ > 0) co_await receive_one();
    if (failure_ && rethrow) std::rethrow_exception(failure_);
  }

  std::shared_ptr<DataFile> file_;
  std::filesystem::path final_path_;
  std::shared_ptr<LocalStore::DirectorySync> directory_sync_;
  std::shared_ptr<util::BufferPool> buffers_;
  asio::thread_pool& blocking_;
  asio::strand<asio::thread_pool::executor_type> hash_order_;  // hashes blocks one at a time, in file order
  std::unique_ptr<Completion> done_;
  std::shared_ptr<Mailbox> mailbox_;
  std::optional<ResumableFileWriter> resumable_;
  AlignedBlock block_;  // taken on the first byte that needs it
  std::vector<AlignedBlock> free_blocks_;
  std::size_t filled_ = 0;         // bytes in block_
  std::size_t hashed_ = 0;         // of them, already in the hash
  std::uint64_t block_start_ = 0;  // where block_ starts in the file
  int in_flight_ = 0;
  std::exception_ptr failure_;  // the first failed block write
  bool committed_ = false;      // renamed into place
};

}  // namespace

LocalStore::LocalStore(std::filesystem::path root, asio::thread_pool& blocking,
                       std::shared_ptr<util::BufferPool> buffers, std::shared_ptr<util::BufferPool> download_buffers)
    : root_(std::filesystem::absolute(std::move(root)).lexically_normal()),
      blocking_(blocking),
      buffers_(std::move(buffers)),
      download_buffers_(std::move(download_buffers)),
      directory_sync_(std::make_shared<DirectorySync>()) {
  std::filesystem::create_directories(root_);
}

std::filesystem::path LocalStore::path_of(std::string_view key) const {
  if (!is_valid_key(key)) throw Error(Failure::internal, fmt::format("invalid object key '{}'", key));
  return root_ / std::filesystem::path(std::string(key));
}

asio::awaitable<std::unique_ptr<ObjectWriter>> LocalStore::open_writer(const std::string& key,
                                                                       const ObjectMetadata& metadata,
                                                                       const StoreUploadStarted&) {
  // Local files carry no metadata, and an upload in progress is the temporary
  // file named after its key: no id of the store's own.
  (void)metadata;
  auto file = std::make_shared<DataFile>();
  file->path = temp_path_of(path_of(key));
  // The file itself is created on first need (DataFile::ensure_open).
  co_return std::make_unique<LocalWriter>(std::move(file), path_of(key), blocking_, co_await asio::this_coro::executor,
                                          directory_sync_, buffers_);
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

asio::awaitable<void> LocalStore::check_ready() {
  // Writable as this process sees it (root ignores a directory's mode, so
  // asking access() would not be enough): a file is made and removed.
  const auto probe = root_ / fmt::format(".ready-{}", ::getpid());
  co_await util::run_blocking(blocking_, [&] {
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw_errno(errno, "create", probe);
    ::close(fd);
    if (::unlink(probe.c_str()) != 0) throw_errno(errno, "unlink", probe);
  });
}

asio::awaitable<void> LocalStore::remove(const std::string& key) {
  const auto path = path_of(key);
  co_await util::run_blocking(blocking_, [&] {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "unlink", path);
  });
}

namespace {

// Reads a range of a file a piece at a time on the blocking pool, into a
// piece of the download budget it waits for at its first read.
class LocalReader final : public ObjectReader {
 public:
  LocalReader(int fd, std::filesystem::path path, asio::thread_pool& blocking, util::BufferPool& buffers,
              std::uint64_t offset, std::uint64_t length)
      : fd_(fd), path_(std::move(path)), blocking_(blocking), buffers_(buffers), offset_(offset), left_(length) {}
  ~LocalReader() override { ::close(fd_); }

  asio::awaitable<std::span<const char>> read_some() override {
    if (left_ == 0) co_return std::span<const char>{};
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kReadPiece, left_));
    if (!piece_) piece_ = co_await buffers_.acquire(want);
    const std::size_t size = std::min(want, piece_.capacity());
    const std::size_t n = co_await util::run_blocking(blocking_, [&] {
      for (;;) {
        const ssize_t got = ::pread(fd_, piece_.data(), size, static_cast<off_t>(offset_));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw_errno(errno, "read", path_);
        return static_cast<std::size_t>(got);
      }
    });
    if (n == 0) left_ = 0;  // shorter than asked: the end
    offset_ += n;
    left_ -= std::min<std::uint64_t>(left_, n);
    co_return std::span<const char>(piece_.data(), n);
  }

 private:
  static constexpr std::size_t kReadPiece = 256 * 1024;
  int fd_;
  std::filesystem::path path_;
  asio::thread_pool& blocking_;
  util::BufferPool& buffers_;
  std::uint64_t offset_, left_;
  util::BufferPool::Buffer piece_;
};

}  // namespace

asio::awaitable<std::unique_ptr<ObjectReader>> LocalStore::open_reader(const std::string& key, std::uint64_t offset,
                                                                       std::uint64_t length) {
  const auto path = path_of(key);
  const int fd = co_await util::run_blocking(blocking_, [&] {
    const int opened = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (opened < 0 && errno == ENOENT) throw Error(Failure::not_found, "no such object");
    if (opened < 0) throw_errno(errno, "open", path);
    return opened;
  });
  co_return std::make_unique<LocalReader>(fd, path, blocking_, *download_buffers_, offset, length);
}

namespace {

// Where an upload's data lives: its own file (store_state) in the upload's
// directory beside its final name, or, for an upload written before there
// were per-writer files (store_state ""), the one temporary file beside it.
std::filesystem::path data_path_of(const std::filesystem::path& final_path, const std::string& data_name) {
  if (data_name.empty()) return temp_path_of(final_path);
  return resumable_dir_of(final_path) / data_name;
}

// A writer's data file is named by its number (unique to it, larger than
// every earlier writer's): "w" and the number.
std::string data_name_of(std::int64_t writer_number) { return "w" + std::to_string(writer_number); }
std::optional<std::int64_t> writer_number_of(const std::string& data_name) {
  if (!data_name.starts_with('w')) return std::nullopt;
  return util::parse_integer<std::int64_t>(std::string_view(data_name).substr(1));
}

// Copies [0, length) of `from` into `to`, in the kernel (a reflink where the
// file system can) or, where it cannot, through a buffer; then makes it
// durable.
void copy_prefix(int from, int to, std::uint64_t length, const std::filesystem::path& path) {
  loff_t in = 0, out = 0;
  while (static_cast<std::uint64_t>(in) < length) {
    const auto n = ::copy_file_range(from, &in, to, &out, static_cast<std::size_t>(length - in), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) break;
    if (n < 0) throw_errno(errno, "copy", path);
    if (n == 0) throw Error(Failure::internal, "the upload's data file is shorter than its durable offset");
  }
  std::vector<char> buffer(1024 * 1024);
  while (static_cast<std::uint64_t>(in) < length) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), length - in));
    const auto n = ::pread(from, buffer.data(), want, in);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(errno, "read", path);
    if (n == 0) throw Error(Failure::internal, "the upload's data file is shorter than its durable offset");
    write_all(to, buffer.data(), static_cast<std::size_t>(n), in, path);
    in += n;
  }
  if (::fsync(to) != 0) throw_errno(errno, "fsync", path);
}

}  // namespace

asio::awaitable<std::unique_ptr<ObjectWriter>> LocalStore::open_resumable(const std::string& key, const ObjectMetadata&,
                                                                          const ResumePoint& from,
                                                                          const WriterLease& writer) {
  auto hash = from.hash_state.empty() ? std::optional(util::ResumableSha256())
                                      : util::ResumableSha256::restore(from.hash_state);
  if (!hash || hash->bytes_hashed() != from.offset) {
    throw Error(Failure::internal, "resumable upload state does not match its offset");
  }
  const auto final_path = path_of(key);
  struct Opened {
    int direct_fd = -1, plain_fd = -1;
    std::string data_name;
    std::string prefix;
  };
  const auto opened = co_await util::run_blocking(blocking_, [&] {
    Opened o;
    // A writer carries on in the file the last one left only when that one
    // is known to be done with it; otherwise it writes a file of its own, so
    // a late write of the old one (it keeps its descriptor) lands where
    // nothing will read it. Nothing durable yet: a file of its own too.
    const bool in_place = writer.handover == Handover::clean && from.offset > 0;
    o.data_name = in_place ? from.store_state : data_name_of(writer.number);
    const auto path = data_path_of(final_path, o.data_name);
    if (!in_place) {
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec) throw_errno(ec.value(), "create directory", path.parent_path());
    }
    o.plain_fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (in_place ? 0 : O_CREAT | O_EXCL), 0640);
    if (o.plain_fd < 0 && errno == ENOENT) throw Error(Failure::not_found, "the upload's data is gone");
    if (o.plain_fd < 0) throw_errno(errno, "open", path);
    const auto fail = [&](auto&& raise) {
      ::close(o.plain_fd);
      if (o.direct_fd >= 0) ::close(o.direct_fd);
      raise();
    };
    if (!in_place && from.offset > 0) {
      // Taken over: the bytes made durable so far, copied from the old file
      // (the old writer never changes them; it only writes past them).
      const auto source_path = data_path_of(final_path, from.store_state);
      const int source = ::open(source_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (source < 0) {
        const int err = errno;
        fail([&] {
          if (err == ENOENT) throw Error(Failure::not_found, "the upload's data is gone");
          throw_errno(err, "open", source_path);
        });
      }
      try {
        copy_prefix(source, o.plain_fd, from.offset, path);
      } catch (...) {
        ::close(source);
        fail([] { throw; });
      }
      ::close(source);
    }
    struct ::stat st {};
    if (::fstat(o.plain_fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) < from.offset) {
      fail([] { throw Error(Failure::internal, "the upload's temporary file is shorter than its durable offset"); });
    }
    // What a lost request wrote after the last checkpoint is not acknowledged: cut it.
    if (::ftruncate(o.plain_fd, static_cast<off_t>(from.offset)) != 0) {
      const int err = errno;
      fail([&] { throw_errno(err, "truncate", path); });
    }
    o.direct_fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_DIRECT);  // -1 where unsupported
    if (o.direct_fd >= 0 && from.offset % kDirectAlignment != 0) {
      o.prefix.resize(from.offset % kDirectAlignment);
      const auto at = static_cast<off_t>(from.offset - o.prefix.size());
      if (::pread(o.plain_fd, o.prefix.data(), o.prefix.size(), at) != static_cast<ssize_t>(o.prefix.size())) {
        const int err = errno;
        fail([&] { throw_errno(err, "read", path); });
      }
    }
    // Files of earlier writers that never recorded a point (cut off before
    // it, or taken over) hold nothing anyone will read: only the recorded
    // one stays. A later writer's file is never ours to touch: this writer
    // may be the late one. (One still writing writes into a nameless file.)
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(resumable_dir_of(final_path), ec)) {
      const auto name = entry.path().filename().string();
      const auto number = writer_number_of(name);
      if (number && *number < writer.number && name != from.store_state) std::filesystem::remove(entry.path(), ec);
    }
    if (!in_place) {
      // The new file's name is durable too (the upload's directory, and the
      // directory in it when it is new).
      directory_sync_->sync(path.parent_path());
      if (from.offset == 0) directory_sync_->sync(final_path.parent_path());
    }
    return o;
  });
  auto file = std::make_shared<DataFile>();
  file->path = data_path_of(final_path, opened.data_name);
  file->plain = opened.plain_fd;
  file->direct = opened.direct_fd >= 0;
  file->fd = file->direct ? opened.direct_fd : opened.plain_fd;
  file->hash = std::move(*hash);
  ResumableFileWriter resumable{opened.data_name, from.offset - opened.prefix.size(), opened.prefix,
                                opened.data_name != from.store_state && from.offset > 0, writer.fence};
  co_return std::make_unique<LocalWriter>(std::move(file), final_path, blocking_, co_await asio::this_coro::executor,
                                          directory_sync_, buffers_, std::move(resumable));
}

asio::awaitable<void> LocalStore::discard_resumable(const std::string& key, const ResumePoint&) {
  // Every writer's data file, and the object if a commit landed but its record did not.
  const std::string no_store_upload;
  co_await discard_unfinished(key, no_store_upload);
}

namespace {
void remove_all_of(std::initializer_list<std::filesystem::path> paths) {
  for (const auto& path : paths) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);  // absent is fine
    if (ec && ec != std::errc::no_such_file_or_directory) throw_errno(ec.value(), "remove", path);
  }
}
}  // namespace

asio::awaitable<void> LocalStore::discard_beside(const std::string& key) {
  const auto final_path = path_of(key);
  co_await util::run_blocking(blocking_, [&] { remove_all_of({temp_path_of(final_path), resumable_dir_of(final_path)}); });
}

asio::awaitable<void> LocalStore::discard_unfinished(const std::string& key, const std::string& store_upload_id) {
  (void)store_upload_id;  // local uploads have none
  const auto final_path = path_of(key);
  co_await util::run_blocking(
      blocking_, [&] { remove_all_of({temp_path_of(final_path), resumable_dir_of(final_path), final_path}); });
}

}  // namespace s3up::storage
