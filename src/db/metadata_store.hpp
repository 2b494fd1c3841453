#pragma once
// The metadata store: users and API tokens, upload records (by concern: the
// engine's lifecycle, resumable progress and its lease, the files API's
// catalog, the janitor's queues), and the coordination of instances sharing
// the database, as interfaces that each backend implements in one class.
//
// The interface is synchronous on purpose: each backend decides how it talks to
// its database, callers on I/O threads go through util::run_blocking so no
// database call ever blocks an I/O thread, and the CLI calls it directly.
// Backends throw db::Error: unavailable when the database fails, conflict
// when a unique name is taken.
#include <chrono>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "util/time.hpp"
#include "util/failure.hpp"

namespace s3up::db {

using util::Micros;

enum class Failure {
  unavailable,  // the database cannot be reached, or failed the statement
  conflict,     // a unique value (a user's name) is taken
};

using Error = util::KindedError<Failure>;

struct User {
  std::int64_t id = 0;
  std::string name;
  bool is_admin = false;
  bool disabled = false;
  Micros created_at = 0;
  std::optional<std::int64_t> quota_bytes;  // none: the service's default
  std::int64_t used_bytes = 0;              // complete uploads plus reservations of uploads in progress
  std::optional<std::string> issuer;        // a JWT user's identity provider (iss); none: a user of API tokens
  bool deleting = false;                    // being deleted (Accounts::begin_user_deletion)
};

// No quota at all (a quota_bytes or default the arithmetic can use).
inline constexpr std::int64_t kNoQuota = INT64_MAX;

struct ApiToken {
  std::string id;  // "tok_" + 16 hex digits; shown in `token list`, used to revoke
  std::int64_t user_id = 0;
  std::string user_name;
  std::string name;  // a label, e.g. "laptop"
  Micros created_at = 0;
  std::optional<Micros> expires_at;
  std::optional<Micros> revoked_at;
};

// Where a page of a listing ended: the last row's sort key.
struct ListPosition {
  Micros created_at = 0;
  std::string upload_id;
};

// What GET /files asks for: complete uploads, one owner's or everyone's,
// those whose name contains a text, in one order, a page after another.
struct FileListing {
  enum class Order { created, name, size };  // name: ignoring case; the id breaks ties
  std::optional<std::int64_t> user_id;  // none: every owner's
  std::string name_contains;            // empty: any name
  Order order = Order::created;
  bool descending = true;
  // The last row of the previous page; only its fields for `order` (and the
  // id) are read.
  struct After {
    Micros created_at = 0;
    std::string file_name;
    std::int64_t file_size = 0;
    std::string upload_id;
  };
  std::optional<After> after;
  std::int64_t limit = 100;
};

struct TokenOwner {
  ApiToken token;
  User user;
};

// pending -> complete | failed; complete -> deleting -> (row gone).
enum class UploadStatus { pending, complete, failed, deleting };
std::string_view to_string(UploadStatus s);
UploadStatus upload_status_from(std::string_view s);

// Whether a failed upload may have left something in the object store.
enum class StoreLeftovers { none, remain };

struct Upload {
  std::string id;  // UUIDv7
  std::int64_t user_id = 0;
  std::string file_name;
  std::uint64_t file_size = 0;
  std::string content_type;
  std::string sha256;  // hex
  std::string storage_key;
  std::string store_upload_id;
  UploadStatus status = UploadStatus::pending;
  Micros created_at = 0;
  std::optional<Micros> completed_at;
  std::optional<std::string> upload_link_id;  // the upload link it came through
};

// A URL through which people without an account upload into its owner's
// account, within its limits, until it expires or is revoked.
struct UploadLink {
  std::string id;  // "lnk_" + 16 hex digits
  std::int64_t user_id = 0;
  std::string note;
  std::string allowed_types;  // comma-separated patterns; empty: whatever the service takes
  std::optional<std::int64_t> max_files, max_bytes;
  std::int64_t files_used = 0, bytes_used = 0;  // uploads through it started and not failed
  Micros created_at = 0, expires_at = 0;
  std::optional<Micros> revoked_at;
};

// The progress of a resumable (tus) upload, beside its pending row.
struct ResumableState {
  std::string upload_id;
  std::optional<std::uint64_t> upload_length;  // none while the client defers it
  std::uint64_t offset = 0;                    // bytes durable in the store
  std::string metadata;                        // Upload-Metadata as the client created it
  std::uint64_t part_size = 0;                 // fixed at creation
  std::string store_state;                     // the store's saved writer state
  std::string hash_state;                      // util::ResumableSha256::save()
  Micros expires_at = 0;
  // The write lease: one writer at a time. The token is the row's version:
  // taking the lease, saving progress and releasing it each move it on by
  // one, and each is done only under the current token. So a writer that
  // lost the lease (its client reconnected elsewhere) is fenced, and a
  // request that read the row before another wrote it cannot take it.
  std::int64_t lease_token = 0;
  // Until when the holder may write; none once it gave the lease up (or
  // nobody took it yet), which tells the next writer the last one is done.
  std::optional<Micros> lease_expires_at;
  // Read only (get_resumable): the quota reserved for the upload so far.
  std::uint64_t reserved_bytes = 0;
};

// Held while one instance does something only one may do at a time (the
// janitor); released when destroyed.
class ExclusiveLock {
 public:
  virtual ~ExclusiveLock() = default;
};

// Who a request is: what authentication reads on every request, and a JWT
// user's first request writes.
class Identities {
 public:
  virtual ~Identities() = default;
  virtual std::optional<TokenOwner> find_token(std::string_view token_hash) = 0;
  // The user a JWT from `issuer` names `name`, created on first use (no
  // admin, the default quota); nullopt when the name belongs to a user of
  // API tokens or of another issuer.
  virtual std::optional<User> external_user(std::string_view issuer, std::string_view name, Micros now) = 0;
  virtual std::optional<User> find_user(std::string_view name) = 0;
  virtual std::optional<User> get_user(std::int64_t id) = 0;
  virtual std::optional<UploadLink> find_upload_link(std::string_view token_hash) = 0;
};

// A user's upload links (POST, GET and DELETE /upload-links).
class UploadLinks {
 public:
  virtual ~UploadLinks() = default;
  virtual void create_upload_link(const UploadLink& link, std::string_view token_hash) = 0;
  virtual std::vector<UploadLink> list_upload_links(std::int64_t user_id, std::int64_t limit) = 0;  // newest first
  virtual bool revoke_upload_link(std::string_view id, std::int64_t user_id, Micros now) = 0;  // false: not theirs, or revoked
};

// A change to a user: each field given is set.
struct UserChange {
  std::optional<std::optional<std::int64_t>> quota_bytes;  // the new quota; an empty one: the service's default
  std::optional<bool> disabled;
  std::optional<bool> is_admin;
};

// Managing users and their tokens: the CLI's user and token commands, the
// admin API, and the janitor finishing a user's deletion.
class Accounts {
 public:
  virtual ~Accounts() = default;
  virtual User create_user(std::string_view name, bool is_admin) = 0;  // db::Error(conflict) if the name is taken
  // Users by name, after `after` (empty: from the first), at most `limit`.
  virtual std::vector<User> list_users(std::string_view after, std::int64_t limit) = 0;
  virtual std::int64_t count_users() = 0;
  // The user after the change; nullopt if there is no such user (or it is being deleted).
  virtual std::optional<User> update_user(std::string_view name, const UserChange& change) = 0;
  bool set_user_disabled(std::string_view name, bool disabled) {
    UserChange change;
    change.disabled = disabled;
    return update_user(name, change).has_value();
  }
  bool set_user_quota(std::string_view name, std::optional<std::int64_t> quota_bytes) {
    UserChange change;
    change.quota_bytes.emplace(quota_bytes);
    return update_user(name, change).has_value();
  }

