#include "upload/engine.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "metrics/metrics.hpp"
#include "upload/file_json.hpp"
#include "upload/sniff.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"
#include "util/time.hpp"

namespace s3up::upload {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// Quota is reserved ahead in steps of this much, so a long upload of unknown
// length asks the database now and then, not per chunk.
constexpr std::uint64_t kReserveStep = 8 * 1024 * 1024;
// A resumable upload on local disk is made durable (fsync) at least this
// often within one long request, so a request cut off keeps most of what it
// brought. (S3 makes every completed part a durable point by itself.)
constexpr std::uint64_t kCheckpointBytes = 64 * 1024 * 1024;
// A writer stops this long before its lease runs out by its own clock, so a
// clock a little ahead elsewhere, or a write already under way, cannot overlap
// the next writer.
constexpr auto kLeaseMargin = std::chrono::milliseconds(1500);
// At most this much is read into a writer's room at a time, so the bytes
// are still in the cache when they are hashed.
constexpr std::size_t kInPlaceRead = 256 * 1024;

db::Micros micros(std::chrono::milliseconds d) { return static_cast<db::Micros>(d.count()) * 1000; }

storage::ResumePoint point_of(const db::ResumableState& state) {
  return {state.offset, state.store_state, state.hash_state, state.part_size};
}

storage::ResumableStore& resumable_store(const Services& services) {
  auto* store = services.store.resumable();
  if (store == nullptr) throw Error(Failure::not_supported, "this object store cannot take resumable uploads");
  return *store;
}

Error no_such_upload() { return Error(Failure::not_found, "no such upload"); }

// A new upload's record, before its row exists: its id, key and name (400
// for a name the rules refuse), and the type the client declared, if it is
// one.
db::Upload new_record(const auth::Principal& owner, const std::string& file_name, std::string_view declared_type,
                      std::string id) {
  if (!is_acceptable_file_name(file_name)) throw invalid_file_name();
  db::Upload record;
  record.id = std::move(id);
  record.user_id = owner.user_id;
  record.file_name = file_name;
  record.storage_key = storage_key_of(record.user_id, record.id);
  record.created_at = util::now_micros();
  record.status = db::UploadStatus::pending;
  record.content_type = normalize_media_type(declared_type).value_or("");
  if (owner.link) record.upload_link_id = owner.link->id;
  return record;
}

// The progress row of upload `id` before any byte: offset 0, the hash at its
// start, parts sized for its length (a deferred length may grow to the
// largest upload, and its parts must fit that in 10,000).
db::ResumableState initial_state(const Services& services, const ResumableSettings& settings, const std::string& id,
                                 std::optional<std::uint64_t> length, const std::string& metadata, db::Micros now) {
  db::ResumableState state;
  state.upload_id = id;
  state.upload_length = length;
  state.metadata = metadata;
  state.part_size = resumable_store(services).part_size_for(length.value_or(services.limits.max_upload_bytes));
  state.hash_state = util::ResumableSha256().save();
  state.expires_at = now + micros(settings.expiry);
  return state;
}

// This request's place among the owner's uploads in progress here: taken
// before the upload's row exists, so the janitor never mistakes it for a
// dead one; 429 when the owner has too many.
// How uploads end, for the metrics: the kind is how it came (form, put,
// tus), the outcome complete, refused (a rule or the hook said no) or
// failed (anything else that ended it: a client gone from a single-shot
// upload, a store or database failure, a resumable upload's expiry).
metrics::Family<metrics::Counter>& uploads_ended() {
  static auto& family = metrics::registry().counter(
      "s3uploader_uploads_total",
      "Uploads that ended, by kind (form, put, tus) and outcome (complete, refused, failed). A tus upload ends "
      "when its last byte is stored, when it is refused, or when it expires.",
      {"kind", "outcome"});
  return family;
}

void count_upload(std::string_view kind, std::string_view outcome) {
  uploads_ended().with({std::string(kind), std::string(outcome)}).add();
}

// Whether `failure` is a refusal (a rule or the hook said no) rather than a failure.
bool refused(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    switch (e.failure()) {
      case Failure::invalid_file_name:
      case Failure::too_large:
      case Failure::quota_exceeded:
      case Failure::type_refused:
      case Failure::busy:
      case Failure::length_required:
      case Failure::link_full:
      case Failure::link_gone:
      case Failure::refused:
      case Failure::unprocessable:
      case Failure::check_unavailable: return true;
      default: return false;
    }
  } catch (...) {
    return false;
  }
}

void count_failed_upload(std::string_view kind, const std::exception_ptr& failure) {
  count_upload(kind, refused(failure) ? "refused" : "failed");
}

// Adds the bytes a request brought (its upload's offset moved from `from`)
// to s3uploader_upload_bytes_total{store} when the request's reading ends,
// however it ends.
class BytesCounted {
 public:
  BytesCounted(std::string_view store, const std::uint64_t& offset) : store_(store), offset_(offset), from_(offset) {}
  ~BytesCounted() {
    static auto& family = metrics::registry().counter(
        "s3uploader_upload_bytes_total", "Bytes of uploads received and handed to the store, by store.", {"store"});
    if (offset_ > from_) family.with({std::string(store_)}).add(static_cast<double>(offset_ - from_));
  }
  BytesCounted(const BytesCounted&) = delete;
  BytesCounted& operator=(const BytesCounted&) = delete;

 private:
  std::string_view store_;
  const std::uint64_t& offset_;
  std::uint64_t from_;
};

class LiveSlot {
 public:
  LiveSlot(const Services& services, const std::string& id, std::int64_t user_id) : services_(services), id_(id) {
    if (!services.live->add(id, user_id, services.limits.max_concurrent_uploads)) {
      throw too_many_uploads(services.limits);
    }
  }
  ~LiveSlot() { services_.live->remove(id_); }
  LiveSlot(const LiveSlot&) = delete;
  LiveSlot& operator=(const LiveSlot&) = delete;

 private:
  const Services& services_;
  std::string id_;
};

