#include "storage/s3/s3_store.hpp"

#include <algorithm>
#include <array>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "storage/s3/part_pipeline.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"

namespace s3up::storage::s3 {

namespace asio = boost::asio;

namespace {

std::string_view view(const char* data, std::size_t size) { return {data, size}; }

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
  const auto tail_keys = co_await client.list_objects(tails);
  for (const auto& tail : tail_keys) co_await client.delete_object(tail);
  const auto uploads = co_await client.list_multipart_uploads(key);
  for (const auto& upload : uploads) {
    if (upload.key == key) co_await client.abort_multipart_upload(key, upload.upload_id);
  }
}

// The store state a resumable upload saves with each point: {upload id, the
// parts' ETags in order, the tail's length and key; the flexible checksum
// the multipart upload declared and each part's, if it declared one}.
struct SavedState {
  std::string upload_id;
  std::vector<CompletedPart> parts;  // parts 1..n
  std::uint64_t tail = 0;
  std::string tail_key;  // "" with a tail: <key>.tail (an upload begun before tails were named apart)
  std::optional<PartChecksum> declared;
};

// The state a point saved, or a new upload's for "".
std::optional<SavedState> parse_saved(std::string_view text) {
  SavedState saved;
  if (text.empty()) return saved;
  boost::system::error_code ec;
  const auto value = boost::json::parse(text, ec);
  const auto* o = value.if_object();
  if (ec || o == nullptr) return std::nullopt;
  const auto* id = o->if_contains("upload_id");
  const auto* etags = o->if_contains("etags");
  const auto* tail = o->if_contains("tail");
  const auto* tail_key = o->if_contains("tail_key");
  const auto* declared = o->if_contains("part_checksum");
  const auto* checksums = o->if_contains("checksums");
  if (!id || !id->is_string() || !etags || !etags->is_array() || !tail || !tail->is_number()) return std::nullopt;
  if (tail_key && !tail_key->is_string()) return std::nullopt;
  saved.upload_id = std::string(id->get_string());
  if (declared) {
    saved.declared = declared->is_string() ? part_checksum_named(declared->get_string()) : std::nullopt;
    if (!saved.declared || !is_flexible(*saved.declared)) return std::nullopt;
    if (!checksums || !checksums->is_array() || checksums->get_array().size() != etags->get_array().size()) {
      return std::nullopt;
    }
  }
  for (std::size_t i = 0; i < etags->get_array().size(); ++i) {
    const auto& e = etags->get_array()[i];
    if (!e.is_string()) return std::nullopt;
    CompletedPart part;
    part.number = static_cast<int>(i + 1);
    part.etag = e.get_string();
    if (saved.declared) {
      const auto& c = checksums->get_array()[i];
      if (!c.is_string()) return std::nullopt;
      part.checksum = c.get_string();
    }
    saved.parts.push_back(std::move(part));
  }
  saved.tail = tail->to_number<std::uint64_t>();
  if (tail_key) saved.tail_key = std::string(tail_key->get_string());
  return saved;
}

// The tail object a saved point names, "" if it has no tail.
std::string tail_key_of(const std::string& key, const SavedState& saved) {
  if (saved.tail == 0) return "";
  return saved.tail_key.empty() ? key + std::string(kTailSuffix) : saved.tail_key;
}

// What every writer of the store is made with.
struct WriterSetup {
  std::shared_ptr<Client> client;
  std::string key;  // in the bucket
  ObjectMetadata metadata;
  std::size_t part_size = 0;
  int parts_in_flight = 0;
  PartChecksum part_checksum = PartChecksum::sha256;
  std::shared_ptr<util::BufferPool> buffers;
};

// The store's one writer. Bytes fill a part buffer taken from the budget;
// a full part goes out through the PartPipeline once more bytes follow, so
// an object no larger than one part is one PutObject, and a larger one a
// multipart upload. Part n holds bytes [(n-1)·part, n·part).
//
// A resumable upload's writer (tus) also keeps checkpoints. Its parts all
// have the size fixed when the upload was created; what has not filled a
// part is the tail: kept in the part buffer, and at a checkpoint stored as a
// temporary object next to the upload (a new <key>.tail.<random> each time),
// which the next request reads back first. Every change another writer
// could see asks the write fence first.
class S3Writer final : public ObjectWriter {
 public:
  // A single-shot upload: `started` hears of the multipart upload's id
  // before its first part is sent.
  S3Writer(WriterSetup setup, StoreUploadStarted started)
      : setup_(std::move(setup)), started_(std::move(started)), part_digest_(setup_.part_checksum) {}

