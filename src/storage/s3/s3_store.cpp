#include "storage/s3/s3_store.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/crypto.hpp"
#include "util/text.hpp"

namespace s3up::storage::s3 {

namespace asio = boost::asio;

namespace {

// Turns a failed S3 answer into a storage Error, with a log line that says
// what happened (never a secret).
[[noreturn]] void fail(std::string_view op, const std::string& key, unsigned status, std::string_view body) {
  const Response r{status, {}, std::string(body)};
  const auto e = parse_error(r.body);
  const std::string code = e ? e->code : "";
  const std::string message = e ? e->message : "";
  if (r.status == 403 || code == "AccessDenied" || code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId") {
    spdlog::error("s3 {} {}: access denied ({} {}): check the credentials, the region and the bucket policy", op, key,
                  code, message);
    throw Error(Failure::refused, "the object store refused access");
  }
  spdlog::error("s3 {} {}: HTTP {} {} {}", op, key, r.status, code, message);
  if (r.status >= 500) throw Error(Failure::unavailable, "the object store is unavailable");
  throw Error(Failure::rejected, "the object store answered with an error");
}
[[noreturn]] void fail(std::string_view op, const std::string& key, const Response& r) {
  fail(op, key, r.status, r.body);
}

asio::awaitable<Response> send(Client& client, const Request& request, std::string_view op) {
  try {
    co_return co_await client.send(request);
  } catch (const ConnectionFailure& e) {
    spdlog::error("s3 {} {}: store unreachable: {}", op, request.key, e.what());
    throw Error(Failure::unavailable, "the object store cannot be reached");
  }
}

std::string_view view(const char* data, std::size_t size) { return {data, size}; }

using Done = asio::experimental::concurrent_channel<void(boost::system::error_code)>;

// What a writer shares with its part uploads in flight (and with the abort
// that runs if the writer is dropped unfinished).
struct MultipartState {
  std::shared_ptr<Client> client;
  std::string key;  // in the bucket
  std::string upload_id;
  std::mutex mutex;
  std::vector<CompletedPart> parts;
  std::exception_ptr failure;
  Done done;  // one message per finished part upload
  MultipartState(std::shared_ptr<Client> c, std::string k, const asio::any_io_executor& executor,
                 std::size_t max_in_flight)
      : client(std::move(c)), key(std::move(k)), done(executor, max_in_flight) {}
};

struct PartJob {
  std::shared_ptr<MultipartState> state;
  util::BufferPool::Buffer buffer;
  std::size_t size = 0;
  int number = 0;
  std::string payload_hash;  // signed as x-amz-content-sha256: the part's SHA-256, or UNSIGNED-PAYLOAD
  std::string content_md5;   // base64, when the store checks the part by its MD5
};

// The running digest of the part being filled, in the form the store will
// check it by (S3StoreOptions::part_md5 says which and why).
class PartDigest {
 public:
  explicit PartDigest(bool md5) {
    if (md5) {
      md5_.emplace();
    } else {
      sha256_.emplace();
    }
  }
  void update(std::string_view data) {
    if (md5_) {
      md5_->update(data);
    } else {
      sha256_->update(data);
    }
  }
  // Hands the finished digest to the part and starts over for the next one.
  void finish_into(PartJob& job) {
    if (md5_) {
      job.payload_hash = std::string(kUnsignedPayload);
      job.content_md5 = util::base64(md5_->finish());
      md5_.emplace();
    } else {
      job.payload_hash = util::to_hex(sha256_->finish());
      sha256_.emplace();
    }
  }