// An upload's share of its owner's quota, reserved in the database as the
// upload grows: ahead in steps, so a long upload of unknown length asks now
// and then, not per chunk. Completing or failing the upload settles it.
class QuotaReservation {
 public:
  QuotaReservation(const Services& services, const std::string& upload_id, std::int64_t user_id, std::int64_t quota,
                   std::uint64_t reserved)
      : services_(services), upload_id_(upload_id), user_id_(user_id), quota_(quota), reserved_(reserved) {}
  bool limited() const { return quota_ != db::kNoQuota; }
  std::uint64_t reserved() const { return reserved_; }
  std::int64_t quota() const { return quota_; }
  // Counts `bytes` reserved elsewhere (in the trip that wrote the row).
  void add(std::uint64_t bytes) { reserved_ += bytes; }

  // Exactly `bytes` more; false, and nothing reserved, if they do not fit.
  asio::awaitable<bool> try_reserve(std::uint64_t bytes) {
    const auto ask = static_cast<std::int64_t>(bytes);
    const bool granted = co_await util::run_blocking(
        services_.blocking, [&] { return services_.records.reserve_quota(upload_id_, user_id_, ask, quota_); });
    if (granted) reserved_ += bytes;
    co_return granted;
  }

  // At least `total` in all: a step ahead if that fits, else exactly;
  // quota_exceeded if not even that does.
  asio::awaitable<void> cover(std::uint64_t total) {
    if (total <= reserved_) co_return;
    const std::uint64_t needed = total - reserved_;
    const std::uint64_t ahead = std::max(needed, kReserveStep);
    if (co_await try_reserve(ahead)) co_return;
    if (ahead > needed && co_await try_reserve(needed)) co_return;
    throw quota_exceeded();
  }

 private:
  const Services& services_;
  const std::string& upload_id_;
  std::int64_t user_id_;
  std::int64_t quota_;
  std::uint64_t reserved_;
};

enum class Stage { created, receiving, committed, complete, failed, completion_unknown };

// One upload as one request carries it on, from its row (or from where the
// last request left it) to complete. A resumable upload's Upload holds its
// write lease and is its writer's fence: the store asks it before each
// change another writer could see.
class Upload final : public storage::WriteFence {
 public:
  // A single-shot upload.
  Upload(const Services& services, db::Upload& record, const auth::Principal& owner)
      : services_(services),
        record_(record),
        link_(owner.link),
        quota_(services, record.id, record.user_id, effective_quota(owner, services.limits), 0) {}

  // A resumable upload at the point `state` records.
  Upload(const Services& services, const ResumableSettings& settings, db::Upload& record, db::ResumableState& state,
         const auth::Principal& caller)
      : services_(services),
        settings_(&settings),
        record_(record),
        link_(caller.link),
        state_(&state),
        quota_(services, record.id, record.user_id, effective_quota(caller, services.limits), state.reserved_bytes),
        stage_(Stage::receiving),
        offset_(state.offset),
        length_(state.upload_length) {}

  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;

  bool resumable() const { return state_ != nullptr; }

  // created → receiving, for a new upload: the pending row (before any byte
  // is stored, so a crash leaves a trace the janitor finds), with
  // `resumable`'s progress row when given, and the quota for `most` bytes:
  // refused at once (quota_exceeded) when they are `exact` and do not fit;
  // otherwise bytes are reserved as they arrive, and only they decide.
  asio::awaitable<void> create_row(const db::ResumableState* resumable, std::optional<std::uint64_t> most, bool exact) {
    const bool ask = most && *most > 0 && quota_.limited();
    const auto bytes = static_cast<std::int64_t>(most.value_or(0));
    const std::int64_t quota = quota_.quota();
    // Through a link with a byte limit the length must be known, and it is
    // what the upload holds of the link.
    if (link_ && link_->max_bytes && (!most || !exact)) {
      throw Error(Failure::length_required, "an upload through this link must say its length first");
    }
    enum class Row { fits, too_big, link_refused };
    std::optional<bool> granted;
    const Row row = co_await util::run_blocking(services_.blocking, [&] {
      if (link_) {
        if (!services_.records.create_pending_through_link(record_, bytes, util::now_micros())) {
          return Row::link_refused;
        }
      } else if (resumable) {
        services_.records.create_pending_resumable(record_, *resumable);
      } else {
        services_.records.create_pending(record_);
      }
      if (ask) {
        granted = services_.records.reserve_quota(record_.id, record_.user_id, bytes, quota);
        if (!*granted && exact) {
          services_.records.mark_failed(record_.id, util::now_micros());
          return Row::too_big;
        }
      }
      if (resumable && link_) services_.records.add_resumable(*resumable);
      return Row::fits;
    });
    if (row == Row::link_refused) {
      stage_ = Stage::failed;  // no row was made
      co_await refuse_through_link(bytes);
    }
    stage_ = Stage::receiving;  // the row exists; the writer opens next
    if (row == Row::too_big) {
      stage_ = Stage::failed;
      throw quota_exceeded();
    }
    if (granted.value_or(false)) quota_.add(*most);
    spdlog::debug("upload {} started by user {}: key {}", record_.id, record_.user_id, record_.storage_key);
  }

  // Why the link had no room for this upload, as the client should hear it.
  asio::awaitable<void> refuse_through_link(std::int64_t bytes) {
    const auto link = co_await util::run_blocking(services_.blocking,
                                                  [&] { return services_.records.get_upload_link(link_->id); });
    if (!link || link->revoked_at) throw Error(Failure::link_gone, "this upload link was revoked");
    if (link->expires_at <= util::now_micros()) throw Error(Failure::link_gone, "this upload link has expired");
    if (link->max_files && link->files_used >= *link->max_files) {
      throw Error(Failure::link_full, "this upload link takes no more files");
    }
    throw Error(Failure::too_large, fmt::format("the file ({} bytes) would pass this upload link's limit of {} bytes "
                                                "({} left)",
                                                bytes, link->max_bytes.value_or(0),
                                                link->max_bytes.value_or(0) - link->bytes_used));
  }