  // A resumable upload at a saved point, `hash` the whole file's up to it.
  // Its parts are checked as its multipart upload declared, if it has one.
  S3Writer(WriterSetup setup, SavedState saved, util::ResumableSha256 hash, std::uint64_t offset, WriteFence* fence)
      : setup_(adopt_checksum(std::move(setup), saved)),
        checkpoints_(true),
        fence_(fence),
        part_digest_(setup_.part_checksum),
        upload_id_(std::move(saved.upload_id)),
        parts_(std::move(saved.parts)),
        hash_(std::move(hash)),
        offset_(offset),
        opened_at_(offset),
        live_tail_(tail_key_of(setup_.key, saved)) {}

  ~S3Writer() override {
    // A single-shot upload dropped unfinished (a bug path or a cancelled
    // connection): aborted in the background once its parts in flight are
    // done, so no multipart upload is left behind. A resumable one stays
    // for the next request.
    if (finished_ || checkpoints_ || upload_id_.empty()) return;
    if (!pipeline_) pipeline_.emplace(setup_.client, setup_.key, upload_id_, setup_.parts_in_flight);
    pipeline_->abandon();
  }

  asio::awaitable<void> write(std::span<const char> data) override {
    while (!data.empty()) {
      const auto space = co_await room();
      const std::size_t n = std::min(data.size(), space.size());
      std::memcpy(space.data(), data.data(), n);
      co_await filled(n);
      data = data.subspan(n);
    }
  }

  asio::awaitable<std::span<char>> room() override {
    if (buffer_ && filled_ == setup_.part_size) co_await seal_part();  // only once more bytes exist: see commit()
    if (!buffer_) buffer_ = co_await setup_.buffers->acquire(setup_.part_size);
    co_return std::span<char>(buffer_.data() + filled_, setup_.part_size - filled_);
  }

  asio::awaitable<void> filled(std::size_t n) override {
    // Both hashes as the bytes arrive (the receive left them in cache), so
    // a sealed part can go out at once instead of waiting to be hashed.
    hash_.update(view(buffer_.data() + filled_, n));
    part_digest_.update(view(buffer_.data() + filled_, n));
    filled_ += n;
    offset_ += n;
    co_return;
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
    finished_ = true;
    if (checkpoints_) {
      // The object is whole: what fails now is clean-up, the janitor's.
      try {
        co_await sweep_resumable(*setup_.client, setup_.key);
      } catch (const std::exception& e) {
        spdlog::warn("s3 {}: removing what other writers left failed ({}); the janitor will", setup_.key, e.what());
        committed.leftovers = true;
      }
    }
    co_return committed;
  }

  asio::awaitable<void> abort() override {
    if (finished_) co_return;
    finished_ = true;
    buffer_.reset();
    if (pipeline_) co_await pipeline_->quiesce();
    if (!upload_id_.empty()) {
      co_await setup_.client->abort_multipart_upload(setup_.key, upload_id_);
    } else if (create_sent_) {
      // CreateMultipartUpload failed with its outcome unknown (its answer
      // lost, or a retry after one): the store may hold uploads of this key
      // that nobody knows the id of. The key is this upload's alone, so
      // every upload under it is ours to abort. (If the store cannot be
      // reached, the row is failed with leftovers and the janitor does the
      // same once it can.)
      const auto uploads = co_await setup_.client->list_multipart_uploads(setup_.key);
      for (const auto& upload : uploads) {
        if (upload.key == setup_.key) co_await setup_.client->abort_multipart_upload(setup_.key, upload.upload_id);
      }
    }
    // A commit whose answers were all lost may have stored the object anyway.
    // The key is this upload's alone, so removing it is safe.
    if (commit_sent_) co_await setup_.client->delete_object(setup_.key);
  }