 private:
  std::optional<util::Sha256> sha256_;
  std::optional<util::Md5> md5_;
};

asio::awaitable<void> upload_part(std::shared_ptr<PartJob> job) {
  auto& state = *job->state;
  const auto started = std::chrono::steady_clock::now();
  Request r;
  r.method = "PUT";
  r.key = state.key;
  r.query = {{"partNumber", std::to_string(job->number)}, {"uploadId", state.upload_id}};
  r.body = std::span<const char>(job->buffer.data(), job->size);
  r.payload_hash = job->payload_hash;
  if (!job->content_md5.empty()) r.headers = {{"content-md5", job->content_md5}};
  r.expect_continue = true;
  const auto res = co_await send(*state.client, r, "UploadPart");
  if (res.status != 200) fail("UploadPart", state.key, res);
  const std::string etag = res.header("etag");
  if (etag.empty()) throw Error(Failure::rejected, "UploadPart answered without an ETag");
  spdlog::debug("s3 {} part {}: {} bytes sent in {} ms", state.key, job->number, job->size,
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  std::lock_guard lock(state.mutex);
  state.parts.push_back({job->number, etag});
}

// Sends a filled part in the background; its end (and any failure) is
// reported on state->done and state->failure. The digest starts over.
void start_part_upload(const std::shared_ptr<MultipartState>& state, util::BufferPool::Buffer buffer,
                       std::size_t size, int number, PartDigest& digest) {
  auto job = std::make_shared<PartJob>();
  job->state = state;
  job->buffer = std::move(buffer);
  job->size = size;
  job->number = number;
  digest.finish_into(*job);
  asio::co_spawn(state->client->executor(), upload_part(std::move(job)), [state](std::exception_ptr e) {
    if (e) {
      std::lock_guard lock(state->mutex);
      if (!state->failure) state->failure = e;
    }
    state->done.try_send(boost::system::error_code{});
  });
}

// The multipart uploads in progress whose keys start with `prefix` (the
// first 1,000).
asio::awaitable<std::vector<MultipartUploadEntry>> multipart_uploads_under(Client& client, const std::string& prefix) {
  Request r;
  r.method = "GET";
  r.query = {{"uploads", ""}, {"prefix", prefix}};
  const auto res = co_await send(client, r, "ListMultipartUploads");
  if (res.status != 200) fail("ListMultipartUploads", prefix, res);
  co_return parse_list_multipart_uploads(res.body);
}

// Whether the multipart upload still holds parts: ListParts answers 404
// NoSuchUpload once it is aborted (radosgw, MinIO, AWS), and an empty list is
// what S3's documentation calls freed.
asio::awaitable<bool> multipart_upload_holds_parts(Client& client, const std::string& key,
                                                   const std::string& upload_id) {
  Request r;
  r.method = "GET";
  r.key = key;
  r.query = {{"max-parts", "1"}, {"uploadId", upload_id}};
  const auto res = co_await send(client, r, "ListParts");
  if (res.status == 404) co_return false;
  if (res.status != 200) fail("ListParts", key, res);
  co_return count_listed_parts(res.body) > 0;
}

// Every part the multipart upload holds, in order (ListParts, page by page);
// nullopt if there is no such upload (aborted or completed).
asio::awaitable<std::optional<std::vector<CompletedPart>>> list_parts(Client& client, const std::string& key,
                                                                      const std::string& upload_id) {
  std::vector<CompletedPart> parts;
  std::optional<int> marker;
  do {
    Request r;
    r.method = "GET";
    r.key = key;
    r.query = {{"uploadId", upload_id}};
    if (marker) r.query.emplace_back("part-number-marker", std::to_string(*marker));
    const auto res = co_await send(client, r, "ListParts");
    if (res.status == 404) co_return std::nullopt;
    if (res.status != 200) fail("ListParts", key, res);
    auto page = parse_list_parts(res.body);
    parts.insert(parts.end(), page.parts.begin(), page.parts.end());
    marker = page.next_marker;
  } while (marker);
  co_return parts;
}

// Aborts until ListParts says the upload is gone. A part the store was still
// receiving when the abort came can land after it and keep the upload and its
// storage alive; S3's documentation asks for exactly this check and another
// abort. Throws when the upload outlives them: the caller keeps it for later.
asio::awaitable<void> abort_upload(Client& client, const std::string& key, const std::string& upload_id) {
  constexpr int kAborts = 3;
  auto pause = std::chrono::milliseconds(200);
  for (int i = 0; i < kAborts; ++i) {
    if (i > 0) {
      asio::steady_timer timer(client.executor(), pause);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      pause *= 4;
    }
    Request r;
    r.method = "DELETE";
    r.key = key;
    r.query = {{"uploadId", upload_id}};
    const auto res = co_await send(client, r, "AbortMultipartUpload");
    if (res.status != 204 && res.status != 200 && res.status != 404) fail("AbortMultipartUpload", key, res);
    if (!co_await multipart_upload_holds_parts(client, key, upload_id)) co_return;
    spdlog::warn("s3: multipart upload {} of {} is still there after an abort", upload_id, key);
  }
  throw Error(Failure::rejected, "the object store kept a multipart upload it was asked to abort");
}

// HeadObject: the object's size and ETag, or nullopt if there is none.
asio::awaitable<std::optional<ObjectInfo>> head_object(Client& client, const std::string& key) {
  Request r;
  r.method = "HEAD";
  r.key = key;
  const auto res = co_await send(client, r, "HeadObject");
  if (res.status == 404) co_return std::nullopt;
  if (res.status != 200) fail("HeadObject", r.key, res);
  co_return ObjectInfo{std::stoull(res.header("content-length").empty() ? "0" : res.header("content-length")),
                       res.header("etag")};
}

// The headers an object is stored with (PutObject, CreateMultipartUpload).
std::vector<Header> object_headers(const ObjectMetadata& metadata) {
  std::vector<Header> h;
  h.emplace_back("content-type", metadata.content_type.empty() ? "application/octet-stream" : metadata.content_type);
  if (!metadata.file_name.empty()) {
    h.emplace_back("content-disposition", util::content_disposition_attachment(metadata.file_name));
  }
  return h;
}

asio::awaitable<void> remove_object(Client& client, const std::string& key) {
  Request r;
  r.method = "DELETE";
  r.key = key;
  const auto res = co_await send(client, r, "DeleteObject");
  if (res.status != 204 && res.status != 200 && res.status != 404) fail("DeleteObject", key, res);
}

// One PutObject of a whole object (smaller than a part), whose payload hash
// is the object's SHA-256 (hex); its ETag.
asio::awaitable<std::string> put_object(Client& client, const std::string& key, const ObjectMetadata& metadata,
                                        std::span<const char> body, const std::string& sha256) {
  Request r;
  r.method = "PUT";
  r.key = key;
  r.headers = object_headers(metadata);
  r.body = body;
  r.payload_hash = sha256;
  r.expect_continue = !body.empty();
  const auto res = co_await send(client, r, "PutObject");
  if (res.status != 200) fail("PutObject", key, res);
  co_return res.header("etag");
}

// CreateMultipartUpload for `key`: the store's upload id.
asio::awaitable<std::string> create_multipart_upload(Client& client, const std::string& key,
                                                     const ObjectMetadata& metadata) {
  Request r;
  r.method = "POST";
  r.key = key;
  r.query = {{"uploads", ""}};
  r.headers = object_headers(metadata);
  const auto res = co_await send(client, r, "CreateMultipartUpload");
  if (res.status != 200) fail("CreateMultipartUpload", key, res);
  auto id = parse_upload_id(res.body);
  if (!id) throw Error(Failure::rejected, "CreateMultipartUpload answered without an UploadId");
  co_return *id;
}

// CompleteMultipartUpload with `parts` (in order). The answer is the caller's
// to judge with completed(): S3 may answer 200 and still report an error.
asio::awaitable<Response> complete_multipart_upload(Client& client, const std::string& key,
                                                    const std::string& upload_id,
                                                    const std::vector<CompletedPart>& parts) {
  const std::string body = complete_multipart_body(parts);
  Request r;
  r.method = "POST";
  r.key = key;
  r.query = {{"uploadId", upload_id}};
  r.headers = {{"content-type", "application/xml"}};
  r.body = std::span<const char>(body.data(), body.size());
  co_return co_await send(client, r, "CompleteMultipartUpload");
}
bool completed(const Response& res) { return res.status == 200 && !parse_error(res.body); }

// UploadPartCopy: bytes [first, last] of the object `source` (in this
// bucket), copied by the store into part `number`; its ETag.
asio::awaitable<std::string> upload_part_copy(Client& client, const std::string& key, const std::string& upload_id,
                                              int number, const std::string& source, std::uint64_t first,
                                              std::uint64_t last) {
  Request r;
  r.method = "PUT";
  r.key = key;
  r.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
  r.headers = {{"x-amz-copy-source", "/" + client.options().bucket + "/" + uri_encode(source, false)},
               {"x-amz-copy-source-range", fmt::format("bytes={}-{}", first, last)}};
  const auto res = co_await send(client, r, "UploadPartCopy");
  if (!completed(res)) fail("UploadPartCopy", key, res);
  auto etag = parse_copy_part_etag(res.body);
  if (!etag) throw Error(Failure::rejected, "UploadPartCopy answered without an ETag");
  co_return *etag;
}

// ListObjectsV2: the keys that start with `prefix` (the first 1,000).
asio::awaitable<std::vector<std::string>> keys_under(Client& client, const std::string& prefix) {
  Request r;
  r.method = "GET";
  r.query = {{"list-type", "2"}, {"prefix", prefix}};
  const auto res = co_await send(client, r, "ListObjectsV2");
  if (res.status != 200) fail("ListObjectsV2", prefix, res);
  co_return parse_list_object_keys(res.body);
}

// A resumable upload's tail objects: <key>.tail.<random>, a new name for
// every one written, so no writer ever replaces one another reads (uploads
// begun before kept one <key>.tail).
constexpr std::string_view kTailSuffix = ".tail";
std::string new_tail_key(const std::string& key) {
  std::array<std::uint8_t, 8> bytes{};
  util::random_bytes(bytes);
  return key + std::string(kTailSuffix) + "." + util::to_hex(bytes);
}

// Everything a resumable upload of `key` may have left beside its object:
// every tail object and every multipart upload of the key (a writer that
// lost its lease, a request cut off before its first point was recorded).
asio::awaitable<void> sweep_resumable(Client& client, const std::string& key) {
  const std::string tails = key + std::string(kTailSuffix);
  for (const auto& tail : co_await keys_under(client, tails)) co_await remove_object(client, tail);
  for (const auto& upload : co_await multipart_uploads_under(client, key)) {
    if (upload.key == key) co_await abort_upload(client, key, upload.upload_id);
  }
}

class S3Writer final : public ObjectWriter {
 public:
  S3Writer(std::shared_ptr<Client> client, std::string key, ObjectMetadata metadata, StoreUploadStarted started,
           std::size_t part_size, int parts_in_flight, bool part_md5, std::shared_ptr<util::BufferPool> buffers)
      : client_(std::move(client)),
        key_(std::move(key)),
        metadata_(std::move(metadata)),
        started_(std::move(started)),
        part_size_(part_size),
        parts_in_flight_(parts_in_flight),
        buffers_(std::move(buffers)),
        part_digest_(part_md5) {}

  ~S3Writer() override {
    if (finished_ || !state_) return;
    // Dropped unfinished (a bug path or a cancelled connection): abort in the
    // background once the parts in flight are done, so no multipart upload is
    // left behind.
    auto state = state_;
    const int in_flight = in_flight_;
    asio::co_spawn(
        state->done.get_executor(),
        [state, in_flight]() -> asio::awaitable<void> {
          for (int i = 0; i < in_flight; ++i) co_await state->done.async_receive(asio::use_awaitable);
          co_await abort_upload(*state->client, state->key, state->upload_id);
          spdlog::info("s3: aborted abandoned multipart upload of {}", state->key);
        },
        [state](std::exception_ptr e) {
          // The row is still pending: the janitor aborts it once it is stale.
          if (e) {
            spdlog::warn("s3: aborting the abandoned multipart upload of {} failed; the janitor will retry", state->key);
          }
        });
  }

  asio::awaitable<void> write(std::span<const char> data) override {
    while (!data.empty()) {
      if (buffer_ && filled_ == part_size_) co_await seal_part();  // only once more bytes exist: see commit()
      if (!buffer_) buffer_ = co_await buffers_->acquire(part_size_);
      const std::size_t n = std::min(data.size(), part_size_ - filled_);
      std::memcpy(buffer_.data() + filled_, data.data(), n);
      // Both hashes as the bytes arrive (the copy left them in cache), so a
      // sealed part can go out at once instead of waiting to be hashed.
      whole_sha_.update(view(buffer_.data() + filled_, n));
      part_digest_.update(view(buffer_.data() + filled_, n));
      filled_ += n;
      size_ += n;
      data = data.subspan(n);
    }
  }

  asio::awaitable<CommittedObject> commit() override {
    if (!state_) co_return co_await put_single();
    const auto started = std::chrono::steady_clock::now();
    if (filled_ > 0) co_await seal_part();  // the last part may be smaller than the others
    co_await wait_all();
    const auto parts_done = std::chrono::steady_clock::now();
    if (state_->failure) std::rethrow_exception(state_->failure);  // the caller aborts
    auto parts = state_->parts;
    std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.number < b.number; });
    commit_sent_ = true;
    const auto res = co_await complete_multipart_upload(*client_, state_->key, state_->upload_id, parts);
    if (!completed(res)) fail("CompleteMultipartUpload", state_->key, res);  // the caller aborts
    finished_ = true;
    spdlog::debug("s3 {}: {} parts; last parts took {} ms, CompleteMultipartUpload {} ms", state_->key, parts.size(),
                  std::chrono::duration_cast<std::chrono::milliseconds>(parts_done - started).count(),
                  std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - parts_done).count());
    co_return CommittedObject{size_, util::to_hex(whole_sha_.finish()), parse_complete_etag(res.body).value_or("")};
  }

