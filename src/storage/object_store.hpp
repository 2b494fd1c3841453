#pragma once
// Where the bytes go: a small core interface (open a writer, open a reader,
// remove) that every backend has, and capabilities a backend may add, asked
// for at run time (presigned URLs, crash recovery, resumable uploads). Two backends, local disk
// and S3, chosen once at start-up from a URL.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "util/buffer_pool.hpp"
#include "util/failure.hpp"

namespace s3up::storage {

// What went wrong, in the store's terms; the API maps these to its answers.
enum class Failure {
  not_found,    // no such object
  unavailable,  // the store cannot be reached, or fails (5xx, timeouts)
  refused,      // the store refuses us: credentials, region, bucket policy
  rejected,     // the store answered a request with an error of its own
  full,         // no space left
  too_large,    // beyond what the store can hold as one object
  internal,     // our own mistake (an invalid key, a budget smaller than a part)
};

using Error = util::KindedError<Failure>;

struct ObjectMetadata {
  std::string content_type;
  std::string file_name;                   // the client's name, for Content-Disposition where the store keeps it
  std::optional<std::uint64_t> size_hint;  // expected size if known (sizes S3 parts)
};

struct CommittedObject {
  std::uint64_t size = 0;
  std::string sha256;  // hex, of the whole object
  std::string etag;
  // What other writers of a resumable upload left beside the object could
  // not be removed (the store failed after the object was whole): the
  // record says so, and the janitor removes them (Recovery::discard_beside).
  bool leftovers = false;
};

struct ObjectInfo {
  std::uint64_t size = 0;
  std::string etag;
};

// Told the store's own id of an upload in progress (an S3 multipart upload
// id) the moment it exists, before any part is sent: it is recorded so a
// clean-up after a crash can abort it.
using StoreUploadStarted = std::function<boost::asio::awaitable<void>(const std::string& store_upload_id)>;

// A writer whose commit can run as plain blocking code on a pool thread
// (local disk: write the tail, fsync, rename). Whoever commits may then do
// its own blocking work, the database write that makes an upload complete,
// in the same trip to the pool: one thread hop fewer per upload, which
// small uploads feel (bench/small_uploads.sh).
class BlockingCommit {
 public:
  virtual ~BlockingCommit() = default;
  // Waits for the writes still in flight; then commit_here() may run.
  virtual boost::asio::awaitable<void> prepare() = 0;
  // Call on a blocking-pool thread, after prepare().
  virtual CommittedObject commit_here() = 0;
};

// Where a resumable upload stands: what its last checkpoint made durable.
struct ResumePoint {
  std::uint64_t offset = 0;  // bytes durable so far
  std::string store_state;   // the store's own state at that offset ("" for a new upload)
  std::string hash_state;    // util::ResumableSha256::save() at that offset ("" for a new upload)
  // The store's unit of writing, fixed when the upload is created
  // (ResumableStore::part_size_for) so every part is the same size.
  std::uint64_t part_size = 0;
};

// Streams one object into the store. Nothing is visible under the key until
// commit() returns; after a failed write() or commit(), call abort(). abort()
// leaves nothing behind, or throws when it cannot reach the store (what is
// left is then for Recovery::discard_unfinished). Destroying an uncommitted
// single-shot writer aborts it in the background. The writer computes the
// object's SHA-256 as it goes.
//
// Each backend has this one writer. One opened by open_resumable() keeps
// checkpoints as well: durable points a later request (on any instance)
// resumes from. Dropping such a writer keeps what its last checkpoint made
// durable; only ResumableStore::discard_resumable() removes the upload's data.
// A single-shot writer (open_writer()) keeps none: its checkpoint() and
// head() throw Error(internal).
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  // `data` needs to stay valid only until the returned awaitable completes.
  virtual boost::asio::awaitable<void> write(std::span<const char> data) = 0;
  // Writing in place, for a writer that keeps the bytes in a buffer of its
  // own (S3's part buffer): room() is where the next bytes may go (call it
  // only when more bytes follow: a full part is sent first), and filled(n)
  // takes the first n bytes put there as written, as write() would have.
  // Empty room: the writer cannot; write() it is.
  virtual boost::asio::awaitable<std::span<char>> room() { co_return std::span<char>{}; }
  virtual boost::asio::awaitable<void> filled(std::size_t n) { co_return; }
  // Publishes the object under its key (a resumable writer checkpoints first).
  virtual boost::asio::awaitable<CommittedObject> commit() = 0;
  virtual boost::asio::awaitable<void> abort() = 0;
  // The blocking form of commit(), if this writer has one; nullptr if not.
  virtual BlockingCommit* blocking_commit() { return nullptr; }

