#pragma once
// The embedded default object store: files under a directory.
//
// A write goes to a temporary file beside its final name, is fsynced, renamed
// into place, and the directory is fsynced, so an object is either complete
// or absent after a crash. An object's temporary name is ".tmp-" + its final
// name (keys are never reused), so a clean-up finds a crashed process's
// leftover by its key alone.
#include <filesystem>
#include <memory>

#include "storage/object_store.hpp"
#include "util/buffer_pool.hpp"

namespace s3up::storage {

class LocalStore final : public ObjectStore, public Recovery, public ResumableStore {
 public:
  // Blocks in flight come out of `buffers`, the process's memory budget for
  // uploads; downloads read into `download_buffers`.
  LocalStore(std::filesystem::path root, boost::asio::thread_pool& blocking, std::shared_ptr<util::BufferPool> buffers,
             std::shared_ptr<util::BufferPool> download_buffers);

  using ObjectStore::open_writer;
  boost::asio::awaitable<std::unique_ptr<ObjectWriter>> open_writer(const std::string& key,
                                                                    const ObjectMetadata& metadata,
                                                                    const StoreUploadStarted& started) override;
  boost::asio::awaitable<std::unique_ptr<ObjectReader>> open_reader(const std::string& key, std::uint64_t offset,
                                                                    std::uint64_t length) override;
  boost::asio::awaitable<void> remove(const std::string& key) override;
  std::string describe() const override { return "file://" + root_.string(); }
  std::string_view kind() const override { return "local"; }
  // A file made and removed in the root: what every upload needs.
  boost::asio::awaitable<void> check_ready() override;
  Recovery* recovery() override { return this; }
  ResumableStore* resumable() override { return this; }

  // Recovery
  boost::asio::awaitable<void> discard_unfinished(const std::string& key, const std::string& store_upload_id) override;
  boost::asio::awaitable<void> discard_beside(const std::string& key) override;
  boost::asio::awaitable<std::optional<ObjectInfo>> stat(const std::string& key) override;

  // ResumableStore: the upload's data file is its state (the store state
  // names it), its length cut back to the last checkpoint on reopening. A
  // writer carries on in the last one's file after a clean handover, and
  // copies the durable bytes into a file of its own after a takeover.
  std::uint64_t part_size_for(std::optional<std::uint64_t>) const override { return 0; }
  boost::asio::awaitable<std::unique_ptr<ObjectWriter>> open_resumable(const std::string& key,
                                                                       const ObjectMetadata& metadata,
                                                                       const ResumePoint& from,
                                                                       const WriterLease& writer) override;
  boost::asio::awaitable<void> discard_resumable(const std::string& key, const ResumePoint& last) override;

  std::filesystem::path path_of(std::string_view key) const;

  class DirectorySync;  // internal: shared by the writers of one store

 private:
  std::filesystem::path root_;
  boost::asio::thread_pool& blocking_;
  std::shared_ptr<util::BufferPool> buffers_;
  std::shared_ptr<util::BufferPool> download_buffers_;
  std::shared_ptr<DirectorySync> directory_sync_;  // shared with the writers
};

}  // namespace s3up::storage
