#include "upload/session.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "upload/sniff.hpp"
#include "util/blocking.hpp"
#include "util/ids_time.hpp"

namespace s3up::upload {

namespace asio = boost::asio;

namespace {

// Quota is reserved ahead in steps of this much, so a long upload of unknown
// length asks the database now and then, not per chunk.
constexpr std::uint64_t kReserveStep = 8 * 1024 * 1024;

}  // namespace

std::string_view to_string(Stage stage) {
  switch (stage) {
    case Stage::created: return "created";
    case Stage::receiving: return "receiving";
    case Stage::committed: return "committed";
    case Stage::complete: return "complete";
    case Stage::failed: return "failed";
    case Stage::completion_unknown: return "completion_unknown";
  }
  return "?";
}

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

bool LiveUploads::contains(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return uploads_.contains(id);
}

UploadSession::UploadSession(const Services& services, const auth::Principal& owner, UploadPlan plan)
    : services_(services),
      plan_(std::move(plan)),
      quota_(services, record_.id, owner.user_id, effective_quota(owner, services.limits)) {
  record_.user_id = owner.user_id;
  record_.file_name = plan_.file_name;
}

std::string storage_key_of(std::int64_t user_id, const std::string& upload_id) {
  return "u/" + std::to_string(user_id) + "/" + upload_id;
}

std::int64_t effective_quota(const auth::Principal& owner, const Limits& limits) {
  if (owner.quota_bytes) return *owner.quota_bytes;
  if (limits.default_quota) return static_cast<std::int64_t>(*limits.default_quota);
  return db::kNoQuota;
}

UploadSession::~UploadSession() { leave_live(); }

void UploadSession::leave_live() {
  if (registered_) services_.live->remove(record_.id);
  registered_ = false;
}

asio::awaitable<void> UploadSession::create() {
  if (stage_ != Stage::created) throw std::logic_error("upload session created twice");
  if (!is_acceptable_file_name(record_.file_name)) throw invalid_file_name();
  record_.id = plan_.id.empty() ? util::uuid_v7() : plan_.id;
  record_.storage_key = storage_key_of(record_.user_id, record_.id);
  record_.created_at = util::now_micros();
  record_.status = db::UploadStatus::pending;
  record_.content_type = normalize_media_type(plan_.declared_type).value_or("");
  // Registered before the row exists: the janitor never mistakes it for a dead one.
  if (!services_.live->add(record_.id, record_.user_id, services_.limits.max_concurrent_uploads)) {
    throw too_many_uploads(services_.limits);
  }
  registered_ = true;
  co_await util::run_blocking(services_.blocking, [&] {
    services_.records.create_pending(record_);
    if (plan_.resumable) services_.records.add_resumable(*plan_.resumable);
  });
  row_written_ = true;
  // A known file length is reserved before a byte is stored (413 at once if
  // it does not fit). An upper bound is tried too (concurrent uploads then do
  // not starve each other bit by bit); if it does not fit, the bytes are
  // reserved as they arrive, and only they decide.
  const auto most = plan_.exact_length ? plan_.exact_length : plan_.at_most;
  if (most && quota_.limited()) {
    const bool granted = co_await quota_.try_reserve(*most);
    if (!granted && plan_.exact_length) throw quota_exceeded();
  }
  spdlog::debug("upload {} started by user {}: key {}", record_.id, record_.user_id, record_.storage_key);
  const storage::ObjectMetadata metadata{record_.content_type, record_.file_name, plan_.size_hint};
  // The store's own id of the upload (an S3 multipart upload) goes on the
  // row the moment it exists, so a clean-up after a crash can abort it.
  const storage::StoreUploadStarted record_store_upload_id = [this](const std::string& store_upload_id) {
    return util::run_blocking(services_.blocking, [this, &store_upload_id] {
      services_.records.set_store_upload_id(record_.id, store_upload_id);
    });
  };
  writer_ = co_await services_.store.open_writer(record_.storage_key, metadata, record_store_upload_id);
  stage_ = Stage::receiving;
}

asio::awaitable<void> UploadSession::append(std::uint64_t offset, std::span<const char> data) {
  if (stage_ != Stage::receiving) throw std::logic_error("upload session is not receiving");
  if (offset != size_) throw Error(Failure::conflict, "the upload is at offset " + std::to_string(size_));
  if (size_ + data.size() > services_.limits.max_upload_bytes) throw file_too_large(services_.limits);
  size_ += data.size();
  // An unknown length is reserved as it grows; without a quota there is
  // nothing to reserve, and no coroutine call per chunk.
  if (quota_.limited() && size_ > quota_.reserved()) co_await quota_.cover(size_);
  if (sniff_head_.size() < kSniffBytes) {
    sniff_head_.append(data.data(), std::min(data.size(), kSniffBytes - sniff_head_.size()));
  }
  co_await writer_->write(data);
  // With allowed types, refuse as soon as the first bytes tell (the writer
  // is aborted: nothing stays), not after the whole file arrived.
  if (!type_checked_ && !services_.limits.allowed_types.empty() && sniff_head_.size() == kSniffBytes) {
    co_await check_type();
  }
}

void UploadSession::settle_record(const storage::CommittedObject& committed, bool sniff_type) {
  if (committed.size != size_) throw std::runtime_error("the object store stored a different size");
  if (sniff_type) record_.content_type = sniff_mime_type(sniff_head_, SniffPurpose::label);
  record_.sha256 = committed.sha256;
  record_.completed_at = util::now_micros();
}

asio::awaitable<db::Upload> UploadSession::complete() {
  if (stage_ != Stage::receiving) throw std::logic_error("upload session is not receiving");
  record_.file_size = size_;
  if (!services_.limits.allowed_types.empty() && !type_checked_) co_await check_type();
  // A type the client did not name is sniffed for the record (the object's
  // own Content-Type was fixed when the writer opened).
  const bool sniff_type = services_.limits.allowed_types.empty() &&
                          (record_.content_type.empty() || record_.content_type == "application/octet-stream");

  // What the trip to the pool found; the stage is set from it back here.
  enum class Marked { yes, cancelled, unknown };
  struct Outcome {
    Marked marked = Marked::unknown;
    std::exception_ptr database_error;
  };
  // If the database fails while marking the row we cannot know whether it
  // became complete (the commit may have landed before the connection
  // broke), so the object must stay: the janitor then finds the row complete
  // (all is well) or still pending (it removes the object).
  const auto mark_complete = [&]() -> Outcome {
    try {
      return {services_.records.mark_complete(record_) ? Marked::yes : Marked::cancelled, nullptr};
    } catch (...) {
      return {Marked::unknown, std::current_exception()};
    }
  };
  // The sniffing and the database write run on the pool; with a writer that
  // can commit there too (local disk) the commit joins them: one trip.
  Outcome outcome;
  bool committed = false;
  std::exception_ptr failure;
  try {
    if (auto* blocking = writer_->blocking_commit()) {
      co_await blocking->prepare();
      outcome = co_await util::run_blocking(services_.blocking, [&] {
        const auto object = blocking->commit_here();
        committed = true;
        settle_record(object, sniff_type);
        return mark_complete();
      });
    } else {
      const auto object = co_await writer_->commit();
      committed = true;
      outcome = co_await util::run_blocking(services_.blocking, [&] {
        settle_record(object, sniff_type);
        return mark_complete();
      });
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (committed) stage_ = Stage::committed;
  if (failure) std::rethrow_exception(failure);
  if (outcome.marked == Marked::unknown) {
    stage_ = Stage::completion_unknown;
    std::rethrow_exception(outcome.database_error);
  }
  if (outcome.marked == Marked::cancelled) {
    throw Error(Failure::conflict, "the upload was cancelled while it was being stored");
  }
  stage_ = Stage::complete;
  leave_live();
  record_.status = db::UploadStatus::complete;
  spdlog::debug("upload {} complete: {} bytes, {}", record_.id, record_.file_size, record_.content_type);
  co_return record_;
}

asio::awaitable<void> UploadSession::fail() noexcept {
  const Stage was = stage_;
  switch (was) {
    case Stage::complete:
    case Stage::failed:
      co_return;
    case Stage::completion_unknown:
      spdlog::warn("upload {}: the database failed while marking it complete; its object {} stays for the janitor",
                   record_.id, record_.storage_key);
      co_return;
    case Stage::created:
    case Stage::receiving:
    case Stage::committed:
      break;
  }
  stage_ = Stage::failed;
  leave_live();
  auto leftovers = db::StoreLeftovers::none;
  try {
    // receiving: the writer's partial object; committed: the object itself.
    if (writer_ && was != Stage::committed) co_await writer_->abort();
    if (was == Stage::committed) co_await services_.store.remove(record_.storage_key);
  } catch (const std::exception& e) {
    leftovers = db::StoreLeftovers::remain;
    spdlog::error("upload {}: removing what it left in the store failed ({}); the janitor will retry", record_.id,
                  e.what());
  }
  writer_.reset();
  if (row_written_) {
    try {
      co_await util::run_blocking(services_.blocking,
                                  [&] { services_.records.mark_failed(record_.id, util::now_micros(), leftovers); });
    } catch (const std::exception& e) {
      spdlog::error("upload {}: marking the row failed did not work: {}", record_.id, e.what());
    }
  }
}

asio::awaitable<bool> QuotaReservation::try_reserve(std::uint64_t bytes) {
  const auto ask = static_cast<std::int64_t>(bytes);
  const bool granted = co_await util::run_blocking(services_.blocking, [&] {
    return services_.records.reserve_quota(upload_id_, user_id_, ask, quota_);
  });
  if (granted) reserved_ += bytes;
  co_return granted;
}

asio::awaitable<void> QuotaReservation::cover(std::uint64_t total) {
  if (total <= reserved_) co_return;
  const std::uint64_t needed = total - reserved_;
  const std::uint64_t ahead = std::max(needed, kReserveStep);
  if (co_await try_reserve(ahead)) co_return;
  if (ahead > needed && co_await try_reserve(needed)) co_return;
  throw quota_exceeded();
}

// With allowed types the type is what the bytes say (libmagic), whatever
// the client declared or the name suggests; that type is stored and served.
asio::awaitable<void> UploadSession::check_type() {
  const auto sniffed = co_await util::run_blocking(services_.blocking, [&] { return sniff_mime_type(sniff_head_); });
  if (!type_allowed(sniffed, services_.limits.allowed_types)) throw type_not_accepted(sniffed);
  record_.content_type = sniffed;
  type_checked_ = true;
}

asio::awaitable<bool> remove_object_then_row(const Services& services, const db::Upload& upload) {
  // A failed upload's object went when it failed; nothing to remove.
  if (upload.status != db::UploadStatus::failed) co_await services.store.remove(upload.storage_key);
  co_return co_await util::run_blocking(services.blocking, [&] { return services.records.delete_upload(upload.id); });
}

void log_upload_failure(const std::optional<UploadSession>& session, const std::exception_ptr& error) {
  log_upload_failure(session && !session->id().empty() ? std::string_view(session->id()) : "-", error);
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