  asio::awaitable<void> abort() override {
    if (finished_) co_return;
    finished_ = true;
    buffer_.reset();
    if (state_) {
      co_await wait_all();
      co_await abort_upload(*client_, state_->key, state_->upload_id);
    }
    // A commit whose answers were all lost may have stored the object anyway.
    // The key is this upload's alone, so removing it is safe.
    if (commit_sent_) co_await remove_object(*client_, key_);
  }

 private:
  // Smaller than one part: one PutObject, whose payload hash is the object's.
  asio::awaitable<CommittedObject> put_single() {
    const char* data = buffer_ ? buffer_.data() : "";
    const std::string sha = util::to_hex(whole_sha_.finish());
    const std::span<const char> body(data, filled_);
    commit_sent_ = true;
    const auto etag = co_await put_object(*client_, key_, metadata_, body, sha);
    finished_ = true;
    buffer_.reset();
    co_return CommittedObject{size_, sha, etag};
  }

  asio::awaitable<void> start_multipart() {
    auto id = co_await create_multipart_upload(*client_, key_, metadata_);
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    state_ = std::make_shared<MultipartState>(client_, key_, executor, static_cast<std::size_t>(parts_in_flight_) + 1);
    state_->upload_id = std::move(id);
    // Recorded before any part is sent: a crash from here on leaves an id
    // the janitor can abort. (If recording fails, the writer's abort runs.)
    if (started_) co_await started_(state_->upload_id);
  }

