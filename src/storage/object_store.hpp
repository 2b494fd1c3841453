#pragma once
// Where the bytes go. One small interface, two backends (local disk and S3),
// chosen once at start-up from a URL.
//
// Backends report failures as ApiError: storage_unavailable when the store
// cannot be reached or fails, insufficient_storage when it is full.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <functional>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "util/buffer_pool.hpp"

namespace s3up::storage {

struct ObjectMetadata {
  std::string content_type;
  std::string file_name;  // the client's name, for Content-Disposition where the store keeps it
  std::optional<std::uint64_t> size_hint;  // expected size if known (sizes S3 parts)
};

struct CommittedObject {
  std::uint64_t size = 0;
  std::string sha256;  // hex, of the whole object
  std::string etag;
};

struct ObjectInfo {
  std::uint64_t size = 0;
  std::string etag;
};

// Streams one object into the store. Nothing is visible under the key until
// commit() returns; abort(), or destroying an uncommitted writer, leaves
// nothing behind. The writer computes the object's SHA-256 as it goes, where
// it seals its blocks (on the blocking pool, off the I/O threads).
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  // `data` needs to stay valid only until the returned awaitable completes.
  virtual boost::asio::awaitable<void> write(std::span<const char> data) = 0;
  virtual boost::asio::awaitable<CommittedObject> commit() = 0;
  // commit(), then `record(object)` (blocking work: the database write that
  // makes the upload complete) on `blocking`, before returning. `record` runs
  // only once the object is committed; if it throws, the object stays and the
  // exception propagates. The local store runs both in one trip to its
  // blocking pool: one thread hop fewer per upload, which is measurable when
  // the uploads are small and many (bench/small_uploads.sh).
  using RecordCommitted = std::function<void(const CommittedObject&)>;
  virtual boost::asio::awaitable<CommittedObject> commit_and_record(const RecordCommitted& record,
                                                                    boost::asio::thread_pool& blocking);
  virtual boost::asio::awaitable<void> abort() = 0;
  // The store's own id of this upload in progress (an S3 multipart upload id),
  // recorded so a crashed upload can be cleaned up later; empty if none.
  // Cheap (asked after every write until it appears): no copy.
  virtual std::string_view store_upload_id() const { return {}; }
};

// Coroutine parameters are references: callers pass lvalues and await at once.
// (GCC 12 double-destroys some prvalue arguments of coroutines, e.g. a braced
// aggregate temporary, so callers name their arguments.)
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  virtual boost::asio::awaitable<std::unique_ptr<ObjectWriter>> open_writer(const std::string& key,
                                                                            const ObjectMetadata& metadata) = 0;
  virtual boost::asio::awaitable<std::optional<ObjectInfo>> stat(const std::string& key) = 0;
  virtual boost::asio::awaitable<void> remove(const std::string& key) = 0;  // absent keys are not an error
  // Up to `length` bytes from `offset` (fewer at the end, none past it).
  // Throws ApiError(not_found) if there is no such object.
  virtual boost::asio::awaitable<std::string> read(const std::string& key, std::uint64_t offset,
                                                   std::size_t length) = 0;
  virtual std::string describe() const = 0;                           // for logs, no secrets
  // Removes whatever an upload that never finished (its process crashed)
  // may have left under `key`: its multipart upload (`store_upload_id` from
  // its record, and any other the store lists for the key), temporary files,
  // and the object itself if it was committed but never recorded complete.
  virtual boost::asio::awaitable<void> discard_unfinished(const std::string& key,
                                                          const std::string& store_upload_id) = 0;
  // A URL anyone can GET the object from until `ttl` passes, if the store
  // can make one (S3: a presigned URL); nullopt otherwise (local disk).
  virtual boost::asio::awaitable<std::optional<std::string>> presigned_get_url(const std::string& key,
                                                                               std::chrono::seconds ttl) {
    co_return std::nullopt;
  }
};

// How to reach the store named by a URL. S3 settings follow the AWS SDK
// conventions where they exist (endpoint, region, credentials from the
// environment or ~/.aws/credentials).
struct StoreSettings {
  std::string url;  // file:///abs/dir, file://./rel/dir, s3://bucket[/prefix]
  std::string s3_endpoint;  // empty: AWS for the region
  std::string s3_region = "us-east-1";
  bool s3_force_path_style = false;
  std::string s3_ca_file;
  bool s3_part_md5 = false;  // Content-MD5 + UNSIGNED-PAYLOAD instead of a signed SHA-256 per part
  std::size_t part_size = 8 * 1024 * 1024;
  int parts_in_flight = 4;
  // The process's one memory budget for bodies in flight, shared with the
  // HTTP server's receive buffers (main makes it from buffer_budget).
  std::shared_ptr<util::BufferPool> buffers = std::make_shared<util::BufferPool>(256 * 1024 * 1024);
  std::function<const char*(const char*)> getenv;  // for AWS_* credentials; std::getenv if empty
};

// Opens the backend named by settings.url. Throws std::invalid_argument for
// an unknown scheme and std::runtime_error when S3 credentials are missing.
// `executor` runs the store's network I/O (S3); `blocking` its disk and hashing work.
std::unique_ptr<ObjectStore> open_object_store(const StoreSettings& settings, boost::asio::any_io_executor executor,
                                               boost::asio::thread_pool& blocking);

// Keys are made by the service ("u/<user id>/<file id>"), never from client
// input; this guards the contract anyway: relative, no "." or ".." segments,
// only [A-Za-z0-9._-] and '/'.
bool is_valid_key(std::string_view key);

}  // namespace s3up::storage