  // The store's writer of a single-shot upload. The store's own id of the
  // upload (an S3 multipart upload) goes on the row the moment it exists,
  // so a clean-up after a crash can abort it.
  asio::awaitable<void> open_single(std::optional<std::uint64_t> size_hint) {
    const storage::ObjectMetadata metadata{record_.content_type, record_.file_name, size_hint};
    const storage::StoreUploadStarted record_store_upload_id = [this](const std::string& store_upload_id) {
      return util::run_blocking(services_.blocking, [this, &store_upload_id] {
        services_.records.set_store_upload_id(record_.id, store_upload_id);
      });
    };
    writer_ = co_await services_.store.open_writer(record_.storage_key, metadata, record_store_upload_id);
  }

  // The store's writer of a resumable upload, at its last durable point;
  // under the lease (take_lease first).
  asio::awaitable<void> open_resumable() {
    const storage::ResumePoint from = point_of(*state_);
    last_saved_ = from;
    const storage::ObjectMetadata metadata{record_.content_type, record_.file_name, state_->upload_length};
    const storage::WriterLease lease{handover_, writer_number_, this};
    writer_ = co_await resumable_store(services_).open_resumable(record_.storage_key, metadata, from, lease);
    offset_ = state_->offset;
    if (offset_ > 0 && offset_ < kSniffBytes) head_ = co_await writer_->head(offset_);
    // After a takeover the store may have moved the durable bytes out of
    // the old writer's reach (the same offset, kept elsewhere): record it at
    // once, so a crash now does not make the next writer move them again.
    if (auto point = writer_->settled()) {
      co_await keep_lease();
      co_await save(*point);
    }
  }

  // A length the client deferred, given now.
  asio::awaitable<void> set_length(std::uint64_t length) {
    if (length < state_->offset) throw Error(Failure::bad_request, "Upload-Length is below the upload's offset");
    if (length > services_.limits.max_upload_bytes) throw file_too_large(services_.limits);
    if (quota_.limited() && length > quota_.reserved()) {
      const bool granted = co_await quota_.try_reserve(length - quota_.reserved());
      if (!granted) throw quota_exceeded();
    }
    state_->upload_length = length;
    length_ = length;
    length_changed_ = true;
  }

  // Reads `source` to its end into the store, every chunk through the rules
  // (receive()). A resumable upload records the durable points the store
  // reaches on the way; with a checksum the chunk counts whole or not at
  // all, so nothing is recorded before its end. When the source fails (the
  // client went away or stalled) a resumable upload keeps what arrived.
  asio::awaitable<void> receive_all(util::ByteSource& source, const std::optional<ChunkChecksum>& checksum) {
    std::unique_ptr<util::NamedHash> chunk_hash;
    if (checksum) {
      chunk_hash = util::NamedHash::make(checksum->algorithm);
      if (!chunk_hash) throw Error(Failure::bad_request, "unsupported checksum algorithm");
    }
    const BytesCounted counted(services_.store.kind(), offset_);
    std::exception_ptr source_failure;
    // In place when both ends can: from the socket straight into the
    // store's part buffer, with no receive buffer and no copy between.
    bool in_place = source.left_to_read_in_place().has_value();
    for (;;) {
      std::span<char> space;
      if (in_place) {
        if (*source.left_to_read_in_place() == 0) break;
        space = co_await writer_->room();
        if (space.empty()) in_place = false;
      }
      std::span<const char> chunk;
      try {
        if (in_place) {
          chunk = space.first(co_await source.read_into(space.first(std::min(space.size(), kInPlaceRead))));
        } else {
          chunk = co_await source.read_some();
        }
      } catch (...) {
        source_failure = std::current_exception();
      }
      if (source_failure || chunk.empty()) break;
      if (chunk_hash) chunk_hash->update(chunk);
      co_await receive(chunk, in_place ? Placed::already : Placed::not_yet);
      if (resumable() && !chunk_hash) co_await save_what_settled();
    }
    if (source_failure) {
      // Keep what it brought, then say why (unless the lease may have run
      // out meanwhile: then another writer may have the upload, and these
      // bytes are not ours to keep).
      if (resumable() && !chunk_hash && offset_ > state_->offset && Clock::now() < lease_usable_until_) {
        try {
          const auto point = co_await writer_->checkpoint();
          co_await save_made(point, Lease::release);
        } catch (const std::exception& e) {
          spdlog::info("upload {}: keeping the bytes of a broken request failed: {}", record_.id, e.what());
        }
      }
      std::rethrow_exception(source_failure);
    }
    if (chunk_hash && chunk_hash->finish() != checksum->digest) {
      throw Error(Failure::checksum_mismatch, "the chunk's " + checksum->algorithm +
                                                  " does not match Upload-Checksum; the offset stays at " +
                                                  std::to_string(state_->offset));
    }
  }

  // A resumable upload's request is over: what it wrote made durable and
  // recorded, and the upload completed if its last byte is in. The last
  // save gives the lease up in the same write, unless the upload is to be
  // completed under it.
  asio::awaitable<void> end_request() {
    const bool last_byte = length_ && offset_ == *length_;
    const Lease after = last_byte ? Lease::keep : Lease::release;
    if (offset_ > state_->offset) {
      const auto point = co_await writer_->checkpoint();
      co_await save_made(point, after);
    } else if (length_changed_) {
      co_await save(last_saved_, after);
    }
    if (last_byte) co_await complete();
  }

