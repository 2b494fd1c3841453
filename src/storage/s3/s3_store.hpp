#pragma once
// The S3 object store: objects under s3://bucket/prefix, uploaded as a single
// PutObject when smaller than one part, else as a multipart upload with equal
// parts, up to K in flight, each part's memory taken from the global
// BufferPool before it fills.
#include <memory>

#include <boost/asio/any_io_executor.hpp>

#include "storage/object_store.hpp"
#include "storage/s3/s3_client.hpp"
#include "storage/s3/s3_xml.hpp"
#include "util/buffer_pool.hpp"

namespace s3up::storage::s3 {

// "Each part must be at least 5 MB in size, except the last part." (S3 API, UploadPart)
inline constexpr std::size_t kMinPartSize = 5 * 1024 * 1024;
// "Part numbers can be any number from 1 to 10,000, inclusive."
inline constexpr std::uint64_t kMaxParts = 10'000;
// "5 GiB" maximum part size.
inline constexpr std::size_t kMaxPartSize = 5ull * 1024 * 1024 * 1024;

struct S3StoreOptions {
  ClientOptions client;
  std::string prefix;  // key prefix inside the bucket, "" or ending in '/'
  std::size_t part_size = 8 * 1024 * 1024;
  int parts_in_flight = 4;
  // How the store checks every byte of a part (see PartChecksum).
  PartChecksum part_checksum = PartChecksum::sha256;
};

// The part size for an object: the configured one, never below the S3
// minimum, grown (to whole MiB) so an object of `size_hint` bytes fits in
// 10,000 parts.
std::size_t choose_part_size(std::size_t configured, std::optional<std::uint64_t> size_hint);

// The way of checking parts that s3_part_checksum `setting` names for a
// store at `endpoint` ("" for AWS); nullopt for a name it does not know.
std::optional<PartChecksum> choose_part_checksum(std::string_view setting, std::string_view endpoint);

class S3Store final : public ObjectStore, public Presigner, public Recovery, public ResumableStore {
 public:
  S3Store(boost::asio::any_io_executor executor, S3StoreOptions options,
          std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<util::BufferPool> buffers,
          std::shared_ptr<util::BufferPool> download_buffers);

  using ObjectStore::open_writer;
  boost::asio::awaitable<std::unique_ptr<ObjectWriter>> open_writer(const std::string& key,
                                                                    const ObjectMetadata& metadata,
                                                                    const StoreUploadStarted& started) override;
  boost::asio::awaitable<std::unique_ptr<ObjectReader>> open_reader(const std::string& key, std::uint64_t offset,
                                                                    std::uint64_t length) override;
  boost::asio::awaitable<void> remove(const std::string& key) override;
  std::string describe() const override;
  std::string_view kind() const override { return "s3"; }
  boost::asio::awaitable<void> check_ready() override { return client_->head_bucket(); }
  Presigner* presigner() override { return this; }
  Recovery* recovery() override { return this; }
  ResumableStore* resumable() override { return this; }

  // Presigner
  boost::asio::awaitable<std::string> presigned_get_url(const std::string& key, std::chrono::seconds ttl) override;
  // Recovery
  boost::asio::awaitable<void> discard_unfinished(const std::string& key, const std::string& store_upload_id) override;
  boost::asio::awaitable<void> discard_beside(const std::string& key) override;
  boost::asio::awaitable<std::optional<ObjectInfo>> stat(const std::string& key) override;

  // ResumableStore: equal parts of part_size_for(length), the tail that
  // does not fill one kept as <key>.tail.<random> until the next request.
  // After a takeover the writer moves the recorded parts into a multipart
  // upload of its own (S3Writer::move_to_own_upload).
  std::uint64_t part_size_for(std::optional<std::uint64_t> length) const override;
  boost::asio::awaitable<std::unique_ptr<ObjectWriter>> open_resumable(const std::string& key,
                                                                       const ObjectMetadata& metadata,
                                                                       const ResumePoint& from,
                                                                       const WriterLease& writer) override;
  boost::asio::awaitable<void> discard_resumable(const std::string& key, const ResumePoint& last) override;

  // For clean-up and tests: multipart uploads in progress under the prefix,
  // and aborting one.
  boost::asio::awaitable<std::vector<MultipartUploadEntry>> list_multipart_uploads();
  boost::asio::awaitable<std::vector<std::string>> list_keys();  // under the prefix (first 1,000)
  boost::asio::awaitable<void> create_bucket();                  // for tests and first runs; exists is fine
  boost::asio::awaitable<void> abort_multipart_upload(const std::string& bucket_key, const std::string& upload_id);

  std::string bucket_key(const std::string& key) const { return options_.prefix + key; }
  Client& client() { return *client_; }  // its S3 operations, for tests and tools

 private:
  S3StoreOptions options_;
  std::shared_ptr<Client> client_;
  std::shared_ptr<util::BufferPool> buffers_;
  std::shared_ptr<util::BufferPool> download_buffers_;
};

}  // namespace s3up::storage::s3
