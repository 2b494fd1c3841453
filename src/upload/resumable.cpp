#include "upload/resumable.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "upload/sniff.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/ids_time.hpp"

namespace s3up::upload {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// A local upload is made durable (fsync) at least this often within one
// long PATCH, so a request cut off keeps most of what it brought. (S3 makes
// every completed part a durable point by itself.)
constexpr std::uint64_t kCheckpointBytes = 64 * 1024 * 1024;
// A writer stops this long before its lease runs out by its own clock, so a
// clock a little ahead elsewhere, or a write already under way, cannot overlap
// the next writer.
constexpr auto kLeaseMargin = std::chrono::milliseconds(1500);

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

// A tus client may name no file: the upload is named after its id.
std::string file_name_of(const ResumablePlan& plan, const std::string& id) {
  return plan.file_name.empty() ? id : plan.file_name;
}

// The progress row of upload `id` before any byte: offset 0, the hash at its
// start, parts sized for its length (a deferred length may grow to the
// largest upload, and its parts must fit that in 10,000).
db::ResumableState initial_state(const Services& services, const ResumableSettings& settings, const std::string& id,
                                 const ResumablePlan& plan, db::Micros now) {
  db::ResumableState state;
  state.upload_id = id;
  state.upload_length = plan.length;
  state.metadata = plan.metadata;
  state.part_size = resumable_store(services).part_size_for(plan.length.value_or(services.limits.max_upload_bytes));
  state.hash_state = util::ResumableSha256().save();
  state.expires_at = now + micros(settings.expiry);
  return state;
}

// This request's place among the caller's uploads in progress here.
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

}  // namespace

// One request's append: it holds the lease, the store's writer, and what
// the chunk needs checked (size, quota, type, checksum). It is the writer's
// fence: the store asks it before each change another writer could see.
class ResumableUploads::Append final : public storage::WriteFence {
 public:
  Append(const Services& services, const ResumableSettings& settings, ResumableUpload& upload,
         const auth::Principal& caller)
      : services_(services), settings_(settings), upload_(upload), state_(upload.state),
        quota_(services, upload.state.upload_id, upload.upload.user_id, effective_quota(caller, services.limits),
               upload.state.reserved_bytes) {}

  // Takes the write lease: 423 if another request holds it, and, for an
  // append, 409 if another request moved the offset since this one read it.
  // The lease's token is the row's version (every take, save and release
  // moves it on), so a request that read the upload before another one
  // wrote it can never take it from a stale state.
  asio::awaitable<void> take_lease() {
    const auto started = Clock::now();
    const db::Micros now = util::now_micros();
    const db::Micros until = now + micros(settings_.lease);
    const bool was_released = !state_.lease_expires_at;
    const bool taken = co_await util::run_blocking(services_.blocking, [&] {
      return services_.records.take_lease(state_.upload_id, state_.lease_token, now, until);
    });
    if (!taken) co_await refuse();
    ++state_.lease_token;
    state_.lease_expires_at = until;
    // Only the first take says who wrote before: a writer taking its own
    // lapsed lease back (keep_lease) carries on in its own place.
    if (!writer_) {
      handover_ = was_released ? storage::Handover::clean : storage::Handover::takeover;
      writer_number_ = state_.lease_token;
    }
    leased_ = true;
    lease_renewed(started);
  }

  // The offset the client said it writes at (an append; not a HEAD or a
  // termination): a take that fails because the offset moved is a 409.
  void expect_offset(std::uint64_t offset) { client_offset_ = offset; }
  // Gives the lease up, so the next request need not wait for it to lapse;
  // first the store's writes in flight land, so none lands after the next
  // writer opened the upload.
  asio::awaitable<void> release() noexcept {
    if (writer_) co_await writer_->quiesce();
    writer_.reset();
    if (!leased_) co_return;
    leased_ = false;
    try {
      co_await util::run_blocking(services_.blocking,
                                  [&] { services_.records.release_lease(state_.upload_id, state_.lease_token); });
    } catch (const std::exception& e) {
      spdlog::warn("upload {}: releasing its write lease failed ({}); it lapses by itself", state_.upload_id,
                   e.what());
    }
  }

