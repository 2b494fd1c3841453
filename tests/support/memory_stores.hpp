#pragma once
// In-memory stand-ins for the object store and the metadata store, for
// in-process tests of handlers and upload sessions (no socket, no disk, no
// database). Each can be told to fail at one step, so every failure path of
// a session can be driven. The integration tests use the real ones.
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

#include "db/metadata_store.hpp"
#include "storage/object_store.hpp"
#include "util/crypto.hpp"

namespace s3up::testing {

// Objects in a map. With `store_upload_ids`, a writer reports an id of its
// own when its first bytes arrive (as S3's multipart uploads do); with
// `blocking_commits`, writers offer storage::BlockingCommit (as local disk does).
class MemoryObjectStore final : public storage::ObjectStore, public storage::Recovery {
 public:
  struct Failures {
    bool open = false;
    std::optional<std::uint64_t> write_after;  // a write that would pass this many bytes fails
    bool commit = false;
    bool remove = false;
  };

  bool store_upload_ids = false;
  bool blocking_commits = false;
  Failures fail;
  std::atomic<int> aborts{0};

  std::optional<std::string> object(const std::string& key) const {
    std::lock_guard lock(mutex_);
    const auto it = objects_.find(key);
    return it == objects_.end() ? std::nullopt : std::optional(it->second);
  }
  std::size_t object_count() const {
    std::lock_guard lock(mutex_);
    return objects_.size();
  }
  void put(const std::string& key, std::string bytes) {
    std::lock_guard lock(mutex_);
    objects_[key] = std::move(bytes);
  }

  using ObjectStore::open_writer;
  boost::asio::awaitable<std::unique_ptr<storage::ObjectWriter>> open_writer(
      const std::string& key, const storage::ObjectMetadata&, const storage::StoreUploadStarted& started) override {
    if (fail.open) throw storage::Error(storage::Failure::unavailable, "open refused (test)");
    co_return std::make_unique<Writer>(*this, key, started);
  }

  boost::asio::awaitable<std::unique_ptr<storage::ObjectReader>> open_reader(const std::string& key,
                                                                             std::uint64_t offset,
                                                                             std::uint64_t length) override {
    auto bytes = object(key);
    if (!bytes) throw storage::Error(storage::Failure::not_found, "no such object");
    const auto from = std::min<std::uint64_t>(offset, bytes->size());
    co_return std::make_unique<Reader>(bytes->substr(from, length));
  }

  boost::asio::awaitable<void> remove(const std::string& key) override {
    if (fail.remove) throw storage::Error(storage::Failure::unavailable, "remove refused (test)");
    std::lock_guard lock(mutex_);
    objects_.erase(key);
    co_return;
  }

  std::string describe() const override { return "memory"; }
  std::string_view kind() const override { return "memory"; }
  boost::asio::awaitable<void> check_ready() override { co_return; }
  Recovery* recovery() override { return this; }

  boost::asio::awaitable<void> discard_unfinished(const std::string& key, const std::string&) override {
    co_await remove(key);
  }
  boost::asio::awaitable<void> discard_beside(const std::string&) override { co_return; }  // nothing is
  boost::asio::awaitable<std::optional<storage::ObjectInfo>> stat(const std::string& key) override {
    auto bytes = object(key);
    if (!bytes) co_return std::nullopt;
    co_return storage::ObjectInfo{bytes->size(), ""};
  }