  // Checkpoints.
  // Everything written so far made durable: the point to resume from.
  virtual boost::asio::awaitable<ResumePoint> checkpoint();
  // The furthest point the store has made durable by itself since the last
  // call, without waiting (S3: the parts that completed); nullopt if none.
  virtual std::optional<ResumePoint> settled() { return std::nullopt; }
  // The upload's first `n` bytes, when the writer was opened at or past `n`
  // and within its first part (the bytes a type sniffer looks at).
  virtual boost::asio::awaitable<std::string> head(std::size_t n);
  // Waits for the writes still in flight (their failures are the next
  // writer's to find): call before another writer may open the upload.
  virtual boost::asio::awaitable<void> quiesce() noexcept { co_return; }
  // The database now holds `point` (from checkpoint() or settled()): what
  // the store kept for the point before it (an S3 tail object) may go.
  virtual boost::asio::awaitable<void> recorded(const ResumePoint& point) { co_return; }
  // The database refused `point` from checkpoint(): another writer holds
  // the upload. What the store kept for that point alone (an S3 tail
  // object, which only this writer knows of) goes, best effort.
  virtual boost::asio::awaitable<void> unrecorded(const ResumePoint& point) noexcept { co_return; }
};

// Reads a range of an object as a stream: the next piece is fetched only
// when the previous one was taken (the reader holds at most one piece).
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  // The next piece, valid until the next call; empty at the end of the range.
  virtual boost::asio::awaitable<std::span<const char>> read_some() = 0;
};

// Capability: URLs anyone can GET an object from until they expire (S3).
class Presigner {
 public:
  virtual ~Presigner() = default;
  virtual boost::asio::awaitable<std::string> presigned_get_url(const std::string& key, std::chrono::seconds ttl) = 0;
};

// Capability: what a crashed upload may have left, and seeing it.
class Recovery {
 public:
  virtual ~Recovery() = default;
  // Removes whatever an upload that never finished (its process crashed)
  // may have left under `key`: its multipart upload (`store_upload_id` from
  // its record, and any other the store lists for the key), temporary files,
  // and the object itself if it was committed but never recorded complete.
  virtual boost::asio::awaitable<void> discard_unfinished(const std::string& key,
                                                          const std::string& store_upload_id) = 0;
  // Removes what other writers of a completed resumable upload left beside
  // its object (S3: tail objects, multipart uploads of the key); never the
  // object.
  virtual boost::asio::awaitable<void> discard_beside(const std::string& key) = 0;
  // The object under `key`, if there is one.
  virtual boost::asio::awaitable<std::optional<ObjectInfo>> stat(const std::string& key) = 0;
};

// Asked by a resumable writer before it changes anything in the store that
// another writer could see or would have to clean up (S3: a new multipart
// upload, a part, a tail object): throws if the writer no longer holds the
// upload (the database's lease moved on), so a writer that lost it stops
// at the store too, not only at its next record.
class WriteFence {
 public:
  virtual ~WriteFence() = default;
  virtual boost::asio::awaitable<void> check() = 0;
};

// Who wrote the upload last, as the database's write lease tells it.
enum class Handover {
  // The previous writer gave the lease up once its writes had landed (or
  // there was none): the new one may carry on in the same place.
  clean,
  // The previous writer's lease lapsed and was taken from it: it may still
  // be running (a half-open connection, a paused process, a slow request to
  // the store) and write late. The new writer writes nowhere it could, so
  // nothing the old one does can reach what the new one publishes.
  takeover,
};

// A writer of a resumable upload, as its write lease describes it.
struct WriterLease {
  Handover handover = Handover::clean;
  // Larger than the number of every writer of the upload before it (the
  // lease token it took), so a late writer can tell newer writers' things
  // from older ones and leaves the newer ones alone.
  std::int64_t number = 0;
  WriteFence* fence = nullptr;  // asked before changes others could see; may be null
};