  // A length the client deferred, given now.
  asio::awaitable<void> set_length(std::uint64_t length) {
    if (length < state_.offset) throw Error(Failure::bad_request, "Upload-Length is below the upload's offset");
    if (length > services_.limits.max_upload_bytes) throw file_too_large(services_.limits);
    if (quota_.limited() && length > quota_.reserved()) {
      const bool granted = co_await quota_.try_reserve(length - quota_.reserved());
      if (!granted) throw quota_exceeded();
    }
    state_.upload_length = length;
    length_changed_ = true;
  }

  asio::awaitable<void> run(const std::optional<ChunkChecksum>& checksum, util::ByteSource& body) {
    co_await open();
    co_await record_if_moved();
    if (checksum) {
      chunk_hash_ = util::NamedHash::make(checksum->algorithm);
      if (!chunk_hash_) throw Error(Failure::bad_request, "unsupported checksum algorithm");
    }

    std::exception_ptr body_failure;
    for (;;) {
      std::span<const char> chunk;
      try {
        chunk = co_await body.read_some();
      } catch (...) {
        body_failure = std::current_exception();
      }
      if (body_failure || chunk.empty()) break;
      co_await receive(chunk);
      // Without a checksum every byte counts as it lands; with one the chunk
      // counts whole or not at all, so nothing is recorded before its end.
      if (!chunk_hash_) co_await save_what_settled();
    }
    if (body_failure) {
      // The client went away or stalled: keep what it brought, then say why
      // (unless the lease may have run out meanwhile: then another writer
      // may have the upload, and these bytes are not ours to keep).
      if (!chunk_hash_ && offset_ > state_.offset && Clock::now() < lease_usable_until_) {
        try {
          const auto point = co_await writer_->checkpoint();
          co_await save(point, Lease::release);
        } catch (const std::exception& e) {
          spdlog::info("upload {}: keeping the bytes of a broken request failed: {}", state_.upload_id, e.what());
        }
      }
      std::rethrow_exception(body_failure);
    }
    if (chunk_hash_ && chunk_hash_->finish() != checksum->digest) {
      throw Error(Failure::checksum_mismatch, "the chunk's " + checksum->algorithm +
                                                  " does not match Upload-Checksum; the offset stays at " +
                                                  std::to_string(state_.offset));
    }
    // The last save gives the lease up in the same write, unless the upload
    // is to be completed under it.
    const bool last_byte = state_.upload_length && offset_ == *state_.upload_length;
    const Lease after = last_byte ? Lease::keep : Lease::release;
    if (offset_ > state_.offset) {
      const auto point = co_await writer_->checkpoint();
      co_await save(point, after);
    } else if (length_changed_) {
      co_await save(last_saved_, after);
    }
    if (last_byte) co_await complete();
  }

  // Every byte was stored by an earlier request whose completion failed:
  // complete it now. When that request's commit landed and only its record
  // failed (the database), the writer's data is gone (published) and the
  // object is there, whole: only the record is left to write.
  asio::awaitable<void> finish() {
    bool published = false;
    try {
      co_await open();
    } catch (const storage::Error& e) {
      if (e.failure() != storage::Failure::not_found) throw;
      published = true;
    }
    if (!published) {
      co_await record_if_moved();
      co_await complete();
      co_return;
    }
    auto* recovery = services_.store.recovery();
    if (recovery == nullptr) throw no_such_upload();
    const auto stored = co_await recovery->stat(upload_.upload.storage_key);
    if (!stored || stored->size != state_.offset) throw no_such_upload();
    const auto hash = util::ResumableSha256::restore(state_.hash_state);
    if (!hash) throw std::runtime_error("the upload's hash state cannot be read");
    offset_ = state_.offset;
    published_ = storage::CommittedObject{stored->size, util::to_hex(hash->digest()), stored->etag};
    co_await complete();
  }