 private:
  class Writer final : public storage::ObjectWriter, public storage::BlockingCommit {
   public:
    Writer(MemoryObjectStore& store, std::string key, storage::StoreUploadStarted started)
        : store_(store), key_(std::move(key)), started_(std::move(started)) {}
    boost::asio::awaitable<void> write(std::span<const char> data) override {
      if (store_.fail.write_after && bytes_.size() + data.size() > *store_.fail.write_after) {
        throw storage::Error(storage::Failure::unavailable, "write refused (test)");
      }
      if (store_.store_upload_ids && !announced_) {
        announced_ = true;
        const std::string id = "store-upload-" + key_;
        if (started_) co_await started_(id);
      }
      bytes_.append(data.data(), data.size());
    }
    boost::asio::awaitable<storage::CommittedObject> commit() override { co_return commit_here(); }
    BlockingCommit* blocking_commit() override { return store_.blocking_commits ? this : nullptr; }
    boost::asio::awaitable<void> prepare() override { co_return; }
    storage::CommittedObject commit_here() override {
      if (store_.fail.commit) throw storage::Error(storage::Failure::unavailable, "commit refused (test)");
      store_.put(key_, bytes_);
      return storage::CommittedObject{bytes_.size(), util::sha256_hex(bytes_), ""};
    }
    boost::asio::awaitable<void> abort() override {
      ++store_.aborts;
      bytes_.clear();
      co_return;
    }

   private:
    MemoryObjectStore& store_;
    std::string key_;
    storage::StoreUploadStarted started_;
    std::string bytes_;
    bool announced_ = false;
  };

  class Reader final : public storage::ObjectReader {
   public:
    explicit Reader(std::string bytes) : bytes_(std::move(bytes)) {}
    boost::asio::awaitable<std::span<const char>> read_some() override {
      const auto n = std::min<std::size_t>(bytes_.size() - at_, 1000);  // small pieces: several reads
      std::span<const char> piece(bytes_.data() + at_, n);
      at_ += n;
      co_return piece;
    }

   private:
    std::string bytes_;
    std::size_t at_ = 0;
  };

  mutable std::mutex mutex_;
  std::map<std::string, std::string> objects_;
};

// Users, tokens and upload rows in maps, with the same rules the real
// backends keep (transitions only from pending, quota reservations).
class MemoryMetadata final : public db::MetadataStore {
 public:
  struct Failures {
    bool create_pending = false;
    bool mark_complete = false;            // throws, as a database that went away mid-commit
    bool mark_complete_cancelled = false;  // returns false: the row is no longer pending
  };
  Failures fail;

  std::string describe() const override { return "memory"; }
  void check_ready() override {}
  db::PoolState pool_state() const override { return {}; }
  std::unique_ptr<db::ExclusiveLock> try_lock(std::string_view) override {
    return std::make_unique<db::ExclusiveLock>();
  }
  int migrate() override { return 0; }
  std::string shared_secret(std::string_view name, std::string_view candidate) override {
    std::lock_guard lock(mutex_);
    return secrets_.emplace(std::string(name), std::string(candidate)).first->second;
  }