  asio::awaitable<void> seal_part() {
    if (!state_) co_await start_multipart();
    if (state_->failure) std::rethrow_exception(state_->failure);
    while (in_flight_ >= parts_in_flight_) co_await wait_one();
    if (state_->failure) std::rethrow_exception(state_->failure);
    if (next_part_ >= static_cast<int>(kMaxParts)) throw Error(Failure::too_large, "more than 10,000 parts");
    start_part_upload(state_, std::move(buffer_), filled_, ++next_part_, part_digest_);
    filled_ = 0;
    ++in_flight_;
  }

  asio::awaitable<void> wait_one() {
    co_await state_->done.async_receive(asio::use_awaitable);
    --in_flight_;
  }

  asio::awaitable<void> wait_all() {
    while (in_flight_ > 0) co_await wait_one();
  }

  std::shared_ptr<Client> client_;
  std::string key_;
  ObjectMetadata metadata_;
  StoreUploadStarted started_;
  std::size_t part_size_;
  int parts_in_flight_;
  std::shared_ptr<util::BufferPool> buffers_;
  std::shared_ptr<MultipartState> state_;  // once the multipart upload exists
  util::Sha256 whole_sha_;
  PartDigest part_digest_;
  util::BufferPool::Buffer buffer_;
  std::size_t filled_ = 0;
  std::uint64_t size_ = 0;
  int next_part_ = 0;
  int in_flight_ = 0;
  bool finished_ = false;
  bool commit_sent_ = false;  // PutObject or CompleteMultipartUpload went out
};


// A resumable upload's share of one request (tus). The object is a multipart
// upload whose parts all have the size fixed at creation; part n holds bytes
// [(n-1)·part, n·part). What has not filled a part is the tail: kept in the
// writer's part buffer, and at a checkpoint stored as a temporary object next
// to the upload (a new <key>.tail.<random> each time), which the next request
// reads back first. The store state saved with each point is {upload id, the
// parts' ETags in order, the tail's length and key}.
class S3ResumableWriter final : public ResumableWriter {
 public:
  struct Saved {
    std::string upload_id;
    std::vector<std::string> etags;
    std::uint64_t tail = 0;
    std::string tail_key;  // "" with a tail: <key>.tail (an upload begun before tails were named apart)
  };

  S3ResumableWriter(std::shared_ptr<Client> client, std::string key, ObjectMetadata metadata, std::size_t part_size,
                    int parts_in_flight, bool part_md5, std::shared_ptr<util::BufferPool> buffers, Saved saved,
                    util::ResumableSha256 hash, std::uint64_t offset, WriteFence* fence)
      : fence_(fence),
        client_(std::move(client)),
        key_(std::move(key)),
        live_tail_(tail_key_of(key_, saved)),
        metadata_(std::move(metadata)),
        part_size_(part_size),
        parts_in_flight_(parts_in_flight),
        buffers_(std::move(buffers)),
        part_digest_(part_md5),
        upload_id_(std::move(saved.upload_id)),
        etags_(std::move(saved.etags)),
        hash_(std::move(hash)),
        offset_(offset) {}

  // Reads the tail back into the part buffer.
  asio::awaitable<void> restore_tail(std::uint64_t tail) {
    if (tail == 0) co_return;
    buffer_ = co_await buffers_->acquire(part_size_);
    Request r;
    r.method = "GET";
    r.key = live_tail_;
    r.headers = {{"range", fmt::format("bytes=0-{}", tail - 1)}};
    std::unique_ptr<ResponseStream> response;
    try {
      response = co_await client_->open(r);
      if (response->status() == 404) throw Error(Failure::not_found, "the upload's data is gone");
      if (response->status() != 206 && response->status() != 200) {
        const auto body = co_await response->read_rest();
        fail("GetObject", live_tail_, response->status(), body);
      }
      while (filled_ < tail) {
        const auto n = co_await response->read_some(std::span<char>(buffer_.data() + filled_, tail - filled_));
        if (n == 0) break;
        filled_ += n;
      }
    } catch (const ConnectionFailure& e) {
      spdlog::error("s3 GetObject {}: store unreachable: {}", live_tail_, e.what());
      throw Error(Failure::unavailable, "the object store cannot be reached");
    }
    if (filled_ != tail) throw Error(Failure::internal, "the upload's tail object is shorter than its saved state");
    part_digest_.update(view(buffer_.data(), filled_));
  }

  asio::awaitable<void> write(std::span<const char> data) override {
    while (!data.empty()) {
      if (buffer_ && filled_ == part_size_) co_await seal_part();
      if (!buffer_) buffer_ = co_await buffers_->acquire(part_size_);
      const std::size_t n = std::min(data.size(), part_size_ - filled_);
      std::memcpy(buffer_.data() + filled_, data.data(), n);
      hash_.update(view(buffer_.data() + filled_, n));
      part_digest_.update(view(buffer_.data() + filled_, n));
      filled_ += n;
      offset_ += n;
      data = data.subspan(n);
    }
  }

  asio::awaitable<void> quiesce() noexcept override {
    while (state_ && in_flight_ > 0) {
      try {
        co_await wait_one();
      } catch (const std::exception&) {
      }
    }
  }

  asio::awaitable<std::string> head(std::size_t n) override {
    // Within the first part the bytes are all in the buffer (restored from the tail).
    if (offset_ != filled_) {  // the buffer does not start at the upload's first byte
      throw Error(Failure::internal, "the head of an upload is only kept within its first part");
    }
    co_return std::string(buffer_ ? buffer_.data() : "", std::min<std::size_t>(n, filled_));
  }