  // The last byte is in: publish the object (unless an earlier request did)
  // and mark the row complete.
  asio::awaitable<void> complete() {
    const auto& limits = services_.limits;
    auto& record = upload_.upload;
    const bool have_head = head_.size() == std::min<std::uint64_t>(offset_, kSniffBytes);
    if (!limits.allowed_types.empty() && !type_checked_ && have_head) co_await check_type();
    co_await keep_lease();
    storage::CommittedObject committed;
    if (published_) {
      committed = *published_;
    } else {
      committed = co_await writer_->commit();
    }
    if (committed.size != offset_) throw std::runtime_error("the object store stored a different size");
    // The stored type: what the bytes say when types are restricted or the
    // client named none. (The head is read back when an earlier request
    // brought it.)
    const bool restricted = !limits.allowed_types.empty();
    if (restricted || record.content_type.empty() || record.content_type == "application/octet-stream") {
      std::string head = head_;
      if (!have_head) head = co_await storage::read_range(services_.store, record.storage_key, 0, kSniffBytes);
      record.content_type = co_await util::run_blocking(services_.blocking, [&] {
        return sniff_mime_type(head, restricted ? SniffPurpose::decide : SniffPurpose::label);
      });
      if (restricted && !type_allowed(record.content_type, limits.allowed_types)) {
        co_await services_.store.remove(record.storage_key);
        throw type_not_accepted(record.content_type);
      }
    }
    record.file_size = offset_;
    record.sha256 = committed.sha256;
    record.completed_at = util::now_micros();
    const bool marked = co_await util::run_blocking(services_.blocking, [&] { return services_.records.mark_complete(record); });
    if (!marked) {
      co_await services_.store.remove(record.storage_key);
      throw no_such_upload();  // terminated or expired meanwhile
    }
    record.status = db::UploadStatus::complete;
    spdlog::debug("upload {} complete: {} bytes, {}", record.id, record.file_size, record.content_type);
  }

 private:
  // The store's writer, at the last durable point.
  asio::awaitable<void> open() {
    const storage::ResumePoint from = point_of(state_);
    last_saved_ = from;
    const storage::ObjectMetadata metadata{upload_.upload.content_type, upload_.upload.file_name, state_.upload_length};
    const storage::WriterLease lease{handover_, writer_number_, this};
    writer_ = co_await resumable_store(services_).open_resumable(upload_.upload.storage_key, metadata, from, lease);
    offset_ = state_.offset;
    if (offset_ > 0 && offset_ < kSniffBytes) head_ = co_await writer_->head(offset_);
  }

  // After a takeover the store may have moved the durable bytes out of the
  // old writer's reach (the same offset, kept elsewhere): record it at once,
  // so a crash now does not make the next writer move them again.
  asio::awaitable<void> record_if_moved() {
    if (auto point = writer_->settled()) {
      co_await keep_lease();
      co_await save(*point);
    }
  }

  // The fence: the lease renewed through the database (423 if it is lost),
  // so the writer's next change to the store is still ours to make.
  asio::awaitable<void> check() override {
    if (!leased_) throw Error(Failure::locked, "another request took this upload over");
    co_await save(last_saved_);
  }

  // A take that failed: the upload moved on (409 for an append whose offset
  // is no longer the upload's) or another request holds it (423).
  asio::awaitable<void> refuse() {
    if (client_offset_ && !writer_) {
      const auto now = co_await util::run_blocking(services_.blocking,
                                                   [&] { return services_.records.get_resumable(state_.upload_id); });
      if (now && now->offset != *client_offset_) {
        throw Error(Failure::conflict, "Upload-Offset " + std::to_string(*client_offset_) +
                                           " is not the upload's offset " + std::to_string(now->offset));
      }
    }
    if (writer_) throw Error(Failure::locked, "another request took this upload over");
    throw Error(Failure::locked, "another request is writing this upload; try again shortly");
  }

  asio::awaitable<void> receive(std::span<const char> chunk) {
    const auto& limits = services_.limits;
    const std::uint64_t end = offset_ + chunk.size();
    if (state_.upload_length && end > *state_.upload_length) {
      throw Error(Failure::too_large, "the chunk goes past the upload's Upload-Length");
    }
    if (end > limits.max_upload_bytes) throw file_too_large(limits);
    if (!state_.upload_length && quota_.limited() && end > quota_.reserved()) co_await quota_.cover(end);
    if (offset_ < kSniffBytes) {
      head_.append(chunk.data(), std::min<std::size_t>(chunk.size(), kSniffBytes - head_.size()));
      if (!limits.allowed_types.empty() && head_.size() == kSniffBytes) co_await check_type();
    }
    if (chunk_hash_) chunk_hash_->update(chunk);
    co_await keep_lease();
    co_await writer_->write(chunk);
    offset_ = end;
  }