// Capability: uploads written across requests (and instances), reopened
// from their last checkpoint (tus).
class ResumableStore {
 public:
  virtual ~ResumableStore() = default;
  // The part size for an upload of `length` bytes (unknown: deferred),
  // recorded with it at creation. 0 for a store without parts.
  virtual std::uint64_t part_size_for(std::optional<std::uint64_t> length) const = 0;
  // Opens the upload under `key` at `from` for `writer`; bytes a lost
  // request wrote past that point are dropped. After a takeover the
  // writer's settled() may report a point at once (the same offset, kept
  // elsewhere): record it. writer.fence (may be null) must outlive it.
  virtual boost::asio::awaitable<std::unique_ptr<ObjectWriter>> open_resumable(const std::string& key,
                                                                               const ObjectMetadata& metadata,
                                                                               const ResumePoint& from,
                                                                               const WriterLease& writer) = 0;
  // Removes what an unfinished resumable upload stored: its partial data
  // (every writer's, recorded or not), and the object if a commit landed but
  // was never recorded.
  virtual boost::asio::awaitable<void> discard_resumable(const std::string& key, const ResumePoint& last) = 0;
};

// Coroutine parameters are references: callers pass lvalues and await at once.
// (GCC 12 double-destroys some prvalue arguments of coroutines, e.g. a braced
// aggregate temporary, so callers name their arguments.) Failures are Error.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // `started` (may be empty) hears of the store's own upload id, if the
  // store makes one.
  virtual boost::asio::awaitable<std::unique_ptr<ObjectWriter>> open_writer(const std::string& key,
                                                                            const ObjectMetadata& metadata,
                                                                            const StoreUploadStarted& started) = 0;
  // The same for a caller that does not record store upload ids (tests).
  boost::asio::awaitable<std::unique_ptr<ObjectWriter>> open_writer(const std::string& key,
                                                                    const ObjectMetadata& metadata) {
    static const StoreUploadStarted nobody;
    return open_writer(key, metadata, nobody);
  }
  // The bytes [offset, offset + length) of the object (fewer if it is
  // shorter). Throws Error(not_found) if there is no such object.
  virtual boost::asio::awaitable<std::unique_ptr<ObjectReader>> open_reader(const std::string& key,
                                                                            std::uint64_t offset,
                                                                            std::uint64_t length) = 0;
  virtual boost::asio::awaitable<void> remove(const std::string& key) = 0;  // absent keys are not an error
  virtual std::string describe() const = 0;                                 // for logs, no secrets
  virtual std::string_view kind() const = 0;                                // "local", "s3": a metrics label
  // A cheap probe that uploads could be stored now (GET /readyz): returns,
  // or throws Error saying why not.
  virtual boost::asio::awaitable<void> check_ready() = 0;

  // Capabilities: nullptr when the store has none.
  virtual Presigner* presigner() { return nullptr; }
  virtual Recovery* recovery() { return nullptr; }
  virtual ResumableStore* resumable() { return nullptr; }
};

// Up to `length` bytes from `offset`, read whole (tests, small reads).
boost::asio::awaitable<std::string> read_range(ObjectStore& store, const std::string& key, std::uint64_t offset,
                                               std::uint64_t length);

// How to reach the store named by a URL. S3 settings follow the AWS SDK
// conventions where they exist (endpoint, region, credentials from the
// environment or ~/.aws/credentials).
struct StoreSettings {
  std::string url;          // file:///abs/dir, file://./rel/dir, s3://bucket[/prefix]
  std::string s3_endpoint;  // empty: AWS for the region
  std::string s3_region = "us-east-1";
  bool s3_force_path_style = false;
  std::string s3_ca_file;
  std::chrono::milliseconds s3_timeout{30'000};  // longest wait without progress on an S3 request
  std::string s3_part_checksum = "auto";  // auto, or sha256, md5, crc32c, crc64nvme (s3::PartChecksum)
  std::size_t part_size = 8 * 1024 * 1024;
  int parts_in_flight = 4;
  // The process's one memory budget for bodies in flight, shared with the
  // HTTP server's receive buffers (main makes it from buffer_budget).
  std::shared_ptr<util::BufferPool> buffers = std::make_shared<util::BufferPool>(256 * 1024 * 1024);
  // The budget downloads read into (main makes it from download_budget): a
  // download waits for it as an upload waits for the other, so memory stays
  // bounded however many readers stall; it is apart so that neither kind
  // of client can take all of the other's.
  std::shared_ptr<util::BufferPool> download_buffers = std::make_shared<util::BufferPool>(64 * 1024 * 1024);
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