  // receiving → committed → complete: publishes the object (unless an
  // earlier request did: published()) and marks the row complete.
  asio::awaitable<void> complete() {
    const bool have_head = head_.size() == std::min<std::uint64_t>(offset_, kSniffBytes);
    if (types_restricted() && !type_checked_ && have_head) co_await check_type();
    if (resumable()) co_await keep_lease();
    record_.file_size = offset_;

    // What the trip to the pool found; the stage is set from it back here.
    enum class Marked { yes, cancelled, unknown };
    struct Outcome {
      Marked marked = Marked::unknown;
      std::exception_ptr database_error;
    };
    // If the database fails while marking the row we cannot know whether it
    // became complete (the commit may have landed before the connection
    // broke), so the object must stay: the janitor (or a resumable upload's
    // next HEAD) then finds the row complete (all is well) or still pending.
    auto leftovers = db::StoreLeftovers::none;  // beside the object, for the janitor
    const auto mark_complete = [&]() -> Outcome {
      try {
        return {services_.records.mark_complete(record_, leftovers) ? Marked::yes : Marked::cancelled, nullptr};
      } catch (...) {
        return {Marked::unknown, std::current_exception()};
      }
    };
    // Whether the bytes decide the record's type (see settle()); when an
    // earlier request brought the head, it is read back once the object is
    // published.
    const bool sniff_needed = types_restricted() ? !type_checked_ : is_unnamed(record_.content_type);
    Outcome outcome;
    std::exception_ptr failure;
    try {
      auto* blocking = published_ || (sniff_needed && !have_head) ? nullptr : writer_->blocking_commit();
      if (blocking != nullptr) {
        // The commit runs on the pool (local disk): the sniffing and the
        // database write join it there, in one trip.
        co_await blocking->prepare();
        outcome = co_await util::run_blocking(services_.blocking, [&] {
          const auto object = blocking->commit_here();
          stage_ = Stage::committed;
          settle(object, head_);
          return mark_complete();
        });
      } else {
        // (No co_await inside ?: : GCC 12 destroys its temporaries twice.)
        storage::CommittedObject object;
        if (published_) {
          object = *published_;
        } else {
          object = co_await writer_->commit();
        }
        stage_ = Stage::committed;
        if (object.leftovers) leftovers = db::StoreLeftovers::remain;
        std::string head = head_;
        if (sniff_needed && !have_head) {
          head = co_await storage::read_range(services_.store, record_.storage_key, 0, kSniffBytes);
        }
        outcome = co_await util::run_blocking(services_.blocking, [&] {
          settle(object, head);
          return mark_complete();
        });
      }
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) std::rethrow_exception(failure);
    if (outcome.marked == Marked::unknown) {
      stage_ = Stage::completion_unknown;
      std::rethrow_exception(outcome.database_error);
    }
    if (outcome.marked == Marked::cancelled) {
      // Terminated, expired or deleted meanwhile: fail() removes the object.
      if (resumable()) throw no_such_upload();
      throw Error(Failure::conflict, "the upload was cancelled while it was being stored");
    }
    stage_ = Stage::complete;
    record_.status = db::UploadStatus::complete;
    spdlog::debug("upload {} complete: {} bytes, {}", record_.id, record_.file_size, record_.content_type);
  }

  // Undoes what the stage has stored; never throws (it runs on error paths
  // and logs its own failures). A resumable upload keeps what it recorded
  // for its next request: only an object it published but could not record
  // goes.
  asio::awaitable<void> fail() noexcept {
    const Stage was = stage_;
    switch (was) {
      case Stage::complete:
      case Stage::failed: co_return;
      case Stage::completion_unknown:
        spdlog::warn("upload {}: the database failed while marking it complete; its object {} stays for the janitor",
                     record_.id, record_.storage_key);
        co_return;
      case Stage::created:
      case Stage::receiving:
      case Stage::committed: break;
    }
    stage_ = Stage::failed;
    auto leftovers = db::StoreLeftovers::none;
    try {
      // receiving: the writer's partial object; committed: the object itself.
      if (was == Stage::committed) {
        co_await services_.store.remove(record_.storage_key);
      } else if (writer_ && !resumable()) {
        co_await writer_->abort();
      }
    } catch (const std::exception& e) {
      leftovers = db::StoreLeftovers::remain;
      spdlog::error("upload {}: removing what it left in the store failed ({}); the janitor will retry", record_.id,
                    e.what());
    }
    if (resumable()) co_return;
    writer_.reset();
    if (was != Stage::created) {  // the row exists
      try {
        co_await util::run_blocking(services_.blocking,
                                    [&] { services_.records.mark_failed(record_.id, util::now_micros(), leftovers); });
      } catch (const std::exception& e) {
        spdlog::error("upload {}: marking the row failed did not work: {}", record_.id, e.what());
      }
    }
  }

  // Every byte was stored by an earlier request whose completion failed:
  // complete it now. When that request's commit landed and only its record
  // failed (the database), the writer's data is gone (published) and the
  // object is there, whole: only the record is left to write.
  asio::awaitable<void> finish() {
    bool published = false;
    try {
      co_await open_resumable();
    } catch (const storage::Error& e) {
      if (e.failure() != storage::Failure::not_found) throw;
      published = true;
    }
    if (published) {
      auto* recovery = services_.store.recovery();
      if (recovery == nullptr) throw no_such_upload();
      const auto stored = co_await recovery->stat(record_.storage_key);
      if (!stored || stored->size != state_->offset) throw no_such_upload();
      const auto hash = util::ResumableSha256::restore(state_->hash_state);
      if (!hash) throw std::runtime_error("the upload's hash state cannot be read");
      offset_ = state_->offset;
      published_ = storage::CommittedObject{stored->size, util::to_hex(hash->digest()), stored->etag};
    }
    co_await complete();
  }

  // The write lease (resumable uploads).

  // Takes it: locked if another request holds it, and, for an append,
  // conflict if another request moved the offset since this one read it.
  // The lease's token is the row's version (every take, save and release
  // moves it on), so a request that read the upload before another one
  // wrote it can never take it from a stale state.
  asio::awaitable<void> take_lease() {
    const auto started = Clock::now();
    const db::Micros now = util::now_micros();
    const db::Micros until = now + micros(settings_->lease);
    const bool was_released = !state_->lease_expires_at;
    const bool taken = co_await util::run_blocking(services_.blocking, [&] {
      return services_.records.take_lease(state_->upload_id, state_->lease_token, now, until);
    });
    if (!taken) co_await refuse();
    ++state_->lease_token;
    state_->lease_expires_at = until;
    // Only the first take says who wrote before: a writer taking its own
    // lapsed lease back (keep_lease) carries on in its own place.
    if (!taken_before_) {
      handover_ = was_released ? storage::Handover::clean : storage::Handover::takeover;
      writer_number_ = state_->lease_token;
      taken_before_ = true;
    }
    leased_ = true;
    lease_renewed(started);
  }

  // The offset the client said it writes at (an append; not a HEAD or a
  // termination): a take that fails because the offset moved is a conflict.
  void expect_offset(std::uint64_t offset) { client_offset_ = offset; }