  // Records the furthest durable point the store reached by itself (S3
  // parts), or makes one now and then (local disk).
  asio::awaitable<void> save_what_settled() {
    if (auto point = writer_->settled()) {
      co_await save(*point);
    } else if (state_.part_size == 0 && offset_ - last_saved_.offset >= kCheckpointBytes) {
      const auto made = co_await writer_->checkpoint();
      co_await save(made);
    }
  }

  // Records a durable point under the lease, which it extends; 423 if the
  // lease was lost (another request took the upload over). Each save moves
  // the lease's token on (see take_lease).
  enum class Lease { keep, release };
  asio::awaitable<void> save(const storage::ResumePoint& point, Lease after = Lease::keep) {
    const auto started = Clock::now();
    const db::Micros now = util::now_micros();
    db::ResumableState next = state_;
    next.offset = point.offset;
    next.store_state = point.store_state;
    next.hash_state = point.hash_state;
    next.expires_at = now + micros(settings_.expiry);
    // Released: free at once (no expiry), which tells the next writer this
    // one is done with the store and it may carry on in the same place.
    next.lease_expires_at = after == Lease::keep ? std::optional(now + micros(settings_.lease)) : std::nullopt;
    const bool saved = co_await util::run_blocking(services_.blocking,
                                                   [&] { return services_.records.save_progress(next, now); });
    if (!saved) {
      leased_ = false;
      throw Error(Failure::locked, "another request took this upload over");
    }
    ++next.lease_token;
    state_ = next;
    last_saved_ = point;
    if (after == Lease::release) {
      leased_ = false;
    } else {
      lease_renewed(started);
    }
    if (writer_) co_await writer_->recorded(point);
  }

  // Before each write: renew the lease when it is due, and never write once
  // it may have run out (then take it again if nobody else did).
  asio::awaitable<void> keep_lease() {
    const auto now = Clock::now();
    if (now >= lease_usable_until_) {
      leased_ = false;
      co_await take_lease();
    } else if (now >= renew_at_) {
      co_await save(last_saved_);
    }
  }

  void lease_renewed(Clock::time_point at) {
    lease_usable_until_ = at + settings_.lease - kLeaseMargin;
    renew_at_ = at + settings_.lease / 3;
  }

  asio::awaitable<void> check_type() {
    const auto sniffed = co_await util::run_blocking(services_.blocking, [&] { return sniff_mime_type(head_); });
    if (!type_allowed(sniffed, services_.limits.allowed_types)) throw type_not_accepted(sniffed);
    type_checked_ = true;
  }

  const Services& services_;
  const ResumableSettings& settings_;
  ResumableUpload& upload_;
  db::ResumableState& state_;
  QuotaReservation quota_;
  std::optional<storage::CommittedObject> published_;  // by an earlier request (finish())
  std::unique_ptr<storage::ObjectWriter> writer_;
  storage::ResumePoint last_saved_;
  std::uint64_t offset_ = 0;  // written by this request so far (not yet all durable)
  std::string head_;          // the upload's first bytes, up to kSniffBytes
  bool type_checked_ = false;
  bool length_changed_ = false;
  bool leased_ = false;
  storage::Handover handover_ = storage::Handover::clean;
  std::int64_t writer_number_ = 0;  // the lease token this request took
  std::optional<std::uint64_t> client_offset_;
  std::unique_ptr<util::NamedHash> chunk_hash_;
  Clock::time_point lease_usable_until_{};
  Clock::time_point renew_at_{};
};

ResumableUploads::ResumableUploads(const Services& services, ResumableSettings settings)
    : services_(services), settings_(settings) {}