  // Checkpoints (a resumable upload's writer).

  asio::awaitable<ResumePoint> checkpoint() override {
    if (!checkpoints_) co_return co_await ObjectWriter::checkpoint();
    if (buffer_ && filled_ == setup_.part_size) co_await seal_part();
    if (pipeline_) {
      co_await pipeline_->drain();
      pipeline_->take_stored(parts_);
    }
    std::string tail_key;
    if (filled_ > 0) tail_key = co_await put_tail();
    moved_ = false;
    co_return point(offset_, hash_.save(), filled_, tail_key);
  }

  std::optional<ResumePoint> settled() override {
    if (!checkpoints_) return std::nullopt;
    if (moved_ && !pipeline_ && offset_ == opened_at_) {
      moved_ = false;
      return point(offset_, hash_.save(), filled_, live_tail_);
    }
    if (!pipeline_) return std::nullopt;
    const std::size_t before = parts_.size();
    pipeline_->take_stored(parts_);
    if (parts_.size() == before) return std::nullopt;
    // The tail object, if any, is older than these parts: the point does not need it.
    const auto boundary = boundaries_.extract(static_cast<int>(parts_.size()));
    boundaries_.erase(boundaries_.begin(), boundaries_.lower_bound(static_cast<int>(parts_.size())));
    return point(boundary.mapped().first, boundary.mapped().second, 0, "");
  }

  asio::awaitable<std::string> head(std::size_t n) override {
    if (!checkpoints_) co_return co_await ObjectWriter::head(n);
    // Within the first part the bytes are all in the buffer (restored from the tail).
    if (offset_ != filled_) {  // the buffer does not start at the upload's first byte
      throw Error(Failure::internal, "the head of an upload is only kept within its first part");
    }
    co_return std::string(buffer_ ? buffer_.data() : "", std::min<std::size_t>(n, filled_));
  }

  asio::awaitable<void> quiesce() noexcept override {
    if (pipeline_) co_await pipeline_->quiesce();
  }

  // The tail the database held before is no longer read by anyone.
  asio::awaitable<void> recorded(const ResumePoint& at) override {
    const auto saved = parse_saved(at.store_state);
    const std::string now_live = saved ? tail_key_of(setup_.key, *saved) : "";
    if (!live_tail_.empty() && live_tail_ != now_live) {
      try {
        co_await setup_.client->delete_object(live_tail_);
      } catch (const std::exception& e) {
        spdlog::warn("s3 {}: removing an old tail object failed ({}); the commit sweeps it", setup_.key, e.what());
      }
    }
    live_tail_ = now_live;
  }

  // A tail this writer stored after another writer took the upload (its
  // fence checked before, the store answered after) would outlive that
  // writer's commit, which swept the tails it could see.
  asio::awaitable<void> unrecorded(const ResumePoint& point) noexcept override {
    const auto saved = parse_saved(point.store_state);
    const std::string tail = saved ? tail_key_of(setup_.key, *saved) : "";
    if (tail.empty() || tail == live_tail_) co_return;
    try {
      co_await setup_.client->delete_object(tail);
    } catch (const std::exception& e) {
      spdlog::warn("s3 {}: removing a tail object no one will read failed ({})", setup_.key, e.what());
    }
  }