  // Gives the lease up, so the next request need not wait for it to lapse;
  // first the store's writes in flight land, so none lands after the next
  // writer opened the upload.
  asio::awaitable<void> release_lease() noexcept {
    if (writer_) co_await writer_->quiesce();
    writer_.reset();
    if (!leased_) co_return;
    leased_ = false;
    // A complete upload is never written again (a request for it is
    // answered before any lease is asked for): giving the lease back would
    // be a write for nobody.
    if (stage_ == Stage::complete) co_return;
    try {
      co_await util::run_blocking(services_.blocking,
                                  [&] { services_.records.release_lease(state_->upload_id, state_->lease_token); });
    } catch (const std::exception& e) {
      spdlog::warn("upload {}: releasing its write lease failed ({}); it lapses by itself", state_->upload_id,
                   e.what());
    }
  }

 private:
  static bool is_unnamed(const std::string& type) { return type.empty() || type == "application/octet-stream"; }

  // The types this upload may be: the service's allowed_types, and its
  // link's, if it comes through one with types of its own.
  bool types_restricted() const {
    return !services_.limits.allowed_types.empty() || (link_ && !link_->allowed_types.empty());
  }
  bool type_accepted(std::string_view type) const {
    return type_allowed(type, services_.limits.allowed_types) && (!link_ || type_allowed(type, link_->allowed_types));
  }

  // The rules every chunk passes before it is stored: the upload's own
  // length, the size limit, the owner's quota, and (once the first bytes
  // are in) the allowed types. A resumable upload's lease is renewed, or
  // taken back, before the write.
  enum class Placed { not_yet, already };  // whether `chunk` is in the writer's room already
  asio::awaitable<void> receive(std::span<const char> chunk, Placed placed = Placed::not_yet) {
    const auto& limits = services_.limits;
    const std::uint64_t end = offset_ + chunk.size();
    if (length_ && end > *length_) throw Error(Failure::too_large, "the chunk goes past the upload's Upload-Length");
    if (end > limits.max_upload_bytes) throw file_too_large(limits);
    // Without a quota there is nothing to reserve, and no coroutine call per chunk.
    if (quota_.limited() && end > quota_.reserved()) co_await quota_.cover(end);
    if (offset_ < kSniffBytes) {
      head_.append(chunk.data(), std::min<std::size_t>(chunk.size(), kSniffBytes - head_.size()));
      // With allowed types, refuse as soon as the first bytes tell, before
      // they are stored, not after the whole file arrived.
      if (types_restricted() && head_.size() == kSniffBytes) co_await check_type();
    }
    if (resumable()) co_await keep_lease();
    if (placed == Placed::already) {
      co_await writer_->filled(chunk.size());
    } else {
      co_await writer_->write(chunk);
    }
    offset_ = end;
  }

  // With allowed types the type is what the bytes say (libmagic), whatever
  // the client declared or the name suggests; that type is stored and served.
  asio::awaitable<void> check_type() {
    const auto sniffed = co_await util::run_blocking(services_.blocking, [&] { return sniff_mime_type(head_); });
    if (!type_accepted(sniffed)) throw type_not_accepted(sniffed);
    record_.content_type = sniffed;
    type_checked_ = true;
  }

  // The record's last fields before it is marked complete: its size and
  // hash as stored, and its type when the bytes decide it (a type the
  // client did not name is sniffed for the record; the object's own
  // Content-Type was fixed when the writer opened). On a pool thread.
  void settle(const storage::CommittedObject& committed, const std::string& head) {
    if (committed.size != offset_) throw std::runtime_error("the object store stored a different size");
    const bool restricted = types_restricted();
    if (restricted && !type_checked_) {
      record_.content_type = sniff_mime_type(head, SniffPurpose::decide);
      if (!type_accepted(record_.content_type)) throw type_not_accepted(record_.content_type);
    } else if (!restricted && is_unnamed(record_.content_type)) {
      record_.content_type = sniff_mime_type(head, SniffPurpose::label);
    }
    record_.sha256 = committed.sha256;
    record_.completed_at = util::now_micros();
  }

  // Records the furthest durable point the store reached by itself (S3
  // parts), or makes one now and then (local disk).
  asio::awaitable<void> save_what_settled() {
    if (auto point = writer_->settled()) {
      co_await save(*point);
    } else if (state_->part_size == 0 && offset_ - last_saved_.offset >= kCheckpointBytes) {
      const auto made = co_await writer_->checkpoint();
      co_await save_made(made, Lease::keep);
    }
  }

  // Records a durable point under the lease, which it extends; locked if
  // the lease was lost (another request took the upload over). Each save
  // moves the lease's token on (see take_lease).
  enum class Lease { keep, release };
  asio::awaitable<void> save(const storage::ResumePoint& point, Lease after = Lease::keep) {
    const auto started = Clock::now();
    const db::Micros now = util::now_micros();
    db::ResumableState next = *state_;
    next.offset = point.offset;
    next.store_state = point.store_state;
    next.hash_state = point.hash_state;
    next.expires_at = now + micros(settings_->expiry);
    // Released: free at once (no expiry), which tells the next writer this
    // one is done with the store and it may carry on in the same place.
    next.lease_expires_at = after == Lease::keep ? std::optional(now + micros(settings_->lease)) : std::nullopt;
    const bool saved =
        co_await util::run_blocking(services_.blocking, [&] { return services_.records.save_progress(next); });
    if (!saved) {
      leased_ = false;
      throw Error(Failure::locked, "another request took this upload over");
    }
    ++next.lease_token;
    *state_ = next;
    last_saved_ = point;
    if (after == Lease::release) {
      leased_ = false;
    } else {
      lease_renewed(started);
    }
    if (writer_) co_await writer_->recorded(point);
  }

  // Records a point checkpoint() made (see save()). Refused, because
  // another writer has the upload by now, the point is this writer's alone
  // to clean up (ObjectWriter::unrecorded).
  asio::awaitable<void> save_made(const storage::ResumePoint& point, Lease after) {
    bool refused = false;
    try {
      co_await save(point, after);
    } catch (const Error& e) {
      if (e.failure() != Failure::locked) throw;
      refused = true;
    }
    if (refused) {
      co_await writer_->unrecorded(point);
      throw Error(Failure::locked, "another request took this upload over");
    }
  }

