#pragma once
// The production metadata store: PostgreSQL through libpq.
//
// Like every MetadataStore it is synchronous: the server calls it from the
// blocking thread pool (util::run_blocking), never from an I/O thread. We
// chose that over libpq's non-blocking API driven by Asio because the pool
// already bounds how many queries run at once (one connection per blocking
// thread at most), the CLI and tests use the same code without an event loop,
// and a query's thread hop costs microseconds against its round trip.
//
// Connections are opened on demand up to `pool_size`, each with its prepared
// statements. A connection the server closed (restart, failover, idle
// timeout) is noticed before it is used and replaced; one that breaks during
// a query fails that call with database_unavailable (503) and is dropped, so
// the next call connects afresh: no restart of the service.
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "db/metadata_store.hpp"
#include "db/write_batcher.hpp"

namespace s3up::db {

class PostgresStore final : public MetadataStore {
 public:
  // `conninfo`: a postgres:// or postgresql:// URL or a libpq keyword string
  // ("host=... dbname=..."); what it leaves out comes from the PG*
  // environment (PGHOST, PGUSER, PGPASSWORD, PGSSLMODE, ...) as libpq does.
  // Connects once to fail early with a clear message.
  PostgresStore(std::string conninfo, unsigned pool_size);
  ~PostgresStore() override;

  std::string describe() const override { return description_; }
  int migrate() override;
  std::unique_ptr<ExclusiveLock> try_lock(std::string_view name) override;
  std::string shared_secret(std::string_view name, std::string_view candidate) override;
  User create_user(std::string_view name, bool is_admin) override;
  std::optional<User> find_user(std::string_view name) override;
  std::optional<User> get_user(std::int64_t id) override;
  std::vector<User> list_users() override;
  std::int64_t count_users() override;
  void create_token(const ApiToken& token, std::string_view token_hash) override;
  std::optional<TokenOwner> find_token(std::string_view token_hash) override;
  std::vector<ApiToken> list_tokens(std::optional<std::int64_t> user_id) override;
  bool revoke_token(std::string_view token_id, Micros now) override;
  void create_pending(const Upload& upload) override;
  bool mark_complete(const Upload& upload) override;
  using UploadStore::mark_failed;
  bool mark_failed(std::string_view upload_id, Micros now, StoreLeftovers leftovers) override;
  std::vector<Upload> failed_with_leftovers(std::int64_t limit) override;
  void leftovers_removed(std::string_view upload_id) override;
  void set_store_upload_id(std::string_view upload_id, std::string_view store_upload_id) override;
  std::optional<Upload> get_upload(std::string_view upload_id) override;
  using UploadStore::stale_pending;
  std::vector<Upload> stale_pending(Micros created_before, const std::optional<ListPosition>& after,
                                    std::int64_t limit) override;
  std::int64_t count_uploads(UploadStatus status) override;
  bool set_user_disabled(std::string_view name, bool disabled) override;
  bool set_user_quota(std::string_view name, std::optional<std::int64_t> quota_bytes) override;
  bool reserve_quota(std::string_view upload_id, std::int64_t user_id, std::int64_t bytes,
                     std::int64_t default_quota) override;
  std::vector<Upload> list_files(std::optional<std::int64_t> user_id, const std::optional<ListPosition>& after,
                                 std::int64_t limit) override;
  bool delete_upload(std::string_view upload_id) override;
  bool mark_deleting(std::string_view upload_id) override;
  std::vector<Upload> deleting_uploads(std::int64_t limit) override;
  void add_resumable(const ResumableState& state) override;
  std::optional<ResumableState> get_resumable(std::string_view upload_id) override;
  bool take_lease(std::string_view upload_id, std::int64_t seen_token, Micros now, Micros until) override;
  bool save_progress(const ResumableState& state, Micros now) override;
  void release_lease(std::string_view upload_id, std::int64_t token) override;
  std::vector<Upload> expired_resumable(Micros now, std::int64_t limit) override;

  class Connection;

 private:
  class Lease;
  Lease acquire();
  // The first `limit` upload rows of a query whose one parameter is the limit.
  std::vector<Upload> first_uploads(std::string_view query, std::int64_t limit);
  void release(std::unique_ptr<Connection> c);

  std::string conninfo_;
  std::string description_;  // postgres://user@host:port/db, from the first connection
  unsigned pool_size_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  unsigned open_ = 0;  // idle plus leased
  // The upload lifecycle's writes, group-committed: a batch goes to the
  // server as one pipelined round trip (BEGIN, the statements, COMMIT).
  struct Write;
  std::unique_ptr<WriteBatcher<Write>> writes_;
};

}  // namespace s3up::db
