#pragma once
// The upload engine: every upload's life, however its bytes arrive.
//
// A single-shot upload (POST /upload, PUT /upload/<name>, a tus creation
// that carries the whole file) is stored in one pass and never
// checkpoints. A resumable upload (tus) is written by many requests, on any
// instance, each appending at the offset the database holds: it keeps
// durable points. Both are one Upload inside (engine.cpp), which writes each
// rule once: the name and the pending row, the size limit, quota steps,
// sniffing and allowed types, the commit, marking the row complete, and
// what a failure undoes at each stage:
//
//   created ──row──▶ receiving ──commit──▶ committed ──record──▶ complete
//      │                 │                     │
//      └─────────────────┴──────── fail ───────┴──▶ failed, or completion_unknown
//                                                    (the database failed while
//                                                    marking it: the object stays
//                                                    for the janitor to settle)
//
// What an acknowledged offset of a resumable upload promises is kept by two
// things. The store's writer makes bytes durable at checkpoints (local:
// fsync; S3: completed parts plus a tail object). The database records each
// durable point, with the store's and the hash's state, under a write lease:
// one request writes an upload at a time, anywhere. A lease runs for
// ResumableSettings::lease from its last renewal and is renewed while bytes
// arrive; a request whose client went silent loses it once it lapses, and
// every instance may then take it, with a new token. The old request is
// fenced twice: the database refuses its progress (the token moved on), and
// the store asks the lease before each change another writer could see
// (storage::WriteFence), so a half-open connection that wakes up cannot
// scribble.
//
// Bytes come from a util::ByteSource: the engine knows nothing of HTTP.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "auth/authenticator.hpp"
#include "db/metadata_store.hpp"
#include "storage/object_store.hpp"
#include "upload/policy.hpp"
#include "util/byte_source.hpp"

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
  std::size_t size() const;  // uploads in progress here

 private:
  struct Entry {
    std::int64_t user_id;
    unsigned requests;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> uploads_;
  std::unordered_map<std::int64_t, unsigned> per_user_;  // uploads in progress
};

// What the engine and the janitor work with.
// Work for the janitor that should not wait for its next round (a user's
// deletion): whoever made it calls, and the janitor runs within a second.
class JanitorCall {
 public:
  void call() { called_ = true; }
  bool take() { return called_.exchange(false); }

 private:
  std::atomic<bool> called_{false};
};

class UploadGate;

struct Services {
  storage::ObjectStore& store;
  db::UploadStore& records;
  db::Coordination& coordination;  // the janitor's lock
  boost::asio::thread_pool& blocking;
  Limits limits;
  std::shared_ptr<LiveUploads> live = std::make_shared<LiveUploads>();
  std::shared_ptr<JanitorCall> janitor_call = std::make_shared<JanitorCall>();
  UploadGate* gate = nullptr;  // the pre-upload hook, if one is set
};

// Where an upload's bytes are stored: u/<user id>/<upload id> (ids are never
// reused, so neither are keys).
std::string storage_key_of(std::int64_t user_id, const std::string& upload_id);

// The quota an owner's uploads are held to: their own, else the service's
// default, else db::kNoQuota.
std::int64_t effective_quota(const auth::Principal& owner, const Limits& limits);

struct ResumableSettings {
  // How long an unfinished upload lives after its creation or last PATCH.
  std::chrono::milliseconds expiry{24 * 3600 * 1000};
  // The write lease: how long it runs from its last renewal.
  std::chrono::milliseconds lease{6000};
};

// Who asks for an upload, as the pre-upload hook is told.
struct Requester {
  std::string_view source;  // "form", "put" or "tus" ("link" whatever the route, through an upload link)
  std::string client_ip;
  std::string request_id;
};

// What the pre-upload hook is asked about, before an upload's pending row.
struct UploadProposal {
  const auth::Principal& owner;
  std::string_view file_name;
  std::string_view declared_type;
  std::optional<std::uint64_t> length;  // none: not known yet
  std::string_view metadata;            // tus Upload-Metadata as sent; "" otherwise
  const Requester& requester;
};

// Its answer. Refusals are upload::Error (refused, too_large, type_refused,
// unprocessable, with the hook's message; check_unavailable when it could
// not be asked and fails closed).
struct UploadVerdict {
  std::optional<std::string> file_name;                     // the name to store it under instead
  std::vector<std::pair<std::string, std::string>> metadata;  // added to a tus upload's
};

// Decides whether an upload may start (the pre-upload hook, webhooks/).
class UploadGate {
 public:
  virtual ~UploadGate() = default;
  virtual boost::asio::awaitable<UploadVerdict> decide(const UploadProposal& proposal) = 0;
};

// What is known of a single-shot upload before its first byte.
struct UploadPlan {
  std::string file_name;
  std::string declared_type;  // the client's Content-Type, normalised or dropped
  // The file's exact length (reserved against the quota at once), or only
  // an upper bound (tried, then bytes are reserved as they come).
  std::optional<std::uint64_t> exact_length;
  std::optional<std::uint64_t> at_most;
  std::optional<std::uint64_t> size_hint;  // sizes S3 parts
  Requester requester;
};