  // Before each write: renew the lease when it is due, and never write once
  // it may have run out without renewing it first. A lease that lapsed is
  // still this request's until another takes it (every take moves the
  // token on), so a store slower than the lease (a part that takes longer
  // to send) delays the writer but never locks it out of its own upload.
  asio::awaitable<void> keep_lease() {
    if (renewal_due()) co_await save(last_saved_);
  }

  bool renewal_due() const {
    const auto now = Clock::now();
    return now >= renew_at_ || now >= lease_usable_until_;
  }

  void lease_renewed(Clock::time_point at) {
    lease_usable_until_ = at + settings_->lease - kLeaseMargin;
    renew_at_ = at + settings_->lease / 3;
  }

  // The fence: the database asked whether the lease is still this writer's
  // (locked if it is lost), so the writer's next change to the store is
  // still ours to make. Asking is a read: every take and save moves the
  // token on, so an unchanged token means nobody took the upload. The lease
  // is renewed (a write) only when it is due, as between any two writes.
  asio::awaitable<void> check() override {
    if (!leased_) throw Error(Failure::locked, "another request took this upload over");
    if (renewal_due()) {
      co_await save(last_saved_);
      co_return;
    }
    const bool held = co_await util::run_blocking(
        services_.blocking, [&] { return services_.records.holds_lease(state_->upload_id, state_->lease_token); });
    if (!held) {
      leased_ = false;
      throw Error(Failure::locked, "another request took this upload over");
    }
  }

  // A take that failed: the upload moved on (conflict for an append whose
  // offset is no longer the upload's) or another request holds it (locked).
  asio::awaitable<void> refuse() {
    if (client_offset_ && !taken_before_) {
      const auto now = co_await util::run_blocking(services_.blocking,
                                                   [&] { return services_.records.get_resumable(state_->upload_id); });
      if (now && now->offset != *client_offset_) {
        throw Error(Failure::conflict, "Upload-Offset " + std::to_string(*client_offset_) +
                                           " is not the upload's offset " + std::to_string(now->offset));
      }
    }
    if (taken_before_) throw Error(Failure::locked, "another request took this upload over");
    throw Error(Failure::locked, "another request is writing this upload; try again shortly");
  }

  const Services& services_;
  const ResumableSettings* settings_ = nullptr;  // resumable uploads
  db::Upload& record_;
  std::optional<auth::LinkGrant> link_;  // the upload link it comes through
  db::ResumableState* state_ = nullptr;  // a resumable upload's progress row, as this request holds it
  QuotaReservation quota_;
  Stage stage_ = Stage::created;
  std::unique_ptr<storage::ObjectWriter> writer_;
  std::optional<storage::CommittedObject> published_;  // by an earlier request (finish())
  std::uint64_t offset_ = 0;                           // written so far (not yet all durable)
  std::optional<std::uint64_t> length_;                // the upload's declared length (tus)
  std::string head_;                                   // the upload's first bytes, up to kSniffBytes
  bool type_checked_ = false;                          // the sniffed type passed allowed_types
  bool length_changed_ = false;
  // The lease.
  storage::ResumePoint last_saved_;
  bool leased_ = false;
  bool taken_before_ = false;
  storage::Handover handover_ = storage::Handover::clean;
  std::int64_t writer_number_ = 0;  // the lease token this request took
  std::optional<std::uint64_t> client_offset_;
  Clock::time_point lease_usable_until_{};
  Clock::time_point renew_at_{};
};

// Runs `steps` on `upload`; on any failure logs it, lets the upload undo
// what it stored, and rethrows. (A coroutine cannot co_await in a catch
// block: the exception is kept.) `steps` must capture by reference only:
// see util/blocking.hpp.
template <class Steps>
asio::awaitable<void> undo_on_failure(Upload& upload, const std::string& id, std::string_view kind, Steps steps) {
  std::exception_ptr failure;
  try {
    co_await steps();
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    log_upload_failure(id, failure);
    count_failed_upload(kind, failure);
    co_await upload.fail();
    std::rethrow_exception(failure);
  }
}

// Runs `steps` on a resumable `upload` under its write lease (locked while
// another request holds it); a failure is undone (Upload::fail) before the
// lease is given up, and returned. `steps` must capture by reference only.
template <class Steps>
asio::awaitable<std::exception_ptr> under_lease(Upload& upload, Steps steps) {
  co_await upload.take_lease();
  std::exception_ptr failure;
  try {
    co_await steps();
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) co_await upload.fail();
  co_await upload.release_lease();
  co_return failure;
}

}  // namespace

bool LiveUploads::add(const std::string& id, std::int64_t user_id, unsigned max_per_user) {
  std::lock_guard lock(mutex_);
  if (const auto it = uploads_.find(id); it != uploads_.end()) {
    ++it->second.requests;
    return true;
  }
  auto& count = per_user_[user_id];
  if (max_per_user > 0 && count >= max_per_user) {
    if (count == 0) per_user_.erase(user_id);
    return false;
  }
  ++count;
  uploads_.emplace(id, Entry{user_id, 1});
  return true;
}

void LiveUploads::remove(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = uploads_.find(id);
  if (it == uploads_.end() || --it->second.requests > 0) return;
  if (--per_user_[it->second.user_id] == 0) per_user_.erase(it->second.user_id);
  uploads_.erase(it);
}

std::size_t LiveUploads::size() const {
  std::lock_guard lock(mutex_);
  return uploads_.size();
}

bool LiveUploads::contains(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return uploads_.contains(id);
}

std::string storage_key_of(std::int64_t user_id, const std::string& upload_id) {
  return "u/" + std::to_string(user_id) + "/" + upload_id;
}

std::int64_t effective_quota(const auth::Principal& owner, const Limits& limits) {
  if (owner.quota_bytes) return *owner.quota_bytes;
  if (limits.default_quota) return static_cast<std::int64_t>(*limits.default_quota);
  return db::kNoQuota;
}

Uploads::Uploads(const Services& services, ResumableSettings settings) : services_(services), settings_(settings) {}