  // After a takeover: the old writer may still send parts to the multipart
  // upload it shares with us, replacing ours, or complete it. So the parts
  // recorded so far are published as the object (CompleteMultipartUpload;
  // the row stays pending, so nothing serves it) and copied, in the store,
  // into a new multipart upload of our own. The old upload is gone: a part
  // the old writer sends now is refused (NoSuchUpload), and its tail objects
  // have names nobody reads.
  asio::awaitable<void> move_to_own_upload() {
    if (upload_id_.empty()) co_return;
    const std::string old_upload = upload_id_;
    upload_id_.clear();
    moved_ = true;
    if (etags_.empty()) {
      try {
        co_await abort_upload(*client_, key_, old_upload);
      } catch (const Error& e) {
        spdlog::warn("s3 {}: aborting the upload a lost writer had failed ({}); the commit sweeps it", key_, e.what());
      }
      co_return;
    }
    co_await publish_recorded_parts(old_upload);
    co_await start_multipart();
    for (std::size_t i = 0; i < etags_.size(); ++i) {
      const int number = static_cast<int>(i + 1);
      etags_[i] = co_await upload_part_copy(*client_, key_, upload_id_, number, key_, i * part_size_,
                                            (i + 1) * part_size_ - 1);
    }
    spdlog::info("s3 {}: taken over at {} bytes; {} parts copied into upload {}", key_, offset_, etags_.size(),
                 upload_id_);
  }

  // Completes the old writer's upload so that the object's first bytes are
  // the recorded parts. The old writer's own parts after them are listed
  // too: radosgw completes an upload only with every part it holds (AWS
  // would take the recorded ones alone); they land past what is copied. An
  // upload that is already complete (an earlier takeover, or the old writer
  // itself) has the recorded parts first all the same.
  asio::awaitable<void> publish_recorded_parts(const std::string& old_upload) {
    const std::uint64_t recorded = etags_.size() * part_size_;
    constexpr int kTries = 4;  // the old writer may add a part between listing and completing
    for (int i = 0;; ++i) {
      const auto held = co_await list_parts(*client_, key_, old_upload);
      if (!held) break;  // no such upload: completed already
      auto parts = completed_parts();
      for (const auto& part : *held) {
        if (part.number > static_cast<int>(etags_.size())) parts.push_back(part);
      }
      const auto res = co_await complete_multipart_upload(*client_, key_, old_upload, parts);
      if (completed(res)) co_return;
      if (i + 1 == kTries) fail("CompleteMultipartUpload", key_, res);
    }
    const auto stored = co_await head_object(*client_, key_);
    if (!stored || stored->size < recorded) throw Error(Failure::not_found, "the upload's data is gone");
  }

  std::optional<ResumePoint> settled() override {
    if (moved_ && !state_ && offset_ == opened_at_) {
      moved_ = false;
      return point(offset_, hash_.save(), filled_, live_tail_);
    }
    if (!state_) return std::nullopt;
    const std::size_t before = etags_.size();
    take_finished_parts();
    if (etags_.size() == before) return std::nullopt;
    // The tail object, if any, is older than these parts: the point does not need it.
    const auto boundary = boundaries_.extract(static_cast<int>(etags_.size()));
    boundaries_.erase(boundaries_.begin(), boundaries_.lower_bound(static_cast<int>(etags_.size())));
    return point(boundary.mapped().first, boundary.mapped().second, 0, "");
  }

  asio::awaitable<ResumePoint> checkpoint() override {
    if (buffer_ && filled_ == part_size_) co_await seal_part();
    co_await wait_all();
    take_finished_parts();
    std::string tail_key;
    if (filled_ > 0) tail_key = co_await put_tail();
    moved_ = false;
    co_return point(offset_, hash_.save(), filled_, tail_key);
  }

  // The tail the database held before is no longer read by anyone.
  asio::awaitable<void> recorded(const ResumePoint& at) override {
    const auto saved = parse_saved(at.store_state);
    const std::string now_live = saved ? tail_key_of(key_, *saved) : "";
    if (!live_tail_.empty() && live_tail_ != now_live) {
      try {
        co_await remove_object(*client_, live_tail_);
      } catch (const Error& e) {
        spdlog::warn("s3 {}: removing an old tail object failed ({}); the commit sweeps it", key_, e.what());
      }
    }
    live_tail_ = now_live;
  }

  asio::awaitable<CommittedObject> commit() override {
    co_await check_fence();
    CommittedObject committed;
    if (upload_id_.empty()) {
      committed = co_await put_whole();
    } else {
      std::exception_ptr refused;
      try {
        committed = co_await complete_parts();
      } catch (const Error& e) {
        if (e.failure() != Failure::rejected) throw;
        refused = std::current_exception();
      }
      if (refused) committed = co_await completed_earlier(refused);
    }
    try {
      co_await sweep_resumable(*client_, key_);
    } catch (const Error& e) {
      spdlog::warn("s3 {}: removing what other writers left failed ({})", key_, e.what());
    }
    co_return committed;
  }

  // The tail object a saved point names, "" if it has no tail.
  static std::string tail_key_of(const std::string& key, const Saved& saved) {
    if (saved.tail == 0) return "";
    return saved.tail_key.empty() ? key + std::string(kTailSuffix) : saved.tail_key;
  }

  // The store state a point saved (point()), or a new upload's for "".
  static std::optional<Saved> parse_saved(std::string_view text) {
    Saved saved;
    if (text.empty()) return saved;
    boost::system::error_code ec;
    const auto value = boost::json::parse(text, ec);
    const auto* o = value.if_object();
    if (ec || o == nullptr) return std::nullopt;
    const auto* id = o->if_contains("upload_id");
    const auto* etags = o->if_contains("etags");
    const auto* tail = o->if_contains("tail");
    const auto* tail_key = o->if_contains("tail_key");
    if (!id || !id->is_string() || !etags || !etags->is_array() || !tail || !tail->is_number()) return std::nullopt;
    if (tail_key && !tail_key->is_string()) return std::nullopt;
    saved.upload_id = std::string(id->get_string());
    for (const auto& e : etags->get_array()) {
      if (!e.is_string()) return std::nullopt;
      saved.etags.emplace_back(e.get_string());
    }
    saved.tail = tail->to_number<std::uint64_t>();
    if (tail_key) saved.tail_key = std::string(tail_key->get_string());
    return saved;
  }

 private:
  ResumePoint point(std::uint64_t offset, std::string hash_state, std::uint64_t tail,
                    const std::string& tail_key) const {
    boost::json::array etags;
    for (const auto& e : etags_) etags.emplace_back(e);
    boost::json::object state{{"upload_id", upload_id_}, {"etags", std::move(etags)}, {"tail", tail}};
    if (tail > 0) state["tail_key"] = tail_key;
    return ResumePoint{offset, boost::json::serialize(state), std::move(hash_state), part_size_};
  }