  // Deleting a user, in steps a crash cannot corrupt. First: the user is
  // marked and disabled, their files marked 'deleting' (as DELETE
  // /files/{id} does), their unfinished single-shot uploads failed and their
  // resumable ones expired, leaving what they stored to the janitor. Returns the user's id and how many files are now
  // being deleted; nullopt if there is no such user. Again on a user being
  // deleted: the same user, nothing more marked.
  struct DeletionStarted {
    std::int64_t user_id = 0;
    std::int64_t files = 0;
  };
  virtual std::optional<DeletionStarted> begin_user_deletion(std::string_view name, Micros now) = 0;
  // The last step, for a deletion or on its own: the user (and their tokens,
  // and their failed uploads that left nothing in the store) goes, only if
  // nothing else of theirs is left. True if the user is gone.
  virtual bool remove_user_if_empty(std::int64_t user_id) = 0;
  // The janitor's list: users being deleted.
  virtual std::vector<std::int64_t> users_being_deleted(std::int64_t limit) = 0;

  virtual void create_token(const ApiToken& token, std::string_view token_hash) = 0;
  virtual std::vector<ApiToken> list_tokens(std::optional<std::int64_t> user_id) = 0;
  virtual bool revoke_token(std::string_view token_id, Micros now) = 0;  // false if unknown or already revoked
};

// Users, their API tokens and their upload links, both ways.
class UserStore : public Identities, public Accounts, public UploadLinks {};

// The upload engine's: an upload's row from pending to complete or failed,
// and the quota it reserves on the way.
class UploadRecords {
 public:
  virtual ~UploadRecords() = default;
  // Reserves `bytes` more for a pending upload against its owner's quota (or
  // `default_quota` if the user has none; kNoQuota for none), atomically:
  // false if they do not fit, and then nothing is reserved. Completing,
  // failing and deleting an upload settle its owner's usage in the same
  // transaction as the row's change.
  virtual bool reserve_quota(std::string_view upload_id, std::int64_t user_id, std::int64_t bytes,
                             std::int64_t default_quota) = 0;
  // An upload's lifecycle: pending -> complete | failed. Both transitions only
  // apply to a pending row and return false otherwise.
  virtual void create_pending(const Upload& upload) = 0;
  // The same for an upload through `upload.upload_link_id`, which first
  // takes one file and `link_bytes` of the link, atomically: false (and no
  // row) when the link is expired, revoked or has no room for them. A
  // failing upload gives them back (mark_failed), a deleted file does not.
  virtual bool create_pending_through_link(const Upload& upload, std::int64_t link_bytes, Micros now) = 0;
  virtual std::optional<UploadLink> get_upload_link(std::string_view id) = 0;  // why a link refused, say
  // Size, type, sha256, completed_at; with leftovers `remain`, what other
  // writers left beside the object is listed for the janitor
  // (uploads_with_leftovers) until leftovers_removed.
  virtual bool mark_complete(const Upload& upload, StoreLeftovers leftovers) = 0;
  bool mark_complete(const Upload& upload) { return mark_complete(upload, StoreLeftovers::none); }
  // `remain` when the store could not be reached to remove what the upload
  // left there: uploads_with_leftovers lists it until the janitor has
  // removed them.
  virtual bool mark_failed(std::string_view upload_id, Micros now, StoreLeftovers leftovers) = 0;
  bool mark_failed(std::string_view upload_id, Micros now) { return mark_failed(upload_id, now, StoreLeftovers::none); }
  virtual void set_store_upload_id(std::string_view upload_id, std::string_view store_upload_id) = 0;
  virtual std::optional<Upload> get_upload(std::string_view upload_id) = 0;
  virtual bool delete_upload(std::string_view upload_id) = 0;  // false if there was no such row
};

// A resumable upload's progress row and its write lease: a pending row
// (create_pending) plus its progress (add_resumable); completed and failed
// like any other upload. The progress row goes when the upload's row does.
class ResumableRecords {
 public:
  virtual ~ResumableRecords() = default;
  virtual void add_resumable(const ResumableState& state) = 0;
  // create_pending and add_resumable at once: one write (one statement on
  // PostgreSQL), and no crash between them leaves a row without its progress.
  virtual void create_pending_resumable(const Upload& upload, const ResumableState& state) = 0;
  virtual std::optional<ResumableState> get_resumable(std::string_view upload_id) = 0;
  // Takes the write lease until `until` if its token is still `seen_token`
  // and it is free or lapsed at `now`; the new token is seen_token + 1.
  // False if another writer holds it, or anything changed since the caller
  // read `seen_token`.
  virtual bool take_lease(std::string_view upload_id, std::int64_t seen_token, Micros now, Micros until) = 0;
  // Records offset, length, store and hash state and expiry, under the lease
  // state.lease_token (held, or lapsed with nobody having taken it since),
  // extending it to state.lease_expires_at (none: released); the token
  // becomes state.lease_token + 1. False if the lease was lost or given up
  // (nothing recorded).
  virtual bool save_progress(const ResumableState& state) = 0;
  // Whether `token` is still the held lease's (nobody took it, it was not
  // given up): a read, for a writer's fence between its saves.
  virtual bool holds_lease(std::string_view upload_id, std::int64_t token) = 0;
  // Gives the lease up (token + 1), if `token` is still the current one.
  virtual void release_lease(std::string_view upload_id, std::int64_t token) = 0;
};

// What the files API lists and removes (with UploadRecords::get_upload and
// delete_upload).
class FileCatalog {
 public:
  virtual ~FileCatalog() = default;
  // Complete uploads as `listing` asks (see db/file_listing.hpp for the query).
  virtual std::vector<Upload> list_files(const FileListing& listing) = 0;
  // Deleting a complete upload, crash-safely: mark_deleting (complete ->
  // deleting; false if the row is not complete), remove the object, then
  // delete_upload. A deleting row is listed nowhere; its size stays in its
  // owner's usage until delete_upload.
  virtual bool mark_deleting(std::string_view upload_id) = 0;
  virtual std::int64_t count_uploads(UploadStatus status) = 0;
};

// What the janitor works through: what crashes, outages and expiry left.
class CleanupQueues {
 public:
  virtual ~CleanupQueues() = default;
  // Pending uploads created before `created_before`, oldest first, after the
  // row at `after` if given: after a crash, the ones whose process died (the
  // janitor cleans them up, a page at a time).
  virtual std::vector<Upload> stale_pending(Micros created_before, const std::optional<ListPosition>& after,
                                            std::int64_t limit) = 0;
  std::vector<Upload> stale_pending(Micros created_before, std::int64_t limit) {
    return stale_pending(created_before, std::nullopt, limit);
  }
  // Uploads whose store leftovers remain (failed ones: whatever they left;
  // complete ones: what other writers left beside the object), oldest
  // first, until leftovers_removed.
  virtual std::vector<Upload> uploads_with_leftovers(std::int64_t limit) = 0;
  virtual void leftovers_removed(std::string_view upload_id) = 0;
  // Rows a crash left 'deleting', oldest first (the janitor finishes them).
  virtual std::vector<Upload> deleting_uploads(std::int64_t limit) = 0;
  // Pending resumable uploads whose expiry has passed at `now`, not being
  // written: the janitor ends them.
  virtual std::vector<Upload> expired_resumable(Micros now, std::int64_t limit) = 0;
};

// Every upload concern of one database; each client uses its part.
class UploadStore : public UploadRecords, public ResumableRecords, public FileCatalog, public CleanupQueues {};

// A webhook delivery, as claimed: the event and the upload as the event saw
// it (see sql/schema/0012_webhooks).
struct WebhookDelivery {
  std::int64_t seq = 0;
  std::string event_id;  // webhook-id
  std::string endpoint;
  std::string event_type;  // "upload.completed", ...
  Micros created_at = 0;   // when it happened
  int attempts = 0;        // counting this one
  Upload upload;           // without its storage key
  std::string user_name;
  std::string metadata;  // tus Upload-Metadata as created; "" for none
};

enum class DeliveryStatus { pending, delivered, dead };
std::string_view to_string(DeliveryStatus status);
std::optional<DeliveryStatus> delivery_status_from(std::string_view text);

// A delivery as operators see it (webhook list, GET /admin/webhooks).
struct DeliveryRecord {
  std::int64_t seq = 0;
  std::string event_id;
  std::string endpoint;
  std::string event_type;
  std::string upload_id;
  DeliveryStatus status = DeliveryStatus::pending;
  int attempts = 0;
  Micros created_at = 0;
  Micros next_attempt_at = 0;
  std::string last_error;
  std::optional<Micros> delivered_at;
};

struct DisabledEndpoint {
  std::string url;
  Micros disabled_at = 0;
  std::string reason;
};

// Takes deliveries this process claimed as it recorded or released them
// (WebhookOutbox::hand_claimed_to). Called on the writing thread: it must
// not block.
using DeliveryTaker = std::function<void(std::vector<WebhookDelivery>)>;

// The webhook outbox. The upload lifecycle's writes (create_pending,
// create_pending_through_link, mark_complete, mark_failed, delete_upload)
// record their events in their own transaction; deliverers on any instance
// claim them from here.
class WebhookOutbox {
 public:
  virtual ~WebhookOutbox() = default;
  // What is recorded from now on: each of `event_types` ("upload.created",
  // "upload.completed", "upload.failed", "upload.deleted", "upload_link.used")
  // once per endpoint. Set before the first upload; none records nothing.
  virtual void record_events(const std::vector<std::string>& endpoints, const std::vector<std::string>& event_types) = 0;
  // A deliverer in this process: from now on, a delivery recorded here (or
  // released here by the end of the one it waited for) is claimed for
  // `lease` in the same transaction and handed to `take` once that commits,
  // so it goes out at once, with no claim to wait for. One `take` drops (or
  // this process dies with) comes round again when its lease runs out.
  virtual void hand_claimed_to(DeliveryTaker take, Micros lease) = 0;
  // Up to `limit` deliveries due at `now`, claimed until `claimed_until`
  // (past it another deliverer may claim them again), attempts counted.
  // Not those held: to a disabled endpoint, or about an upload while an
  // earlier delivery about it to the same endpoint is pending.
  virtual std::vector<WebhookDelivery> claim_deliveries(Micros now, Micros claimed_until, std::int64_t limit) = 0;
  // Handed over (hand_claimed_to) to a deliverer with no room for them:
  // due again now, for any deliverer's claim.
  virtual void unclaim_deliveries(const std::vector<std::int64_t>& seqs, Micros now) = 0;
  // Delivered (a 2xx), several at once: one statement for a batch. What
  // each held about its upload is released.
  virtual void deliveries_succeeded(const std::vector<std::int64_t>& seqs, Micros now) = 0;
  void delivery_succeeded(std::int64_t seq, Micros now) { deliveries_succeeded({seq}, now); }
  // Tried again at `next_attempt_at`; none: dead (and what it held goes).
  virtual void delivery_failed(std::int64_t seq, std::optional<Micros> next_attempt_at, std::string_view error) = 0;
  // After a 410 Gone: nothing more is sent to `url` until it is enabled.
  virtual void disable_endpoint(std::string_view url, Micros now, std::string_view reason) = 0;
  // Releases every held delivery whose wait is over; returns how many. The
  // calls above release what they end; this catches a delivery recorded
  // while the one it waited for was being marked delivered. Deliverers call
  // it now and then.
  virtual std::int64_t release_held_deliveries() = 0;
  // Delivered deliveries older than `before` go; returns how many.
  virtual std::int64_t prune_deliveries(Micros delivered_before, std::int64_t limit) = 0;
  virtual std::int64_t count_deliveries(DeliveryStatus status) = 0;