asio::awaitable<ResumableUpload> ResumableUploads::create(const auth::Principal& owner, const ResumablePlan& plan) {
  const auto& limits = services_.limits;
  if (plan.length && *plan.length > limits.max_upload_bytes) throw file_too_large(limits);
  ResumableUpload created;
  auto& record = created.upload;
  record.id = util::uuid_v7();
  record.user_id = owner.user_id;
  record.file_name = file_name_of(plan, record.id);
  if (!is_acceptable_file_name(record.file_name)) throw invalid_file_name();
  record.storage_key = storage_key_of(record.user_id, record.id);
  record.created_at = util::now_micros();
  record.status = db::UploadStatus::pending;
  record.content_type = normalize_media_type(plan.declared_type).value_or("");
  created.state = initial_state(services_, settings_, record.id, plan, record.created_at);
  auto& state = created.state;
  const std::int64_t quota = effective_quota(owner, limits);
  const bool fits = co_await util::run_blocking(services_.blocking, [&] {
    services_.records.create_pending(record);
    if (plan.length && *plan.length > 0 && quota != db::kNoQuota &&
        !services_.records.reserve_quota(record.id, record.user_id, static_cast<std::int64_t>(*plan.length), quota)) {
      services_.records.mark_failed(record.id, util::now_micros());
      return false;
    }
    services_.records.add_resumable(state);
    return true;
  });
  if (!fits) throw quota_exceeded();
  if (plan.length) state.reserved_bytes = *plan.length;
  spdlog::debug("resumable upload {} created by user {}: key {}", record.id, record.user_id, record.storage_key);
  if (plan.length == std::optional<std::uint64_t>(0)) {
    // Nothing to wait for: an empty file is complete at once.
    Append append(services_, settings_, created, owner);
    co_await append.take_lease();
    std::exception_ptr failure;
    try {
      struct NoBody final : util::ByteSource {
        asio::awaitable<std::span<const char>> read_some() override { co_return std::span<const char>(); }
      } empty;
      co_await append.run(std::nullopt, empty);
    } catch (...) {
      failure = std::current_exception();
    }
    co_await append.release();
    if (failure) std::rethrow_exception(failure);
  }
  co_return created;
}

asio::awaitable<ResumableUpload> ResumableUploads::create_whole(const auth::Principal& owner,
                                                                const ResumablePlan& plan, util::ByteSource& body) {
  const std::string id = util::uuid_v7();
  db::ResumableState state = initial_state(services_, settings_, id, plan, util::now_micros());
  std::optional<UploadSession> session;
  auto stored = co_await with_session(session, [&]() -> asio::awaitable<db::Upload> {
    const std::string name = file_name_of(plan, id);
    session.emplace(services_, owner,
                    UploadPlan{name, plan.declared_type, plan.length, std::nullopt, plan.length, state.upload_id, state});
    co_await session->create();
    for (;;) {
      const auto chunk = co_await body.read_some();
      if (chunk.empty()) break;
      co_await session->append(session->offset(), chunk);
    }
    co_return co_await session->complete();
  });
  state.offset = stored.file_size;
  co_return ResumableUpload{std::move(stored), std::move(state)};
}