asio::awaitable<void> Uploads::ask_gate(const auth::Principal& owner, std::string& file_name,
                                        std::string_view declared_type, std::optional<std::uint64_t> length,
                                        std::string* metadata, const Requester& requester) {
  if (!services_.gate) co_return;
  Requester as = requester;
  if (owner.link) as.source = "link";
  const std::string_view sent_metadata = metadata ? std::string_view(*metadata) : std::string_view();
  const UploadProposal proposal{owner, file_name, declared_type, length, sent_metadata, as};
  UploadVerdict verdict;
  std::exception_ptr refusal;
  try {
    verdict = co_await services_.gate->decide(proposal);
  } catch (...) {
    refusal = std::current_exception();
  }
  if (refusal) {
    count_failed_upload(requester.source, refusal);
    std::rethrow_exception(refusal);
  }
  if (verdict.file_name) file_name = std::move(*verdict.file_name);
  if (metadata && !verdict.metadata.empty()) *metadata = with_metadata(*metadata, verdict.metadata);
}

asio::awaitable<db::Upload> Uploads::store(const auth::Principal& owner, const UploadPlan& plan,
                                           util::ByteSource& source) {
  // Without a pre-upload hook, nothing to ask and no copy of the plan to make.
  if (!services_.gate) co_return co_await store_whole(owner, plan, source, nullptr);
  UploadPlan asked = plan;
  co_await ask_gate(owner, asked.file_name, asked.declared_type, asked.exact_length, nullptr, asked.requester);
  co_return co_await store_whole(owner, asked, source, nullptr);
}

asio::awaitable<db::Upload> Uploads::store_whole(const auth::Principal& owner, const UploadPlan& plan,
                                                 util::ByteSource& source, db::ResumableState* resumable) {
  std::string id = resumable ? resumable->upload_id : util::uuid_v7();
  const std::string_view kind = plan.requester.source;
  db::Upload record;
  std::optional<LiveSlot> slot;
  try {
    record = new_record(owner, plan.file_name, plan.declared_type, std::move(id));
    slot.emplace(services_, record.id, record.user_id);
  } catch (...) {
    log_upload_failure(record.id.empty() ? "-" : record.id, std::current_exception());
    count_failed_upload(kind, std::current_exception());
    throw;
  }
  Upload upload(services_, record, owner);
  co_await undo_on_failure(upload, record.id, kind, [&]() -> asio::awaitable<void> {
    // A known file length is reserved before a byte is stored (413 at once
    // if it does not fit). An upper bound is tried too, so concurrent
    // uploads do not starve each other bit by bit.
    const auto most = plan.exact_length ? plan.exact_length : plan.at_most;
    co_await upload.create_row(resumable, most, plan.exact_length.has_value());
    co_await upload.open_single(plan.size_hint);
    const std::optional<ChunkChecksum> no_checksum;
    co_await upload.receive_all(source, no_checksum);
    co_await upload.complete();
  });
  count_upload(kind, "complete");
  co_return record;
}

asio::awaitable<ResumableUpload> Uploads::create(const auth::Principal& owner, const ResumablePlan& plan) {
  const auto& limits = services_.limits;
  if (plan.length && *plan.length > limits.max_upload_bytes) {
    count_upload("tus", "refused");
    throw file_too_large(limits);
  }
  ResumableUpload created;
  const std::string id = util::uuid_v7();
  // A tus client may name no file: the upload is named after its id.
  std::string file_name = plan.file_name.empty() ? id : plan.file_name;
  std::string metadata = plan.metadata;
  co_await ask_gate(owner, file_name, plan.declared_type, plan.length, &metadata, plan.requester);
  created.upload = new_record(owner, file_name, plan.declared_type, id);
  created.state = initial_state(services_, settings_, id, plan.length, metadata, created.upload.created_at);
  {
    // The row, its progress row and its known length's quota in one trip.
    Upload upload(services_, settings_, created.upload, created.state, owner);
    std::exception_ptr failure;
    try {
      co_await upload.create_row(&created.state, plan.length, /*exact=*/true);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      count_failed_upload("tus", failure);
      std::rethrow_exception(failure);
    }
  }
  if (plan.length) created.state.reserved_bytes = *plan.length;
  if (plan.length == std::optional<std::uint64_t>(0)) {
    // Nothing to wait for: an empty file is complete at once.
    Upload upload(services_, settings_, created.upload, created.state, owner);
    const auto failure = co_await under_lease(upload, [&]() -> asio::awaitable<void> {
      co_await upload.open_resumable();
      co_await upload.end_request();
    });
    if (failure) std::rethrow_exception(failure);
    count_upload("tus", "complete");
  }
  co_return created;
}

asio::awaitable<ResumableUpload> Uploads::create_whole(const auth::Principal& owner, const ResumablePlan& plan,
                                                       util::ByteSource& source) {
  const std::string id = util::uuid_v7();
  std::string file_name = plan.file_name.empty() ? id : plan.file_name;
  std::string metadata = plan.metadata;
  co_await ask_gate(owner, file_name, plan.declared_type, plan.length, &metadata, plan.requester);
  db::ResumableState state = initial_state(services_, settings_, id, plan.length, metadata, util::now_micros());
  const UploadPlan whole{.file_name = std::move(file_name),
                         .declared_type = plan.declared_type,
                         .exact_length = plan.length,
                         .size_hint = plan.length,
                         .requester = plan.requester};
  auto stored = co_await store_whole(owner, whole, source, &state);
  state.offset = stored.file_size;
  co_return ResumableUpload{std::move(stored), std::move(state)};
}

asio::awaitable<ResumableUpload> Uploads::find(const auth::Principal& caller, const std::string& id) {
  if (!util::is_uuid(id)) throw no_such_upload();
  std::optional<ResumableUpload> found = co_await util::run_blocking(services_.blocking, [&] {
    std::optional<ResumableUpload> out;
    auto upload = services_.records.get_upload(id);
    if (!upload || upload->user_id != caller.user_id) return out;
    // Through an upload link, only what came through that link.
    if (caller.link && upload->upload_link_id != caller.link->id) return out;
    auto state = services_.records.get_resumable(id);
    if (!state) return out;
    out = ResumableUpload{std::move(*upload), std::move(*state)};
    return out;
  });
  if (!found) throw no_such_upload();
  const auto status = found->upload.status;
  if (status == db::UploadStatus::failed || status == db::UploadStatus::deleting) throw no_such_upload();
  if (status == db::UploadStatus::pending && found->state.expires_at <= util::now_micros()) throw no_such_upload();
  if (status == db::UploadStatus::complete) found->state.offset = found->upload.file_size;
  co_return std::move(*found);
}