  // For operators. Newest first, in `status` (none: any), before the
  // delivery `before_seq` (none: from the newest).
  virtual std::vector<DeliveryRecord> list_deliveries(std::optional<DeliveryStatus> status,
                                                      std::optional<std::int64_t> before_seq, std::int64_t limit) = 0;
  // The event's undelivered deliveries (or, with no id, every dead one) due
  // again at `now`; returns how many.
  virtual std::int64_t retry_deliveries(const std::optional<std::string>& event_id, Micros now) = 0;
  virtual bool enable_endpoint(std::string_view url) = 0;  // false if it was not disabled
  virtual std::vector<DisabledEndpoint> disabled_endpoints() = 0;
};

// What instances sharing one database coordinate through: its schema and locks.
class Coordination {
 public:
  virtual ~Coordination() = default;
  // The named lock if no other holder (this process or another instance on
  // the same database) has it; nullptr otherwise. Never waits.
  virtual std::unique_ptr<ExclusiveLock> try_lock(std::string_view name) = 0;
  // Applies the migrations not yet applied; returns how many ran.
  virtual int migrate() = 0;
  // The secret called `name` that every instance on this database shares:
  // `candidate` if there was none yet (the first caller's wins a race).
  virtual std::string shared_secret(std::string_view name, std::string_view candidate) = 0;
};

// The connection pool as the metrics see it.
struct PoolState {
  std::size_t in_use = 0;
  std::size_t idle = 0;
  std::size_t waiting = 0;  // threads waiting for a connection
};

// One database holds them all; consumers take the part they need.
class MetadataStore : public UserStore, public UploadStore, public WebhookOutbox, public Coordination {
 public:
  // For logs: where the data is, never a password.
  virtual std::string describe() const = 0;
  // A trivial query (GET /readyz): returns, or throws saying why not.
  // Blocks: call it on the blocking pool.
  virtual void check_ready() = 0;
  virtual PoolState pool_state() const = 0;
};

// Opens the backend named by the URL: sqlite:///abs/path, sqlite://./rel/path,
// postgres://user:pass@host:port/db?sslmode=... (or postgresql://, or a libpq
// keyword string "host=... dbname=..."), with at most `pool_size` connections;
// a PostgreSQL query that gets no answer within `timeout` fails (SQLite, a
// local file, has no such wait). Throws std::invalid_argument for an unknown
// scheme, std::runtime_error when the database cannot be opened.
std::unique_ptr<MetadataStore> open_metadata_store(std::string_view url, unsigned pool_size,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

// For a sqlite:// URL whose file does not exist (opening it would make a new,
// empty database): the absolute path; nullopt otherwise.
std::optional<std::filesystem::path> missing_sqlite_file(std::string_view url);

// The numbered schema steps for a dialect ("sqlite", "postgres"), in order:
// sql/schema/NNNN_name.<dialect>.sql if present, else sql/schema/NNNN_name.sql.
struct Migration {
  int version;
  std::string name;
  std::string_view sql;
};
std::vector<Migration> migrations_for(std::string_view dialect);

// The text of sql/queries/<name>.sql (or its .<dialect>.sql variant).
std::string_view query_for(std::string_view name, std::string_view dialect);

}  // namespace s3up::db