  // Reads the saved tail (`tail` bytes) back into the part buffer.
  asio::awaitable<void> restore_tail(std::uint64_t tail) {
    if (tail == 0) co_return;
    buffer_ = co_await setup_.buffers->acquire(setup_.part_size);
    try {
      auto response = co_await setup_.client->get_object(live_tail_, 0, tail - 1);
      while (response && filled_ < tail) {
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
    if (parts_.empty()) {
      try {
        co_await setup_.client->abort_multipart_upload(setup_.key, old_upload);
      } catch (const Error& e) {
        spdlog::warn("s3 {}: aborting the upload a lost writer had failed ({}); the commit sweeps it", setup_.key,
                     e.what());
      }
      co_return;
    }
    co_await publish_recorded_parts(old_upload);
    co_await start_multipart();
    const auto part = setup_.part_size;
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      const int number = static_cast<int>(i + 1);
      parts_[i] = co_await setup_.client->upload_part_copy(setup_.key, upload_id_, number, setup_.key, i * part,
                                                           (i + 1) * part - 1);
    }
    spdlog::info("s3 {}: taken over at {} bytes; {} parts copied into upload {}", setup_.key, offset_, parts_.size(),
                 upload_id_);
  }

 private:
  // Completes the old writer's upload so that the object's first bytes are
  // the recorded parts. The old writer's own parts after them are listed
  // too: radosgw completes an upload only with every part it holds (AWS
  // would take the recorded ones alone); they land past what is copied. An
  // upload that is already complete (an earlier takeover, or the old writer
  // itself) has the recorded parts first all the same.
  asio::awaitable<void> publish_recorded_parts(const std::string& old_upload) {
    const std::uint64_t recorded = parts_.size() * setup_.part_size;
    constexpr int kTries = 4;  // the old writer may add a part between listing and completing
    for (int i = 0;; ++i) {
      const auto held = co_await setup_.client->list_parts(setup_.key, old_upload);
      if (!held) break;  // no such upload: completed already
      auto parts = parts_;
      for (const auto& part : *held) {
        if (part.number > static_cast<int>(parts_.size())) parts.push_back(part);
      }
      try {
        co_await setup_.client->complete_multipart_upload(setup_.key, old_upload, parts, setup_.part_checksum);
        co_return;
      } catch (const Error&) {
        if (i + 1 == kTries) throw;
      }
    }
    const auto stored = co_await setup_.client->head_object(setup_.key);
    if (!stored || stored->size < recorded) throw Error(Failure::not_found, "the upload's data is gone");
  }

  // A resumed upload's parts are checked as its multipart upload declared:
  // a flexible checksum it declared, else (one begun under sha256 or md5,
  // which declare nothing) not a flexible one, which it cannot take now.
  static WriterSetup adopt_checksum(WriterSetup setup, const SavedState& saved) {
    if (saved.upload_id.empty()) return setup;
    if (saved.declared) {
      setup.part_checksum = *saved.declared;
    } else if (is_flexible(setup.part_checksum)) {
      setup.part_checksum = PartChecksum::sha256;
    }
    return setup;
  }

  ResumePoint point(std::uint64_t offset, std::string hash_state, std::uint64_t tail,
                    const std::string& tail_key) const {
    boost::json::array etags;
    for (const auto& p : parts_) etags.emplace_back(p.etag);
    boost::json::object state{{"upload_id", upload_id_}, {"etags", std::move(etags)}, {"tail", tail}};
    if (tail > 0) state["tail_key"] = tail_key;
    if (!upload_id_.empty() && is_flexible(setup_.part_checksum)) {
      boost::json::array checksums;
      for (const auto& p : parts_) checksums.emplace_back(p.checksum);
      state["part_checksum"] = spec_of(setup_.part_checksum).name;
      state["checksums"] = std::move(checksums);
    }
    return ResumePoint{offset, boost::json::serialize(state), std::move(hash_state), setup_.part_size};
  }

  asio::awaitable<void> start_multipart() {
    create_sent_ = true;
    auto headers = object_headers(setup_.metadata);
    for (auto& h : declare_checksum(setup_.part_checksum)) headers.push_back(std::move(h));
    upload_id_ = co_await setup_.client->create_multipart_upload(setup_.key, headers);
    // Recorded before any part is sent: a crash from here on leaves an id
    // the janitor can abort. (If recording fails, the writer's abort runs.)
    if (started_) co_await started_(upload_id_);
  }

  asio::awaitable<void> seal_part() {
    co_await check_fence();
    if (upload_id_.empty()) co_await start_multipart();
    if (!pipeline_) pipeline_.emplace(setup_.client, setup_.key, upload_id_, setup_.parts_in_flight);
    pipeline_->take_stored(parts_);
    const auto number = static_cast<int>((offset_ - filled_) / setup_.part_size) + 1;
    if (number > static_cast<int>(kMaxParts)) throw Error(Failure::too_large, "more than 10,000 parts");
    // Where this part ends, and the whole-file hash there: the point to
    // report once it and every part before it are stored.
    if (checkpoints_) boundaries_[number] = {offset_, hash_.save()};
    const std::size_t size = filled_;
    filled_ = 0;
    co_await pipeline_->send(number, std::move(buffer_), size, part_digest_);
  }

  asio::awaitable<CommittedObject> complete_parts() {
    const auto started = std::chrono::steady_clock::now();
    if (filled_ > 0) co_await seal_part();  // the last part may be smaller than the others
    if (pipeline_) {
      co_await pipeline_->drain();
      pipeline_->take_stored(parts_);
    }
    const auto parts_done = std::chrono::steady_clock::now();
    commit_sent_ = true;
    const auto etag =
        co_await setup_.client->complete_multipart_upload(setup_.key, upload_id_, parts_, setup_.part_checksum);
    spdlog::debug(
        "s3 {}: {} parts; last parts took {} ms, CompleteMultipartUpload {} ms", setup_.key, parts_.size(),
        std::chrono::duration_cast<std::chrono::milliseconds>(parts_done - started).count(),
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - parts_done).count());
    co_return CommittedObject{offset_, util::to_hex(hash_.digest()), etag};
  }