  asio::awaitable<CommittedObject> complete_parts() {
    if (filled_ > 0) co_await seal_part();  // the last part may be smaller than the others
    co_await wait_all();
    take_finished_parts();
    const auto parts = completed_parts();
    const auto res = co_await complete_multipart_upload(*client_, key_, upload_id_, parts);
    if (!completed(res)) fail("CompleteMultipartUpload", key_, res);
    co_return CommittedObject{offset_, util::to_hex(hash_.digest()), parse_complete_etag(res.body).value_or("")};
  }

  // The store refused a part or the completion: when an earlier request's
  // CompleteMultipartUpload landed and only its answer was lost, the store
  // knows no such upload and the object is there, whole. (Its key is this
  // upload's alone.) Otherwise `refused` stands.
  asio::awaitable<CommittedObject> completed_earlier(std::exception_ptr refused) {
    co_await quiesce();  // parts still in flight land first
    const auto stored = co_await head_object(*client_, key_);
    if (!stored || stored->size != offset_) std::rethrow_exception(refused);
    spdlog::info("s3 {}: an earlier request completed it; its answer was lost", key_);
    co_return CommittedObject{offset_, util::to_hex(hash_.digest()), stored->etag};
  }

  std::vector<CompletedPart> completed_parts() const {
    std::vector<CompletedPart> parts;
    for (std::size_t i = 0; i < etags_.size(); ++i) parts.push_back({static_cast<int>(i + 1), etags_[i]});
    return parts;
  }

  // Moves the parts that finished, in order with no gap, into etags_.
  void take_finished_parts() {
    if (!state_) return;
    std::lock_guard lock(state_->mutex);
    if (state_->failure) std::rethrow_exception(state_->failure);
    for (const auto& part : state_->parts) finished_.emplace(part.number, part.etag);
    state_->parts.clear();
    for (auto it = finished_.find(static_cast<int>(etags_.size()) + 1); it != finished_.end();
         it = finished_.find(static_cast<int>(etags_.size()) + 1)) {
      etags_.push_back(it->second);
      finished_.erase(it);
    }
  }

  asio::awaitable<void> start_multipart() { upload_id_ = co_await create_multipart_upload(*client_, key_, metadata_); }

  asio::awaitable<void> seal_part() {
    co_await check_fence();
    if (upload_id_.empty()) co_await start_multipart();
    if (!state_) {
      state_ = std::make_shared<MultipartState>(client_, key_, client_->executor(),
                                                static_cast<std::size_t>(parts_in_flight_) + 1);
      state_->upload_id = upload_id_;
    }
    while (in_flight_ >= parts_in_flight_) co_await wait_one();
    take_finished_parts();
    const auto number = static_cast<int>((offset_ - filled_) / part_size_) + 1;
    if (number > static_cast<int>(kMaxParts)) throw Error(Failure::too_large, "more than 10,000 parts");
    // Where this part ends, and the whole-file hash there: the point to
    // report once it and every part before it are stored.
    boundaries_[number] = {offset_, hash_.save()};
    start_part_upload(state_, std::move(buffer_), filled_, number, part_digest_);
    filled_ = 0;
    ++in_flight_;
  }

  asio::awaitable<void> wait_one() {
    co_await state_->done.async_receive(asio::use_awaitable);
    --in_flight_;
  }
  asio::awaitable<void> wait_all() {
    while (state_ && in_flight_ > 0) co_await wait_one();
  }

  // Stores the bytes that do not fill a part under a new name; the name.
  asio::awaitable<std::string> put_tail() {
    co_await check_fence();
    const std::string sha = util::sha256_hex(view(buffer_.data(), filled_));
    Request r;
    r.method = "PUT";
    r.key = new_tail_key(key_);
    r.body = std::span<const char>(buffer_.data(), filled_);
    r.payload_hash = sha;
    r.expect_continue = true;
    const auto res = co_await send(*client_, r, "PutObject");
    if (res.status != 200) fail("PutObject", r.key, res);
    co_return r.key;
  }

  // The whole object was smaller than one part: one PutObject.
  asio::awaitable<CommittedObject> put_whole() {
    const char* data = buffer_ ? buffer_.data() : "";
    const std::string sha = util::to_hex(hash_.digest());
    const std::span<const char> body(data, filled_);
    const auto etag = co_await put_object(*client_, key_, metadata_, body, sha);
    co_return CommittedObject{offset_, sha, etag};
  }

  asio::awaitable<void> check_fence() {
    if (fence_) co_await fence_->check();
  }

  WriteFence* fence_;
  std::shared_ptr<Client> client_;
  std::string key_;
  std::string live_tail_;  // the tail object the database's point names ("" if none)
  ObjectMetadata metadata_;
  std::size_t part_size_;
  int parts_in_flight_;
  std::shared_ptr<util::BufferPool> buffers_;
  PartDigest part_digest_;
  std::string upload_id_;
  std::vector<std::string> etags_;                  // parts 1..n stored, in order
  std::map<int, std::string> finished_;             // stored parts after a gap (an earlier one still in flight)
  std::map<int, std::pair<std::uint64_t, std::string>> boundaries_;  // part -> (its end offset, hash state there)
  std::shared_ptr<MultipartState> state_;           // the part uploads in flight
  util::ResumableSha256 hash_;
  util::BufferPool::Buffer buffer_;
  std::size_t filled_ = 0;
  std::uint64_t offset_;
  std::uint64_t opened_at_ = offset_;
  bool moved_ = false;  // the recorded parts are in an upload of our own, not yet recorded
  int in_flight_ = 0;
};

}  // namespace

std::size_t choose_part_size(std::size_t configured, std::optional<std::uint64_t> size_hint) {
  std::size_t part = std::max(configured, kMinPartSize);
  if (size_hint && *size_hint / part >= kMaxParts) {
    constexpr std::uint64_t MiB = 1024 * 1024;
    const std::uint64_t needed = (*size_hint + kMaxParts - 1) / kMaxParts;
    part = static_cast<std::size_t>((needed + MiB - 1) / MiB * MiB);
  }
  return std::min(part, kMaxPartSize);
}