// What a tus client says of an upload it creates.
struct ResumablePlan {
  std::string file_name;                // empty: the upload's id
  std::string declared_type;            // the client's, normalised or dropped
  std::optional<std::uint64_t> length;  // none: deferred
  std::string metadata;                 // Upload-Metadata as sent, echoed by HEAD
  Requester requester;
};

// A resumable upload as a tus client sees it.
struct ResumableUpload {
  db::Upload upload;
  db::ResumableState state;
  bool complete() const { return upload.status == db::UploadStatus::complete; }
};

// A chunk's expected digest (tus checksum extension).
struct ChunkChecksum {
  std::string algorithm;  // sha1, sha256, md5, crc32
  std::string digest;     // raw bytes
};

class Uploads {
 public:
  explicit Uploads(const Services& services, ResumableSettings settings = {});

  // A single-shot upload: `source` read to its end and stored in one pass,
  // then recorded complete. Refused (upload::Error) when a rule says no:
  // the name, the size, the quota, the type (as soon as the first bytes
  // tell), too many uploads at once. On any failure nothing of it stays in
  // the store and its row is failed.
  boost::asio::awaitable<db::Upload> store(const auth::Principal& owner, const UploadPlan& plan,
                                           util::ByteSource& source);

  // Resumable uploads (tus).
  // Creates the upload (pending row, its progress row, its quota when the
  // length is known); a length of 0 completes it at once.
  boost::asio::awaitable<ResumableUpload> create(const auth::Principal& owner, const ResumablePlan& plan);
  // The same for an upload whose whole body is in the creation request
  // (checked by length by the caller): stored as a single-shot upload is, in
  // one pass, and complete at once.
  boost::asio::awaitable<ResumableUpload> create_whole(const auth::Principal& owner, const ResumablePlan& plan,
                                                       util::ByteSource& source);
  // The caller's upload `id`; not_found for anyone else's, a missing or
  // failed one, and an unfinished one past its expiry.
  boost::asio::awaitable<ResumableUpload> find(const auth::Principal& caller, const std::string& id);
  // find(), for a HEAD: an upload whose every byte is stored but whose
  // completion failed (the store or the database was down as its last PATCH
  // ended) is completed first, since an offset equal to the length tells a
  // client it is done. locked while another request writes it.
  boost::asio::awaitable<ResumableUpload> status(const auth::Principal& caller, const std::string& id);
  // Appends `source` at `offset` (conflict unless it is the stored one),
  // after setting a deferred length if `length` is given; locked while
  // another request writes the upload. With a checksum the chunk counts
  // whole or not at all (checksum_mismatch). Completes the upload when its
  // last byte arrives. A type the bytes refuse (type_refused) ends the
  // upload: no later request can change it.
  boost::asio::awaitable<ResumableUpload> append(const auth::Principal& caller, const std::string& id,
                                                 std::uint64_t offset, std::optional<std::uint64_t> length,
                                                 const std::optional<ChunkChecksum>& checksum,
                                                 util::ByteSource& source);
  // Removes the upload and everything it stored (tus termination).
  boost::asio::awaitable<void> terminate(const auth::Principal& caller, const std::string& id);

  // The janitor's part: ends resumable uploads whose expiry has passed
  // (aborts what the store holds, gives the quota back, marks them failed).
  // Returns how many it ended.
  boost::asio::awaitable<std::size_t> end_expired(std::size_t limit);

 private:
  // The gate's decision on an upload about to start, applied to its name and
  // metadata; throws its refusal.
  boost::asio::awaitable<void> ask_gate(const auth::Principal& owner, std::string& file_name,
                                        std::string_view declared_type, std::optional<std::uint64_t> length,
                                        std::string* metadata, const Requester& requester);
  boost::asio::awaitable<db::Upload> store_whole(const auth::Principal& owner, const UploadPlan& plan,
                                                 util::ByteSource& source, db::ResumableState* resumable);
  boost::asio::awaitable<void> fail(const auth::Principal& caller, const std::string& id, std::exception_ptr failure);
  boost::asio::awaitable<void> discard(const db::Upload& upload, const db::ResumableState& state);

  const Services& services_;
  ResumableSettings settings_;
};

// The last steps of deleting an upload, in their crash-safe order: its
// object (absent is fine), then its row (usage settled). True if this call
// removed the row. DELETE /files/{id} marks the row 'deleting' first; the
// janitor finishes rows a crash left so.
boost::asio::awaitable<bool> remove_object_then_row(const Services& services, const db::Upload& upload);

// One line for an upload that failed: at info for what a request did
// (util::RequestFailure), as an error for anything else. `upload_id` is "-"
// before it has one.
void log_upload_failure(std::string_view upload_id, const std::exception_ptr& error);

}  // namespace s3up::upload