  // The store refused a part or the completion: when an earlier request's
  // CompleteMultipartUpload landed and only its answer was lost, the store
  // knows no such upload and the object is there, whole. (Its key is this
  // upload's alone.) Otherwise `refused` stands.
  asio::awaitable<CommittedObject> completed_earlier(std::exception_ptr refused) {
    co_await quiesce();  // parts still in flight land first
    const auto stored = co_await setup_.client->head_object(setup_.key);
    if (!stored || stored->size != offset_) std::rethrow_exception(refused);
    spdlog::info("s3 {}: an earlier request completed it; its answer was lost", setup_.key);
    co_return CommittedObject{offset_, util::to_hex(hash_.digest()), stored->etag};
  }

  // Stores the bytes that do not fill a part under a new name; the name.
  asio::awaitable<std::string> put_tail() {
    co_await check_fence();
    const std::string sha = util::sha256_hex(view(buffer_.data(), filled_));
    const std::string key = new_tail_key(setup_.key);
    const std::vector<Header> no_headers;
    co_await setup_.client->put_object(key, no_headers, std::span<const char>(buffer_.data(), filled_), sha);
    co_return key;
  }

  // The whole object is no larger than one part: one PutObject, whose
  // payload hash is the object's.
  asio::awaitable<CommittedObject> put_whole() {
    const char* data = buffer_ ? buffer_.data() : "";
    const std::string sha = util::to_hex(hash_.digest());
    commit_sent_ = true;
    const auto etag = co_await setup_.client->put_object(setup_.key, object_headers(setup_.metadata),
                                                         std::span<const char>(data, filled_), sha);
    buffer_.reset();
    co_return CommittedObject{offset_, sha, etag};
  }

  asio::awaitable<void> check_fence() {
    if (fence_) co_await fence_->check();
  }

  WriterSetup setup_;
  bool checkpoints_ = false;  // a resumable upload's writer
  StoreUploadStarted started_;
  WriteFence* fence_ = nullptr;
  PartDigest part_digest_;
  std::string upload_id_;                 // the multipart upload, once there is one
  bool create_sent_ = false;              // CreateMultipartUpload was sent (whether or not its answer came)
  std::vector<CompletedPart> parts_;      // parts 1..n stored, in order
  std::optional<PartPipeline> pipeline_;  // once this writer sent a part
  std::map<int, std::pair<std::uint64_t, std::string>> boundaries_;  // part -> (its end offset, hash state there)
  util::ResumableSha256 hash_;
  util::BufferPool::Buffer buffer_;
  std::size_t filled_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t opened_at_ = 0;
  std::string live_tail_;     // the tail object the database's point names ("" if none)
  bool moved_ = false;        // the recorded parts are in an upload of our own, not yet recorded
  bool finished_ = false;     // committed or aborted
  bool commit_sent_ = false;  // PutObject or CompleteMultipartUpload went out
};

}  // namespace