asio::awaitable<ResumableUpload> ResumableUploads::find(const auth::Principal& caller, const std::string& id) {
  if (!util::is_uuid(id)) throw no_such_upload();
  std::optional<ResumableUpload> found = co_await util::run_blocking(services_.blocking, [&] {
    std::optional<ResumableUpload> out;
    auto upload = services_.records.get_upload(id);
    if (!upload || upload->user_id != caller.user_id) return out;
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

asio::awaitable<ResumableUpload> ResumableUploads::status(const auth::Principal& caller, const std::string& id) {
  auto upload = co_await find(caller, id);
  const auto& state = upload.state;
  if (upload.complete() || !state.upload_length || state.offset != *state.upload_length) co_return upload;
  LiveSlot slot(services_, upload.upload.id, upload.upload.user_id);
  Append append(services_, settings_, upload, caller);
  co_await append.take_lease();  // 423 while a request writes (or completes) it
  std::exception_ptr failure;
  try {
    co_await append.finish();
  } catch (...) {
    failure = std::current_exception();
  }
  co_await append.release();
  if (failure) co_await fail(caller, upload.upload.id, failure);
  co_return upload;
}

asio::awaitable<ResumableUpload> ResumableUploads::append(const auth::Principal& caller, const std::string& id,
                                                          std::uint64_t offset, std::optional<std::uint64_t> length,
                                                          const std::optional<ChunkChecksum>& checksum,
                                                          util::ByteSource& body) {
  auto upload = co_await find(caller, id);
  auto& state = upload.state;
  if (offset != state.offset) {
    throw Error(Failure::conflict, "Upload-Offset " + std::to_string(offset) + " is not the upload's offset " +
                                       std::to_string(state.offset));
  }
  if (length && state.upload_length && *length != *state.upload_length) {
    throw Error(Failure::bad_request, "Upload-Length cannot change once it is set");
  }
  if (upload.complete()) {
    // The whole file is here already: only an empty chunk fits.
    const auto chunk = co_await body.read_some();
    if (!chunk.empty()) throw Error(Failure::too_large, "the upload is complete; the chunk goes past its length");
    co_return upload;
  }
  LiveSlot slot(services_, upload.upload.id, upload.upload.user_id);
  Append append(services_, settings_, upload, caller);
  append.expect_offset(offset);
  co_await append.take_lease();
  std::exception_ptr failure;
  try {
    if (length && !state.upload_length) co_await append.set_length(*length);
    co_await append.run(checksum, body);
  } catch (...) {
    failure = std::current_exception();
  }
  co_await append.release();
  if (failure) co_await fail(caller, upload.upload.id, failure);
  co_return upload;
}

// The bytes decide the type, and the first bytes are stored: a type refused
// now is refused for good, so the upload ends (as a termination would) rather
// than wait for its expiry, and no HEAD reports it whole.
asio::awaitable<void> ResumableUploads::fail(const auth::Principal& caller, const std::string& id,
                                             std::exception_ptr failure) {
  log_upload_failure(id, failure);
  bool refused_for_good = false;
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    refused_for_good = e.failure() == Failure::type_refused;
  } catch (...) {
  }
  if (refused_for_good) {
    try {
      co_await terminate(caller, id);
    } catch (const std::exception& e) {
      spdlog::warn("upload {}: ending it after its type was refused failed ({}); it expires instead", id, e.what());
    }
  }
  std::rethrow_exception(failure);
}

asio::awaitable<void> ResumableUploads::discard(const db::Upload& upload, const db::ResumableState& state) {
  const storage::ResumePoint last = point_of(state);
  co_await resumable_store(services_).discard_resumable(upload.storage_key, last);
}

asio::awaitable<void> ResumableUploads::terminate(const auth::Principal& caller, const std::string& id) {
  auto upload = co_await find(caller, id);
  if (upload.complete()) {
    co_await remove_object_then_row(services_, upload.upload);
    co_return;
  }
  Append append(services_, settings_, upload, caller);
  co_await append.take_lease();  // 423 while a request writes it
  co_await discard(upload.upload, upload.state);
  co_await util::run_blocking(services_.blocking, [&] {
    services_.records.mark_failed(upload.upload.id, util::now_micros());  // gives its quota back
    services_.records.delete_upload(upload.upload.id);
  });
}

asio::awaitable<std::size_t> ResumableUploads::end_expired(std::size_t limit) {
  const db::Micros now = util::now_micros();
  const auto expired = co_await util::run_blocking(services_.blocking, [&] {
    return services_.records.expired_resumable(now, static_cast<std::int64_t>(limit));
  });
  std::size_t ended = 0;
  for (const auto& upload : expired) {
    try {
      auto state = co_await util::run_blocking(services_.blocking,
                                               [&] { return services_.records.get_resumable(upload.id); });
      if (!state) continue;
      // The lease keeps a request that starts now from writing meanwhile.
      const db::Micros until = now + micros(settings_.lease);
      const bool taken = co_await util::run_blocking(services_.blocking, [&] {
        return services_.records.take_lease(upload.id, state->lease_token, now, until);
      });
      if (!taken) continue;
      co_await discard(upload, *state);
      const bool failed = co_await util::run_blocking(services_.blocking,
                                                      [&] { return services_.records.mark_failed(upload.id, now); });
      if (failed) ++ended;
      spdlog::info("janitor: resumable upload {} expired unfinished at {} bytes; its data is removed", upload.id,
                   state->offset);
    } catch (const std::exception& e) {
      spdlog::error("janitor: ending expired upload {} failed: {}", upload.id, e.what());
    }
  }
  co_return ended;
}

}  // namespace s3up::upload