S3Store::S3Store(asio::any_io_executor executor, S3StoreOptions options, std::shared_ptr<CredentialsProvider> credentials,
                 std::shared_ptr<util::BufferPool> buffers, std::shared_ptr<util::BufferPool> download_buffers)
    : options_(std::move(options)),
      client_(std::make_shared<Client>(std::move(executor), options_.client, std::move(credentials))),
      buffers_(std::move(buffers)),
      download_buffers_(std::move(download_buffers)) {
  if (!options_.prefix.empty() && options_.prefix.back() != '/') options_.prefix.push_back('/');
}

asio::awaitable<std::string> S3Store::presigned_get_url(const std::string& key, std::chrono::seconds ttl) {
  co_return co_await client_->presign("GET", bucket_key(key), ttl);
}

std::string S3Store::describe() const {
  return fmt::format("s3://{}/{} ({}, {} style, parts checked by {}, credentials from {})", options_.client.bucket,
                     options_.prefix, util::redact_url_userinfo(client_->options().endpoint), client_->path_style() ? "path" : "virtual-hosted",
                     options_.part_md5 ? "Content-MD5" : "signed SHA-256", client_->credentials_source());
}

asio::awaitable<std::unique_ptr<ObjectWriter>> S3Store::open_writer(const std::string& key,
                                                                    const ObjectMetadata& metadata,
                                                                    const StoreUploadStarted& started) {
  if (!is_valid_key(key)) throw Error(Failure::internal, "invalid object key");
  const std::size_t part = choose_part_size(options_.part_size, metadata.size_hint);
  if (part > buffers_->budget()) throw Error(Failure::internal, "the buffer budget is smaller than one part");
  co_return std::make_unique<S3Writer>(client_, bucket_key(key), metadata, started, part, options_.parts_in_flight,
                                       options_.part_md5, buffers_);
}

asio::awaitable<std::optional<ObjectInfo>> S3Store::stat(const std::string& key) {
  co_return co_await head_object(*client_, bucket_key(key));
}

asio::awaitable<void> S3Store::remove(const std::string& key) {
  const std::string full_key = bucket_key(key);
  co_await remove_object(*client_, full_key);
}

std::uint64_t S3Store::part_size_for(std::optional<std::uint64_t> length) const {
  return choose_part_size(options_.part_size, length);
}

asio::awaitable<std::unique_ptr<ResumableWriter>> S3Store::open_resumable(const std::string& key,
                                                                          const ObjectMetadata& metadata,
                                                                          const ResumePoint& from,
                                                                          const WriterLease& writer_lease) {
  auto saved = S3ResumableWriter::parse_saved(from.store_state);
  auto hash = from.hash_state.empty() ? std::optional(util::ResumableSha256())
                                      : util::ResumableSha256::restore(from.hash_state);
  if (!saved || !hash || hash->bytes_hashed() != from.offset || from.part_size < kMinPartSize ||
      from.part_size > kMaxPartSize || saved->tail >= from.part_size ||
      saved->etags.size() * from.part_size + saved->tail != from.offset) {
    throw Error(Failure::internal, "resumable upload state does not match its offset");
  }
  const auto tail = saved->tail;
  auto writer = std::make_unique<S3ResumableWriter>(client_, bucket_key(key), metadata, from.part_size,
                                                    options_.parts_in_flight, options_.part_md5, buffers_,
                                                    std::move(*saved), std::move(*hash), from.offset, writer_lease.fence);
  co_await writer->restore_tail(tail);
  if (writer_lease.handover == Handover::takeover) co_await writer->move_to_own_upload();
  co_return writer;
}

asio::awaitable<void> S3Store::discard_resumable(const std::string& key, const ResumePoint& last) {
  const auto saved = S3ResumableWriter::parse_saved(last.store_state);
  // (Arguments named, not temporaries: see ObjectStore on GCC 12.)
  const std::string upload_id = saved ? saved->upload_id : "";
  co_await discard_unfinished(key, upload_id);
  const std::string full_key = bucket_key(key);
  co_await sweep_resumable(*client_, full_key);
}

namespace {

// One ranged GetObject, its body handed on as it arrives. Two pieces: while
// the caller sends one, the next is read from the store (so the two sockets
// work at once, not in turn), and no more: the store is read only as fast as
// the client takes the bytes, and memory stays at two pieces per download,
// taken from the download budget (pieces()) before the store is asked.
class S3Reader final : public ObjectReader {
 public:
  S3Reader(std::unique_ptr<ResponseStream> response, std::string key, std::uint64_t skip, std::uint64_t length,
           asio::any_io_executor executor, util::BufferPool::Buffer memory)
      : shared_(std::make_shared<Shared>(std::move(response), std::move(key), skip, length, executor,
                                         std::move(memory))) {}

  // The memory of a download's two pieces: large ones while the budget has
  // room to spare, else small ones, waited for like an upload's buffers.
  static asio::awaitable<util::BufferPool::Buffer> pieces(util::BufferPool& budget) {
    auto large = budget.try_acquire(2 * kReadPiece, budget.budget() / 2);
    if (large) co_return large;
    co_return co_await budget.acquire(2 * kSmallPiece);
  }

  ~S3Reader() override = default;  // a read in flight finishes (or times out) on its own, then frees the rest

  asio::awaitable<std::span<const char>> read_some() override {
    auto& sh = *shared_;
    if (!sh.response || (!reading_ && sh.left == 0)) co_return std::span<const char>{};
    if (!reading_) start_reading(current_);
    // The piece being read is the one to hand out; the other (handed out
    // last time, taken by now) is read into meanwhile.
    auto [ec, failure, size] = co_await sh.filled.async_receive(asio::as_tuple(asio::use_awaitable));
    reading_ = false;
    if (ec) throw Error(Failure::unavailable, "the object store read was interrupted");
    if (failure) std::rethrow_exception(failure);
    const int ready = current_;
    current_ = 1 - current_;
    if (sh.left > 0) start_reading(current_);
    co_return std::span<const char>(sh.pieces[ready].data() + sh.offsets[ready], size);
  }

 private:
  // Large enough that a fast download costs few syscalls on either socket
  // (1 MiB pieces measured 0.83 of a direct GET, 256 KiB ones 0.79).
  static constexpr std::size_t kReadPiece = 1024 * 1024;
  static constexpr std::size_t kSmallPiece = 256 * 1024;
  using Filled = asio::experimental::concurrent_channel<void(boost::system::error_code, std::exception_ptr, std::size_t)>;

