#pragma once
// One upload on its way into the store, however its bytes arrive (a raw PUT,
// a multipart form, and later tus PATCHes with offsets from the database).
//
// A session moves through explicit stages, and fail() is the one place that
// decides, by stage, what a failure undoes:
//
//   created ──create()──▶ receiving ──complete()──▶ committed ──▶ complete
//      │                     │                          │
//      └──────fail()─────────┴──────────fail()──────────┴──▶ failed
//                                                       └──▶ completion_unknown
//
// created: nothing stored yet. receiving: the pending row exists and the
// store's writer is open. committed: the object is in the store, the row not
// yet complete. completion_unknown: the database failed while marking the
// row complete, so the object stays and the janitor settles it.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "auth/authenticator.hpp"
#include "db/metadata_store.hpp"
#include "storage/object_store.hpp"
#include "upload/policy.hpp"

namespace s3up::upload {

// The uploads this process is receiving right now, by id: the janitor leaves
// their rows alone however old they are.
class LiveUploads {
 public:
  // Registers a request for an upload of `user_id`; false (and nothing
  // registered) if that user already has `max_per_user` uploads in progress
  // here (0: no limit). A second request for an upload already in progress
  // here (a client reconnecting while its old connection is still open)
  // takes no place of its own: the write lease decides between the two.
  // Each add() that returned true is matched by one remove().
  bool add(const std::string& id, std::int64_t user_id, unsigned max_per_user);
  void remove(const std::string& id);
  bool contains(const std::string& id) const;

 private:
  struct Entry {
    std::int64_t user_id;
    unsigned requests;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> uploads_;
  std::unordered_map<std::int64_t, unsigned> per_user_;  // uploads in progress
};

// What sessions and the janitor work with.
struct Services {
  storage::ObjectStore& store;
  db::UploadStore& records;
  db::Coordination& coordination;  // the janitor's lock
  boost::asio::thread_pool& blocking;
  Limits limits;
  std::shared_ptr<LiveUploads> live = std::make_shared<LiveUploads>();
};

// Where an upload's bytes are stored: u/<user id>/<upload id> (ids are never
// reused, so neither are keys).
std::string storage_key_of(std::int64_t user_id, const std::string& upload_id);

// The quota an owner's uploads are held to: their own, else the service's
// default, else db::kNoQuota.
std::int64_t effective_quota(const auth::Principal& owner, const Limits& limits);

// An upload's share of its owner's quota, reserved in the database as the
// upload grows: ahead in steps, so a long upload of unknown length asks now
// and then, not per chunk. Completing or failing the upload settles it.
class QuotaReservation {
 public:
  // `upload_id` is read at each reservation (it may be filled in later).
  QuotaReservation(const Services& services, const std::string& upload_id, std::int64_t user_id, std::int64_t quota,
                   std::uint64_t reserved = 0)
      : services_(services), upload_id_(upload_id), user_id_(user_id), quota_(quota), reserved_(reserved) {}
  bool limited() const { return quota_ != db::kNoQuota; }
  std::uint64_t reserved() const { return reserved_; }
  // Exactly `bytes` more; false, and nothing reserved, if they do not fit.
  boost::asio::awaitable<bool> try_reserve(std::uint64_t bytes);
  // At least `total` in all: a step ahead if that fits, else exactly;
  // 413 quota_exceeded if not even that does.
  boost::asio::awaitable<void> cover(std::uint64_t total);

 private:
  const Services& services_;
  const std::string& upload_id_;
  std::int64_t user_id_;
  std::int64_t quota_;
  std::uint64_t reserved_;
};

enum class Stage { created, receiving, committed, complete, failed, completion_unknown };
std::string_view to_string(Stage stage);

// What is known of an upload before its first byte.
struct UploadPlan {
  std::string file_name;
  std::string declared_type;  // the client's Content-Type, normalised or dropped
  // The file's exact length (reserved against the quota at once), or only
  // an upper bound (tried, then bytes are reserved as they come).
  std::optional<std::uint64_t> exact_length;
  std::optional<std::uint64_t> at_most;
  std::optional<std::uint64_t> size_hint;  // sizes S3 parts
  std::string id;  // the upload's id if the caller chose it; "": a new UUIDv7
  // A tus upload that arrives whole in its creation request: its progress
  // row (for `id`), written with the pending row.
  std::optional<db::ResumableState> resumable;
};

class UploadSession {
 public:
  UploadSession(const Services& services, const auth::Principal& owner, UploadPlan plan);
  ~UploadSession();
  UploadSession(const UploadSession&) = delete;
  UploadSession& operator=(const UploadSession&) = delete;

  // created → receiving: checks the name, writes the pending row (before any
  // byte is stored, so a crash leaves a trace the janitor finds), reserves
  // quota, opens the store's writer. 400/413/429 when a rule says no.
  boost::asio::awaitable<void> create();
  // Stores bytes at `offset`, which must be offset() (409 otherwise). 413 as
  // soon as the size or the quota is exceeded, 415 as soon as the first bytes
  // show a type that is not allowed.
  boost::asio::awaitable<void> append(std::uint64_t offset, std::span<const char> data);
  // receiving → committed → complete: commits the object and marks the row
  // complete; the record as stored.
  boost::asio::awaitable<db::Upload> complete();
  // Undoes what the stage has stored; never throws (it runs on error paths
  // and logs its own failures).
  boost::asio::awaitable<void> fail() noexcept;

  Stage stage() const { return stage_; }
  const std::string& id() const { return record_.id; }
  std::uint64_t offset() const { return size_; }

 private:
  boost::asio::awaitable<void> check_type();
  void leave_live();  // no longer received here: the janitor may judge its row
  // The record's last fields before it is marked complete.
  void settle_record(const storage::CommittedObject& committed, bool sniff_type);

  const Services& services_;
  UploadPlan plan_;
  Stage stage_ = Stage::created;
  db::Upload record_;
  bool row_written_ = false;  // within create(): the pending row exists
  bool registered_ = false;   // in services_.live
  std::unique_ptr<storage::ObjectWriter> writer_;
  std::uint64_t size_ = 0;
  std::string sniff_head_;
  bool type_checked_ = false;          // the sniffed type passed allowed_types
  QuotaReservation quota_;  // against the owner's quota (their own or the default)
};

// Runs `steps` (which drive `session`, once it exists) and returns what they
// return; on any failure, fails the session (undoing what it stored) and
// rethrows. `steps` must capture by reference only: see util/blocking.hpp.
template <class Steps>
auto with_session(std::optional<UploadSession>& session, Steps steps) -> decltype(steps());

// The last steps of deleting an upload, in their crash-safe order: its
// object (absent is fine), then its row (usage settled). True if this call
// removed the row. DELETE /files/{id} marks the row 'deleting' first; the
// janitor finishes rows a crash left so.
boost::asio::awaitable<bool> remove_object_then_row(const Services& services, const db::Upload& upload);

void log_upload_failure(const std::optional<UploadSession>& session, const std::exception_ptr& error);
// The same for an upload known by its id ("-" before it has one).
void log_upload_failure(std::string_view upload_id, const std::exception_ptr& error);

template <class Steps>
auto with_session(std::optional<UploadSession>& session, Steps steps) -> decltype(steps()) {
  std::exception_ptr error;
  std::optional<typename decltype(steps())::value_type> result;
  try {
    result = co_await steps();
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    // (The undo needs co_await, which a catch block cannot hold.)
    log_upload_failure(session, error);
    if (session) co_await session->fail();
    std::rethrow_exception(error);
  }
  co_return std::move(*result);
}

}  // namespace s3up::upload
