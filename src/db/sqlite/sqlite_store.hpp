#pragma once
// The embedded default metadata store: SQLite in WAL mode.
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "db/metadata_store.hpp"
#include "db/write_batcher.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace s3up::db {

class SqliteStore final : public MetadataStore {
 public:
  // Opens (creating if needed, with its parent directory) the database file
  // with `pool_size` connections. WAL lets readers run beside the one writer.
  SqliteStore(const std::string& path, unsigned pool_size);
  ~SqliteStore() override;

  std::string describe() const override { return "sqlite://" + path_; }
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

  struct Connection {
    sqlite3* db = nullptr;
    std::unordered_map<std::string, sqlite3_stmt*> statements;  // by query name
  };

 private:
  class Lease;
  Lease acquire();
  // The first `limit` upload rows of a query whose one parameter is the limit.
  std::vector<Upload> first_uploads(std::string_view query, std::int64_t limit);

  std::string path_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<Connection*> idle_;
  std::vector<Connection> connections_;
  // The upload lifecycle's writes, group-committed: each is a statement run
  // on the batch's connection, returning the rows it changed.
  using Write = std::function<int(Connection&)>;
  std::unique_ptr<WriteBatcher<Write>> writes_;
};

}  // namespace s3up::db