  struct Shared {
    Shared(std::unique_ptr<ResponseStream> r, std::string k, std::uint64_t s, std::uint64_t l,
           const asio::any_io_executor& executor, util::BufferPool::Buffer m)
        : response(std::move(r)), key(std::move(k)), skip(s), left(l), memory(std::move(m)), filled(executor, 1) {
      const std::size_t half = memory.capacity() / 2;
      for (std::size_t i = 0; i < pieces.size(); ++i) pieces[i] = std::span<char>(memory.data() + i * half, half);
    }
    std::unique_ptr<ResponseStream> response;
    std::string key;
    std::uint64_t skip, left;  // bytes still to skip (a store that ignored Range), still to hand out
    util::BufferPool::Buffer memory;  // both pieces
    std::array<std::span<char>, 2> pieces;
    std::array<std::size_t, 2> offsets{};  // where a piece's bytes start (after skipped ones)
    Filled filled;
  };

  // Fills pieces[index] as far as the store gives bytes, then reports.
  void start_reading(int index) {
    reading_ = true;
    auto sh = shared_;
    asio::co_spawn(sh->filled.get_executor(), [sh, index]() -> asio::awaitable<void> {
      std::exception_ptr failure;
      std::size_t size = 0;
      try {
        size = co_await fill(*sh, index);
      } catch (const ConnectionFailure& e) {
        spdlog::error("s3 GetObject {}: the body broke off: {}", sh->key, e.what());
        failure = std::make_exception_ptr(Error(Failure::unavailable, "the object store stopped sending the object"));
      } catch (...) {
        failure = std::current_exception();
      }
      sh->filled.try_send(boost::system::error_code{}, failure, size);
    }, asio::detached);
  }

  static asio::awaitable<std::size_t> fill(Shared& sh, int index) {
    auto& piece = sh.pieces[index];
    std::size_t start = 0, size = 0;
    while (sh.left > 0 && start + size < piece.size()) {
      const std::size_t n =
          co_await sh.response->read_some(std::span<char>(piece.data() + start + size, piece.size() - start - size));
      if (n == 0) {
        sh.left = 0;  // shorter than asked: the end
        break;
      }
      // Bytes before the range, from a store that sent the object whole.
      const auto skipped = static_cast<std::size_t>(std::min<std::uint64_t>(sh.skip, n));
      sh.skip -= skipped;
      if (size == 0) start = skipped == n ? 0 : start + skipped;  // all skipped: the space is free again
      const auto kept = static_cast<std::size_t>(std::min<std::uint64_t>(n - skipped, sh.left));
      size += kept;
      sh.left -= kept;
      if (size > 0 && size >= piece.size() / 2) break;  // enough to send; the next read overlaps it
    }
    sh.offsets[index] = start;
    co_return size;
  }

  std::shared_ptr<Shared> shared_;
  int current_ = 0;       // the piece the next read_some hands out
  bool reading_ = false;  // a fill is in flight
};

}  // namespace

asio::awaitable<std::unique_ptr<ObjectReader>> S3Store::open_reader(const std::string& key, std::uint64_t offset,
                                                                    std::uint64_t length) {
  Request r;
  r.method = "GET";
  r.key = bucket_key(key);
  if (length == 0) {
    // A range cannot be empty; an empty read only needs the object to exist.
    const auto info = co_await stat(key);
    if (!info) throw Error(Failure::not_found, "no such object");
    co_return std::make_unique<S3Reader>(nullptr, r.key, 0, 0, client_->executor(), util::BufferPool::Buffer());
  }
  auto memory = co_await S3Reader::pieces(*download_buffers_);
  r.headers = {{"range", fmt::format("bytes={}-{}", offset, offset + length - 1)}};
  std::unique_ptr<ResponseStream> response;
  try {
    response = co_await client_->open(r);
  } catch (const ConnectionFailure& e) {
    spdlog::error("s3 GetObject {}: store unreachable: {}", r.key, e.what());
    throw Error(Failure::unavailable, "the object store cannot be reached");
  }
  const unsigned status = response->status();
  if (status == 404) throw Error(Failure::not_found, "no such object");
  if (status == 416) {  // past the end
    co_return std::make_unique<S3Reader>(nullptr, r.key, 0, 0, client_->executor(), util::BufferPool::Buffer());
  }
  if (status != 206 && status != 200) {
    std::string body;
    try {
      body = co_await response->read_rest();
    } catch (const ConnectionFailure&) {
    }
    fail("GetObject", r.key, status, body);
  }
  const std::uint64_t skip = status == 200 ? offset : 0;
  co_return std::make_unique<S3Reader>(std::move(response), r.key, skip, length, client_->executor(),
                                       std::move(memory));
}

asio::awaitable<std::vector<std::string>> S3Store::list_keys() {
  co_return co_await keys_under(*client_, options_.prefix);
}

asio::awaitable<void> S3Store::create_bucket() {
  Request r;
  r.method = "PUT";
  const auto res = co_await send(*client_, r, "CreateBucket");
  if (res.status == 200) co_return;
  const auto e = parse_error(res.body);
  if (e && (e->code == "BucketAlreadyOwnedByYou" || e->code == "BucketAlreadyExists")) co_return;
  fail("CreateBucket", options_.client.bucket, res);
}

asio::awaitable<std::vector<MultipartUploadEntry>> S3Store::list_multipart_uploads() {
  co_return co_await multipart_uploads_under(*client_, options_.prefix);
}

asio::awaitable<void> S3Store::abort_multipart_upload(const std::string& bucket_key, const std::string& upload_id) {
  co_await abort_upload(*client_, bucket_key, upload_id);
}

asio::awaitable<void> S3Store::discard_unfinished(const std::string& key, const std::string& store_upload_id) {
  const std::string full_key = bucket_key(key);
  if (!store_upload_id.empty()) co_await abort_upload(*client_, full_key, store_upload_id);
  // A crash right after CreateMultipartUpload leaves an upload whose id never
  // reached the record: ask the store for the key's uploads too.
  const auto uploads = co_await multipart_uploads_under(*client_, full_key);
  for (const auto& upload : uploads) {
    if (upload.key == full_key) co_await abort_upload(*client_, full_key, upload.upload_id);
  }
  co_await remove(key);
}

}  // namespace s3up::storage::s3