  db::User create_user(std::string_view name, bool is_admin) override {
    std::lock_guard lock(mutex_);
    db::User u;
    u.id = static_cast<std::int64_t>(users_.size()) + 1;
    u.name = std::string(name);
    u.is_admin = is_admin;
    users_[u.id] = u;
    return u;
  }
  std::optional<db::User> find_user(std::string_view name) override {
    std::lock_guard lock(mutex_);
    for (const auto& [id, u] : users_) {
      if (u.name == name) return u;
    }
    return std::nullopt;
  }
  std::optional<db::User> external_user(std::string_view issuer, std::string_view name, db::Micros now) override {
    std::lock_guard lock(mutex_);
    for (const auto& [id, u] : users_) {
      if (u.name == name) return u.issuer == issuer ? std::optional(u) : std::nullopt;
    }
    db::User u{.id = static_cast<std::int64_t>(users_.size()) + 1, .name = std::string(name), .created_at = now,
               .issuer = std::string(issuer)};
    users_[u.id] = u;
    return u;
  }
  std::optional<db::User> get_user(std::int64_t id) override {
    std::lock_guard lock(mutex_);
    const auto it = users_.find(id);
    if (it == users_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<db::User> list_users(std::string_view after, std::int64_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<db::User> out;
    for (const auto& [id, u] : users_) {
      if (u.name > after) out.push_back(u);
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    if (static_cast<std::int64_t>(out.size()) > limit) out.resize(static_cast<std::size_t>(limit));
    return out;
  }
  std::int64_t count_users() override {
    std::lock_guard lock(mutex_);
    return static_cast<std::int64_t>(users_.size());
  }
  std::optional<db::User> update_user(std::string_view name, const db::UserChange& change) override {
    std::lock_guard lock(mutex_);
    for (auto& [id, u] : users_) {
      if (u.name != name || u.deleting) continue;
      if (change.quota_bytes) u.quota_bytes = *change.quota_bytes;
      if (change.disabled) u.disabled = *change.disabled;
      if (change.is_admin) u.is_admin = *change.is_admin;
      return u;
    }
    return std::nullopt;
  }
  // Deleting users is the real stores' business (metadata_store_test.cpp).
  std::optional<DeletionStarted> begin_user_deletion(std::string_view, db::Micros) override { return std::nullopt; }
  bool remove_user_if_empty(std::int64_t) override { return false; }
  std::vector<std::int64_t> users_being_deleted(std::int64_t) override { return {}; }
  void create_token(const db::ApiToken& token, std::string_view hash) override {
    std::lock_guard lock(mutex_);
    tokens_[std::string(hash)] = token;
  }
  std::optional<db::TokenOwner> find_token(std::string_view hash) override {
    std::lock_guard lock(mutex_);
    const auto it = tokens_.find(std::string(hash));
    if (it == tokens_.end()) return std::nullopt;
    return db::TokenOwner{it->second, users_.at(it->second.user_id)};
  }
  std::vector<db::ApiToken> list_tokens(std::optional<std::int64_t>) override { return {}; }
  bool revoke_token(std::string_view, db::Micros) override { return false; }

  bool reserve_quota(std::string_view id, std::int64_t user_id, std::int64_t bytes,
                     std::int64_t default_quota) override {
    std::lock_guard lock(mutex_);
    auto& user = users_.at(user_id);
    const std::int64_t quota = user.quota_bytes.value_or(default_quota);
    if (user.used_bytes + bytes > quota) return false;
    user.used_bytes += bytes;
    reserved_[std::string(id)] += bytes;
    return true;
  }
  void create_pending(const db::Upload& upload) override {
    if (fail.create_pending) throw db::Error(db::Failure::unavailable, "the database is unavailable (test)");
    std::lock_guard lock(mutex_);
    uploads_[upload.id] = upload;
  }
  // Upload links are the real stores' business (metadata_store_test.cpp).
  bool create_pending_through_link(const db::Upload&, std::int64_t, db::Micros) override { return false; }
  std::optional<db::UploadLink> find_upload_link(std::string_view) override { return std::nullopt; }
  void create_upload_link(const db::UploadLink&, std::string_view) override {}
  std::optional<db::UploadLink> get_upload_link(std::string_view) override { return std::nullopt; }
  std::vector<db::UploadLink> list_upload_links(std::int64_t, std::int64_t) override { return {}; }
  bool revoke_upload_link(std::string_view, std::int64_t, db::Micros) override { return false; }
  bool mark_complete(const db::Upload& upload, db::StoreLeftovers) override {
    if (fail.mark_complete) throw db::Error(db::Failure::unavailable, "the database is unavailable (test)");
    if (fail.mark_complete_cancelled) return false;
    std::lock_guard lock(mutex_);
    auto& row = uploads_.at(upload.id);
    if (row.status != db::UploadStatus::pending) return false;
    const auto store_upload_id = row.store_upload_id;
    row = upload;
    row.store_upload_id = store_upload_id;
    row.status = db::UploadStatus::complete;
    settle(upload.id, upload.user_id, static_cast<std::int64_t>(upload.file_size));
    return true;
  }
  using UploadRecords::mark_failed;
  bool mark_failed(std::string_view id, db::Micros, db::StoreLeftovers leftovers) override {
    std::lock_guard lock(mutex_);
    auto& row = uploads_.at(std::string(id));
    if (row.status != db::UploadStatus::pending) return false;
    row.status = db::UploadStatus::failed;
    if (leftovers == db::StoreLeftovers::remain) with_leftovers_.insert(row.id);
    settle(row.id, row.user_id, 0);
    return true;
  }
  std::vector<db::Upload> uploads_with_leftovers(std::int64_t) override {
    std::lock_guard lock(mutex_);
    std::vector<db::Upload> out;
    for (const auto& id : with_leftovers_) out.push_back(uploads_.at(id));
    return out;
  }
  void leftovers_removed(std::string_view id) override {
    std::lock_guard lock(mutex_);
    with_leftovers_.erase(std::string(id));
  }
  void set_store_upload_id(std::string_view id, std::string_view store_upload_id) override {
    std::lock_guard lock(mutex_);
    uploads_.at(std::string(id)).store_upload_id = std::string(store_upload_id);
  }
  std::optional<db::Upload> get_upload(std::string_view id) override {
    std::lock_guard lock(mutex_);
    const auto it = uploads_.find(std::string(id));
    return it == uploads_.end() ? std::nullopt : std::optional(it->second);
  }
  using CleanupQueues::stale_pending;
  std::vector<db::Upload> stale_pending(db::Micros, const std::optional<db::ListPosition>&, std::int64_t) override {
    return {};
  }
  // The webhook outbox is the databases' (tests/unit/metadata_store_test.cpp,
  // tests/tus-client/webhooks.test.mjs); this store records no events.
  void record_events(const std::vector<std::string>&, const std::vector<std::string>&) override {}
  void hand_claimed_to(db::DeliveryTaker, db::Micros) override {}
  std::vector<db::WebhookDelivery> claim_deliveries(db::Micros, db::Micros, std::int64_t) override { return {}; }
  void unclaim_deliveries(const std::vector<std::int64_t>&, db::Micros) override {}
  void deliveries_succeeded(const std::vector<std::int64_t>&, db::Micros) override {}
  void delivery_failed(std::int64_t, std::optional<db::Micros>, std::string_view) override {}
  void disable_endpoint(std::string_view, db::Micros, std::string_view) override {}
  std::int64_t prune_deliveries(db::Micros, std::int64_t) override { return 0; }
  std::int64_t count_deliveries(db::DeliveryStatus) override { return 0; }
  std::vector<db::DeliveryRecord> list_deliveries(std::optional<db::DeliveryStatus>, std::optional<std::int64_t>,
                                                  std::int64_t) override {
    return {};
  }
  std::int64_t retry_deliveries(const std::optional<std::string>&, db::Micros) override { return 0; }
  bool enable_endpoint(std::string_view) override { return false; }
  std::int64_t release_held_deliveries() override { return 0; }
  std::vector<db::DisabledEndpoint> disabled_endpoints() override { return {}; }
  std::int64_t count_uploads(db::UploadStatus status) override {
    std::lock_guard lock(mutex_);
    std::int64_t n = 0;
    for (const auto& [id, u] : uploads_) n += u.status == status;
    return n;
  }
  // Only what the unit tests that use it need: an owner's or everyone's
  // first page, in no particular order.
  std::vector<db::Upload> list_files(const db::FileListing& listing) override {
    std::lock_guard lock(mutex_);
    std::vector<db::Upload> out;
    for (const auto& [id, u] : uploads_) {
      if (u.status == db::UploadStatus::complete && (!listing.user_id || u.user_id == *listing.user_id)) out.push_back(u);
    }
    if (static_cast<std::int64_t>(out.size()) > listing.limit) out.resize(static_cast<std::size_t>(listing.limit));
    return out;
  }
  bool delete_upload(std::string_view id) override {
    std::lock_guard lock(mutex_);
    const auto it = uploads_.find(std::string(id));
    if (it == uploads_.end()) return false;
    if (it->second.status == db::UploadStatus::complete || it->second.status == db::UploadStatus::deleting) {
      users_.at(it->second.user_id).used_bytes -= static_cast<std::int64_t>(it->second.file_size);
    }
    uploads_.erase(it);
    return true;
  }
  bool mark_deleting(std::string_view id) override {
    std::lock_guard lock(mutex_);
    auto& row = uploads_.at(std::string(id));
    if (row.status != db::UploadStatus::complete) return false;
    row.status = db::UploadStatus::deleting;
    return true;
  }
  std::vector<db::Upload> deleting_uploads(std::int64_t) override { return {}; }

  void add_resumable(const db::ResumableState& state) override {
    std::lock_guard lock(mutex_);
    resumable_[state.upload_id] = state;
  }
  void create_pending_resumable(const db::Upload& upload, const db::ResumableState& state) override {
    create_pending(upload);
    add_resumable(state);
  }
  std::optional<db::ResumableState> get_resumable(std::string_view id) override {
    std::lock_guard lock(mutex_);
    const auto it = resumable_.find(std::string(id));
    if (it == resumable_.end()) return std::nullopt;
    auto state = it->second;
    state.reserved_bytes = static_cast<std::uint64_t>(reserved_[state.upload_id]);
    return state;
  }
  bool take_lease(std::string_view id, std::int64_t seen, db::Micros now, db::Micros until) override {
    std::lock_guard lock(mutex_);
    auto& r = resumable_.at(std::string(id));
    if (r.lease_token != seen || (r.lease_expires_at && *r.lease_expires_at > now)) return false;
    r.lease_token = seen + 1;
    r.lease_expires_at = until;
    return true;
  }
  bool holds_lease(std::string_view id, std::int64_t token) override {
    std::lock_guard lock(mutex_);
    const auto found = resumable_.find(std::string(id));
    return found != resumable_.end() && found->second.lease_token == token && found->second.lease_expires_at;
  }
  bool save_progress(const db::ResumableState& state) override {
    std::lock_guard lock(mutex_);
    auto& r = resumable_.at(state.upload_id);
    if (r.lease_token != state.lease_token || !r.lease_expires_at) return false;
    r.lease_token = state.lease_token + 1;
    r.offset = state.offset;
    r.upload_length = state.upload_length;
    r.store_state = state.store_state;
    r.hash_state = state.hash_state;
    r.expires_at = state.expires_at;
    r.lease_expires_at = state.lease_expires_at;
    return true;
  }
  void release_lease(std::string_view id, std::int64_t token) override {
    std::lock_guard lock(mutex_);
    auto& r = resumable_.at(std::string(id));
    if (r.lease_token == token) r.lease_expires_at.reset();
  }
  std::vector<db::Upload> expired_resumable(db::Micros, std::int64_t) override { return {}; }

  std::int64_t used_bytes(std::int64_t user_id) {
    std::lock_guard lock(mutex_);
    return users_.at(user_id).used_bytes;
  }
  // Every upload row, whatever its status (tests look one up mid-upload).
  std::vector<db::Upload> all_uploads() {
    std::lock_guard lock(mutex_);
    std::vector<db::Upload> out;
    for (const auto& [id, u] : uploads_) out.push_back(u);
    return out;
  }

 private:
  // An upload leaves pending: its reservation becomes its size (or nothing).
  void settle(const std::string& id, std::int64_t user_id, std::int64_t keep) {
    auto& user = users_.at(user_id);
    user.used_bytes += keep - reserved_[id];
    reserved_.erase(id);
  }

  std::mutex mutex_;
  std::map<std::int64_t, db::User> users_;
  std::map<std::string, db::ApiToken> tokens_;
  std::map<std::string, db::Upload> uploads_;
  std::set<std::string> with_leftovers_;  // failed uploads whose store leftovers remain
  std::map<std::string, std::int64_t> reserved_;
  std::map<std::string, db::ResumableState> resumable_;
  std::map<std::string, std::string> secrets_;
};

}  // namespace s3up::testing