asio::awaitable<ResumableUpload> Uploads::status(const auth::Principal& caller, const std::string& id) {
  auto found = co_await find(caller, id);
  const auto& state = found.state;
  if (found.complete() || !state.upload_length || state.offset != *state.upload_length) co_return found;
  LiveSlot slot(services_, found.upload.id, found.upload.user_id);
  Upload upload(services_, settings_, found.upload, found.state, caller);
  // locked while a request writes (or completes) it
  const auto failure = co_await under_lease(upload, [&]() -> asio::awaitable<void> { co_await upload.finish(); });
  if (failure) co_await fail(caller, found.upload.id, failure);
  if (found.complete()) count_upload("tus", "complete");
  co_return found;
}

asio::awaitable<ResumableUpload> Uploads::append(const auth::Principal& caller, const std::string& id,
                                                 std::uint64_t offset, std::optional<std::uint64_t> length,
                                                 const std::optional<ChunkChecksum>& checksum,
                                                 util::ByteSource& source) {
  auto found = co_await find(caller, id);
  auto& state = found.state;
  if (offset != state.offset) {
    throw Error(Failure::conflict, "Upload-Offset " + std::to_string(offset) + " is not the upload's offset " +
                                       std::to_string(state.offset));
  }
  if (length && state.upload_length && *length != *state.upload_length) {
    throw Error(Failure::bad_request, "Upload-Length cannot change once it is set");
  }
  if (found.complete()) {
    // The whole file is here already: only an empty chunk fits.
    const auto chunk = co_await source.read_some();
    if (!chunk.empty()) throw Error(Failure::too_large, "the upload is complete; the chunk goes past its length");
    co_return found;
  }
  LiveSlot slot(services_, found.upload.id, found.upload.user_id);
  Upload upload(services_, settings_, found.upload, found.state, caller);
  upload.expect_offset(offset);
  const auto failure = co_await under_lease(upload, [&]() -> asio::awaitable<void> {
    if (length && !state.upload_length) co_await upload.set_length(*length);
    co_await upload.open_resumable();
    co_await upload.receive_all(source, checksum);
    co_await upload.end_request();
  });
  if (failure) co_await fail(caller, found.upload.id, failure);
  if (found.complete()) count_upload("tus", "complete");
  co_return found;
}

// The bytes decide the type, and the first bytes are stored: a type refused
// now is refused for good, so the upload ends (as a termination would) rather
// than wait for its expiry, and no HEAD reports it whole.
asio::awaitable<void> Uploads::fail(const auth::Principal& caller, const std::string& id, std::exception_ptr failure) {
  log_upload_failure(id, failure);
  bool refused_for_good = false;
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    refused_for_good = e.failure() == Failure::type_refused;
  } catch (...) {
  }
  if (refused_for_good) {
    count_upload("tus", "refused");
    try {
      co_await terminate(caller, id);
    } catch (const std::exception& e) {
      spdlog::warn("upload {}: ending it after its type was refused failed ({}); it expires instead", id, e.what());
    }
  }
  std::rethrow_exception(failure);
}

asio::awaitable<void> Uploads::discard(const db::Upload& upload, const db::ResumableState& state) {
  const storage::ResumePoint last = point_of(state);
  co_await resumable_store(services_).discard_resumable(upload.storage_key, last);
}

asio::awaitable<void> Uploads::terminate(const auth::Principal& caller, const std::string& id) {
  auto found = co_await find(caller, id);
  if (found.complete()) {
    co_await remove_object_then_row(services_, found.upload);
    co_return;
  }
  Upload upload(services_, settings_, found.upload, found.state, caller);
  co_await upload.take_lease();  // locked while a request writes it
  co_await discard(found.upload, found.state);
  co_await util::run_blocking(services_.blocking, [&] {
    services_.records.mark_failed(found.upload.id, util::now_micros());  // gives its quota back
    services_.records.delete_upload(found.upload.id);
  });
}

asio::awaitable<std::size_t> Uploads::end_expired(std::size_t limit) {
  const db::Micros now = util::now_micros();
  const auto expired = co_await util::run_blocking(
      services_.blocking, [&] { return services_.records.expired_resumable(now, static_cast<std::int64_t>(limit)); });
  std::size_t ended = 0;
  for (const auto& upload : expired) {
    try {
      auto state =
          co_await util::run_blocking(services_.blocking, [&] { return services_.records.get_resumable(upload.id); });
      if (!state) continue;
      // The lease keeps a request that starts now from writing meanwhile.
      const db::Micros until = now + micros(settings_.lease);
      const bool taken = co_await util::run_blocking(
          services_.blocking, [&] { return services_.records.take_lease(upload.id, state->lease_token, now, until); });
      if (!taken) continue;
      co_await discard(upload, *state);
      const bool failed = co_await util::run_blocking(services_.blocking,
                                                      [&] { return services_.records.mark_failed(upload.id, now); });
      if (failed) {
        ++ended;
        count_upload("tus", "failed");
      }
      spdlog::info("janitor: resumable upload {} expired unfinished at {} bytes; its data is removed", upload.id,
                   state->offset);
    } catch (const std::exception& e) {
      spdlog::error("janitor: ending expired upload {} failed: {}", upload.id, e.what());
    }
  }
  co_return ended;
}

asio::awaitable<bool> remove_object_then_row(const Services& services, const db::Upload& upload) {
  // A failed upload's object went when it failed; nothing to remove.
  if (upload.status != db::UploadStatus::failed) co_await services.store.remove(upload.storage_key);
  co_return co_await util::run_blocking(services.blocking, [&] { return services.records.delete_upload(upload.id); });
}

void log_upload_failure(std::string_view id, const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const util::RequestFailure& e) {
    spdlog::info("upload {} failed: {}", id, e.what());
  } catch (const std::exception& e) {
    spdlog::error("upload {} failed: {}", id, e.what());
  }
}

}  // namespace s3up::upload