std::optional<PartChecksum> choose_part_checksum(std::string_view setting, std::string_view endpoint) {
  // auto: a flexible checksum where the bytes travel under TLS or to AWS,
  // which checks it; over plain HTTP to a store that may ignore the
  // x-amz-checksum-* headers (radosgw before Squid does), the signed SHA-256
  // that every S3 store verifies.
  if (setting == "auto") return endpoint.starts_with("http://") ? PartChecksum::sha256 : PartChecksum::crc32c;
  return part_checksum_named(setting);
}

std::size_t choose_part_size(std::size_t configured, std::optional<std::uint64_t> size_hint) {
  std::size_t part = std::max(configured, kMinPartSize);
  if (size_hint && *size_hint / part >= kMaxParts) {
    constexpr std::uint64_t MiB = 1024 * 1024;
    const std::uint64_t needed = (*size_hint + kMaxParts - 1) / kMaxParts;
    part = static_cast<std::size_t>((needed + MiB - 1) / MiB * MiB);
  }
  return std::min(part, kMaxPartSize);
}

S3Store::S3Store(asio::any_io_executor executor, S3StoreOptions options,
                 std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<util::BufferPool> buffers,
                 std::shared_ptr<util::BufferPool> download_buffers)
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
                     options_.prefix, util::redact_url_userinfo(client_->options().endpoint),
                     client_->path_style() ? "path" : "virtual-hosted", spec_of(options_.part_checksum).label,
                     client_->credentials_source());
}

asio::awaitable<std::unique_ptr<ObjectWriter>> S3Store::open_writer(const std::string& key,
                                                                    const ObjectMetadata& metadata,
                                                                    const StoreUploadStarted& started) {
  if (!is_valid_key(key)) throw Error(Failure::internal, "invalid object key");
  const std::size_t part = choose_part_size(options_.part_size, metadata.size_hint);
  if (part > buffers_->budget()) throw Error(Failure::internal, "the buffer budget is smaller than one part");
  WriterSetup setup{client_, bucket_key(key), metadata, part, options_.parts_in_flight, options_.part_checksum,
                    buffers_};
  co_return std::make_unique<S3Writer>(std::move(setup), started);
}

asio::awaitable<std::optional<ObjectInfo>> S3Store::stat(const std::string& key) {
  co_return co_await client_->head_object(bucket_key(key));
}

asio::awaitable<void> S3Store::remove(const std::string& key) {
  const std::string full_key = bucket_key(key);
  co_await client_->delete_object(full_key);
}

std::uint64_t S3Store::part_size_for(std::optional<std::uint64_t> length) const {
  return choose_part_size(options_.part_size, length);
}

asio::awaitable<std::unique_ptr<ObjectWriter>> S3Store::open_resumable(const std::string& key,
                                                                       const ObjectMetadata& metadata,
                                                                       const ResumePoint& from,
                                                                       const WriterLease& writer_lease) {
  auto saved = parse_saved(from.store_state);
  auto hash = from.hash_state.empty() ? std::optional(util::ResumableSha256())
                                      : util::ResumableSha256::restore(from.hash_state);
  if (!saved || !hash || hash->bytes_hashed() != from.offset || from.part_size < kMinPartSize ||
      from.part_size > kMaxPartSize || saved->tail >= from.part_size ||
      saved->parts.size() * from.part_size + saved->tail != from.offset) {
    throw Error(Failure::internal, "resumable upload state does not match its offset");
  }
  const auto tail = saved->tail;
  WriterSetup setup{
      client_, bucket_key(key), metadata, from.part_size, options_.parts_in_flight, options_.part_checksum, buffers_};
  auto writer = std::make_unique<S3Writer>(std::move(setup), std::move(*saved), std::move(*hash), from.offset,
                                           writer_lease.fence);
  co_await writer->restore_tail(tail);
  if (writer_lease.handover == Handover::takeover) co_await writer->move_to_own_upload();
  co_return writer;
}

asio::awaitable<void> S3Store::discard_resumable(const std::string& key, const ResumePoint& last) {
  const auto saved = parse_saved(last.store_state);
  // (Arguments named, not temporaries: see ObjectStore on GCC 12.)
  const std::string upload_id = saved ? saved->upload_id : "";
  co_await discard_unfinished(key, upload_id);
}

namespace {

// One ranged GetObject, its body handed on as it arrives. A body that breaks
// off (a connection reset, a store that stops sending) is read on from the
// byte it reached with another ranged GetObject, a few times at most: the
// key names one immutable object, so the bytes are the same. Two pieces: while
// the caller sends one, the next is read from the store (so the two sockets
// work at once, not in turn), and no more: the store is read only as fast as
// the client takes the bytes, and memory stays at two pieces per download,
// taken from the download budget (pieces()) before the store is asked.
class S3Reader final : public ObjectReader {
 public:
  // `response` answers a GetObject of `length` bytes from `offset` (or,
  // from a store that ignored the Range, of the whole object: `skip` bytes
  // first); `client` asks again for the rest if its body breaks off.
  S3Reader(std::shared_ptr<Client> client, std::unique_ptr<ResponseStream> response, std::string key,
           std::uint64_t offset, std::uint64_t skip, std::uint64_t length, util::BufferPool::Buffer memory)
      : shared_(std::make_shared<Shared>(std::move(client), std::move(response), std::move(key), offset, skip, length,
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
  using Filled =
      asio::experimental::concurrent_channel<void(boost::system::error_code, std::exception_ptr, std::size_t)>;

  // Times a broken-off body is read on from where it stopped.
  static constexpr int kResumes = 3;

  struct Shared {
    Shared(std::shared_ptr<Client> c, std::unique_ptr<ResponseStream> r, std::string k, std::uint64_t offset,
           std::uint64_t s, std::uint64_t l, util::BufferPool::Buffer m)
        : client(std::move(c)),
          response(std::move(r)),
          key(std::move(k)),
          last(offset + l - 1),
          skip(s),
          left(l),
          memory(std::move(m)),
          filled(client->executor(), 1) {
      const std::size_t half = memory.capacity() / 2;
      for (std::size_t i = 0; i < pieces.size(); ++i) pieces[i] = std::span<char>(memory.data() + i * half, half);
    }
    std::shared_ptr<Client> client;
    std::unique_ptr<ResponseStream> response;
    std::string key;
    std::uint64_t last;        // the range's last byte
    std::uint64_t skip, left;  // bytes still to skip (a store that ignored Range), still to hand out
    int resumes_left = kResumes;
    util::BufferPool::Buffer memory;  // both pieces
    std::array<std::span<char>, 2> pieces;
    std::array<std::size_t, 2> offsets{};  // where a piece's bytes start (after skipped ones)
    Filled filled;
  };

  // Fills pieces[index] as far as the store gives bytes, then reports.
  void start_reading(int index) {
    reading_ = true;
    auto sh = shared_;
    asio::co_spawn(
        sh->filled.get_executor(),
        [sh, index]() -> asio::awaitable<void> {
          std::exception_ptr failure;
          std::size_t size = 0;
          try {
            size = co_await fill(*sh, index);
          } catch (const ConnectionFailure& e) {
            spdlog::error("s3 GetObject {}: the body broke off: {}", sh->key, e.what());
            failure =
                std::make_exception_ptr(Error(Failure::unavailable, "the object store stopped sending the object"));
          } catch (...) {
            failure = std::current_exception();
          }
          sh->filled.try_send(boost::system::error_code{}, failure, size);
        },
        asio::detached);
  }

  static asio::awaitable<std::size_t> fill(Shared& sh, int index) {
    auto& piece = sh.pieces[index];
    std::size_t start = 0, size = 0;
    while (sh.left > 0 && start + size < piece.size()) {
      std::size_t n = 0;
      std::exception_ptr broke;
      try {
        n = co_await sh.response->read_some(std::span<char>(piece.data() + start + size, piece.size() - start - size));
      } catch (const ConnectionFailure&) {
        // Only a ranged answer can be asked for again from where it stopped.
        if (sh.resumes_left-- == 0 || sh.skip > 0) throw;
        broke = std::current_exception();
      }
      if (broke) {
        co_await read_on(sh, broke);
        continue;
      }
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

  // A new GetObject for the bytes not yet read, after `broke`.
  static asio::awaitable<void> read_on(Shared& sh, std::exception_ptr broke) {
    const std::uint64_t from = sh.last + 1 - sh.left;
    try {
      std::rethrow_exception(broke);
    } catch (const std::exception& e) {
      spdlog::warn("s3 GetObject {}: the body broke off ({}); reading on from byte {}", sh.key, e.what(), from);
    }
    sh.response.reset();
    auto again = co_await sh.client->get_object(sh.key, from, sh.last);
    if (!again || again->status() != 206) std::rethrow_exception(broke);  // gone, or no longer ranged
    sh.response = std::move(again);
  }

  std::shared_ptr<Shared> shared_;
  int current_ = 0;       // the piece the next read_some hands out
  bool reading_ = false;  // a fill is in flight
};

}  // namespace

asio::awaitable<std::unique_ptr<ObjectReader>> S3Store::open_reader(const std::string& key, std::uint64_t offset,
                                                                    std::uint64_t length) {
  const std::string full_key = bucket_key(key);
  if (length == 0) {
    // A range cannot be empty; an empty read only needs the object to exist.
    const auto info = co_await stat(key);
    if (!info) throw Error(Failure::not_found, "no such object");
    co_return std::make_unique<S3Reader>(client_, nullptr, full_key, 0, 0, 0, util::BufferPool::Buffer());
  }
  auto memory = co_await S3Reader::pieces(*download_buffers_);
  auto response = co_await client_->get_object(full_key, offset, offset + length - 1);
  if (!response) {  // past the end
    co_return std::make_unique<S3Reader>(client_, nullptr, full_key, 0, 0, 0, util::BufferPool::Buffer());
  }
  // A store that ignored the Range sends the object whole (200): skip to `offset`.
  const std::uint64_t skip = response->status() == 200 ? offset : 0;
  co_return std::make_unique<S3Reader>(client_, std::move(response), full_key, offset, skip, length, std::move(memory));
}

asio::awaitable<std::vector<std::string>> S3Store::list_keys() {
  co_return co_await client_->list_objects(options_.prefix);
}

asio::awaitable<void> S3Store::create_bucket() { co_await client_->create_bucket(); }

asio::awaitable<std::vector<MultipartUploadEntry>> S3Store::list_multipart_uploads() {
  co_return co_await client_->list_multipart_uploads(options_.prefix);
}

asio::awaitable<void> S3Store::abort_multipart_upload(const std::string& bucket_key, const std::string& upload_id) {
  co_await client_->abort_multipart_upload(bucket_key, upload_id);
}

asio::awaitable<void> S3Store::discard_unfinished(const std::string& key, const std::string& store_upload_id) {
  const std::string full_key = bucket_key(key);
  if (!store_upload_id.empty()) co_await client_->abort_multipart_upload(full_key, store_upload_id);
  // A crash right after CreateMultipartUpload leaves an upload whose id never
  // reached the record: the store's list of the key's uploads has it; and a
  // resumable upload may have tail objects.
  co_await sweep_resumable(*client_, full_key);
  co_await remove(key);
}

asio::awaitable<void> S3Store::discard_beside(const std::string& key) {
  const std::string full_key = bucket_key(key);
  co_await sweep_resumable(*client_, full_key);
}

}  // namespace s3up::storage::s3
