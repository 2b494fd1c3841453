#include "db/sqlite/sqlite_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "db/file_listing.hpp"
#include "db/outbox.hpp"
#include "db/query_metrics.hpp"
#include "db/rows.hpp"
#include "db/write_batcher.hpp"

namespace s3up::db {

class SqliteStore final : public MetadataStore {
 public:
  // Opens (creating if needed, with its parent directory) the database file
  // with `pool_size` connections. WAL lets readers run beside the one writer.
  SqliteStore(const std::string& path, unsigned pool_size);
  ~SqliteStore() override;

  std::string describe() const override { return "sqlite://" + path_; }
  void check_ready() override;
  PoolState pool_state() const override;
  int migrate() override;
  std::unique_ptr<ExclusiveLock> try_lock(std::string_view name) override;
  std::string shared_secret(std::string_view name, std::string_view candidate) override;
  User create_user(std::string_view name, bool is_admin) override;
  std::optional<User> find_user(std::string_view name) override;
  std::optional<User> external_user(std::string_view issuer, std::string_view name, Micros now) override;
  std::optional<User> get_user(std::int64_t id) override;
  std::vector<User> list_users(std::string_view after, std::int64_t limit) override;
  std::int64_t count_users() override;
  void create_token(const ApiToken& token, std::string_view token_hash) override;
  std::optional<TokenOwner> find_token(std::string_view token_hash) override;
  std::vector<ApiToken> list_tokens(std::optional<std::int64_t> user_id) override;
  bool revoke_token(std::string_view token_id, Micros now) override;
  void create_pending(const Upload& upload) override;
  bool create_pending_through_link(const Upload& upload, std::int64_t link_bytes, Micros now) override;
  std::optional<UploadLink> find_upload_link(std::string_view token_hash) override;
  void create_upload_link(const UploadLink& link, std::string_view token_hash) override;
  std::optional<UploadLink> get_upload_link(std::string_view id) override;
  std::vector<UploadLink> list_upload_links(std::int64_t user_id, std::int64_t limit) override;
  bool revoke_upload_link(std::string_view id, std::int64_t user_id, Micros now) override;
  bool mark_complete(const Upload& upload, StoreLeftovers leftovers) override;
  using UploadRecords::mark_failed;
  bool mark_failed(std::string_view upload_id, Micros now, StoreLeftovers leftovers) override;
  std::vector<Upload> uploads_with_leftovers(std::int64_t limit) override;
  void leftovers_removed(std::string_view upload_id) override;
  void set_store_upload_id(std::string_view upload_id, std::string_view store_upload_id) override;
  std::optional<Upload> get_upload(std::string_view upload_id) override;
  using CleanupQueues::stale_pending;
  std::vector<Upload> stale_pending(Micros created_before, const std::optional<ListPosition>& after,
                                    std::int64_t limit) override;
  std::int64_t count_uploads(UploadStatus status) override;
  std::optional<User> update_user(std::string_view name, const UserChange& change) override;
  std::optional<DeletionStarted> begin_user_deletion(std::string_view name, Micros now) override;
  bool remove_user_if_empty(std::int64_t user_id) override;
  std::vector<std::int64_t> users_being_deleted(std::int64_t limit) override;
  bool reserve_quota(std::string_view upload_id, std::int64_t user_id, std::int64_t bytes,
                     std::int64_t default_quota) override;
  std::vector<Upload> list_files(const FileListing& listing) override;
  bool delete_upload(std::string_view upload_id) override;
  bool mark_deleting(std::string_view upload_id) override;
  std::vector<Upload> deleting_uploads(std::int64_t limit) override;
  void add_resumable(const ResumableState& state) override;
  void create_pending_resumable(const Upload& upload, const ResumableState& state) override;
  std::optional<ResumableState> get_resumable(std::string_view upload_id) override;
  bool take_lease(std::string_view upload_id, std::int64_t seen_token, Micros now, Micros until) override;
  bool holds_lease(std::string_view upload_id, std::int64_t token) override;
  bool save_progress(const ResumableState& state) override;
  void release_lease(std::string_view upload_id, std::int64_t token) override;
  std::vector<Upload> expired_resumable(Micros now, std::int64_t limit) override;
  void record_events(const std::vector<std::string>& endpoints, const std::vector<std::string>& event_types) override {
    events_.set(endpoints, event_types);
  }
  void hand_claimed_to(DeliveryTaker take, Micros lease) override { events_.hand_to(std::move(take), lease); }
  std::vector<WebhookDelivery> claim_deliveries(Micros now, Micros claimed_until, std::int64_t limit) override;
  void unclaim_deliveries(const std::vector<std::int64_t>& seqs, Micros now) override;
  void deliveries_succeeded(const std::vector<std::int64_t>& seqs, Micros now) override;
  void delivery_failed(std::int64_t seq, std::optional<Micros> next_attempt_at, std::string_view error) override;
  void disable_endpoint(std::string_view url, Micros now, std::string_view reason) override;
  std::int64_t prune_deliveries(Micros delivered_before, std::int64_t limit) override;
  std::int64_t count_deliveries(DeliveryStatus status) override;
  std::vector<DeliveryRecord> list_deliveries(std::optional<DeliveryStatus> status,
                                              std::optional<std::int64_t> before_seq, std::int64_t limit) override;
  std::int64_t retry_deliveries(const std::optional<std::string>& event_id, Micros now) override;
  bool enable_endpoint(std::string_view url) override;
  std::int64_t release_held_deliveries() override;
  std::vector<DisabledEndpoint> disabled_endpoints() override;

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
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::size_t waiting_ = 0;  // in acquire()
  std::vector<Connection*> idle_;
  std::vector<Connection> connections_;
  // The upload lifecycle's writes, group-committed: each is a statement run
  // on the batch's connection, returning the rows it changed.
  using Write = std::function<int(Connection&)>;
  std::unique_ptr<WriteBatcher<Write>> writes_;
  EventRecording events_;
  // Inside a lifecycle write: its event, for the endpoints that take it.
  // Records `event` in the caller's transaction; what it claims for this
  // process's deliverer goes into `claimed`.
  void record(Connection& c, const EventToRecord& event, std::string_view upload_id,
              std::vector<WebhookDelivery>& claimed);
  // writes_->run for a write that records events (or releases deliveries):
  // what it claimed is handed over once its transaction committed.
  int run_recording(const std::function<int(Connection&, std::vector<WebhookDelivery>&)>& write);
  // Releases (and claims) what the deliveries in the JSON array `seqs` held.
  void release_after(Connection& c, const std::string& seqs, std::vector<WebhookDelivery>& claimed);
  // uploadFile and addResumable on `c`: the rows each changed.
  static int insert_upload(Connection& c, const Upload& u);
  static int insert_resumable(Connection& c, const ResumableState& r);
};

namespace {

constexpr std::string_view kDialect = "sqlite";
// How long a writer waits for another connection's (or process's) write lock.
constexpr int kBusyTimeoutMs = 10'000;

[[noreturn]] void fail(sqlite3* db, int rc, std::string_view what) {
  const std::string msg = fmt::format("sqlite {}: {} ({})", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) throw Error(Failure::conflict, msg);
  spdlog::error("{}", msg);
  throw Error(Failure::unavailable, "the metadata database failed");
}

void exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    spdlog::error("sqlite exec failed: {}", msg);
    throw Error(Failure::unavailable, "the metadata database failed: " + msg);
  }
}

// Our query files use PostgreSQL's $1 placeholders; SQLite spells them ?1.
std::string to_sqlite_placeholders(std::string_view sql) {
  std::string out(sql);
  for (std::size_t i = 0; i + 1 < out.size(); ++i) {
    if (out[i] == '$' && out[i + 1] >= '0' && out[i + 1] <= '9') out[i] = '?';
  }
  return out;
}

// One prepared statement in use: binds, steps, resets on destruction.
class Statement {
 public:
  // The query sql/queries/<name>.sql.
  Statement(SqliteStore::Connection& c, std::string_view name) : Statement(c, name, query_for(name, kDialect)) {}
  // A query made at run time, prepared once per connection under `name`.
  Statement(SqliteStore::Connection& c, std::string_view name, std::string_view text) : timer_(name), db_(c.db) {
    auto it = c.statements.find(std::string(name));
    if (it == c.statements.end()) {
      const std::string sql = to_sqlite_placeholders(text);
      sqlite3_stmt* stmt = nullptr;
      const int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) fail(db_, rc, fmt::format("prepare {}", name));
      it = c.statements.emplace(std::string(name), stmt).first;
    }
    stmt_ = it->second;
  }
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  template <class... Args>
  Statement& bind(const Args&... args) {
    int i = 1;
    (bind_one(i++, args), ...);
    return *this;
  }
  template <class Arg>
  Statement& bind_at(int position, const Arg& arg) {
    bind_one(position, arg);
    return *this;
  }

  // true while there is a row; false when done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, rc, "step");
  }
  void run() {
    while (step()) {
    }
  }
  int changes() const { return sqlite3_changes(db_); }

  std::int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool boolean(int col) const { return sqlite3_column_int64(stmt_, col) != 0; }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  bool null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, rc, "bind");
  }
  void bind_one(int i, std::int64_t v) { check(sqlite3_bind_int64(stmt_, i, v)); }
  void bind_one(int i, std::uint64_t v) { check(sqlite3_bind_int64(stmt_, i, static_cast<std::int64_t>(v))); }
  void bind_one(int i, bool v) { check(sqlite3_bind_int(stmt_, i, v ? 1 : 0)); }
  void bind_one(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind_one(int i, const std::string& v) { bind_one(i, std::string_view(v)); }
  void bind_one(int i, const std::optional<std::int64_t>& v) {
    if (v)
      bind_one(i, *v);
    else
      check(sqlite3_bind_null(stmt_, i));
  }
  void bind_one(int i, const std::optional<bool>& v) {
    if (v)
      bind_one(i, *v);
    else
      check(sqlite3_bind_null(stmt_, i));
  }

  QueryTimer timer_;
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// The current row of a statement, for the decoders in db/rows.hpp.
class StatementRow final : public Row {
 public:
  explicit StatementRow(const Statement& s) : s_(s) {}
  bool is_null(int column) const override { return s_.null(column); }
  std::string text(int column) const override { return s_.text(column); }
  std::int64_t integer(int column) const override { return s_.i64(column); }
  bool boolean(int column) const override { return s_.boolean(column); }
  Micros timestamp(int column) const override { return s_.i64(column); }  // stored as microseconds

 private:
  const Statement& s_;
};

// Every row `s` gives, as uploads (its columns as getUpload's).
std::vector<Upload> read_uploads(Statement& s) {
  std::vector<Upload> out;
  while (s.step()) out.push_back(decode_upload(StatementRow(s)));
  return out;
}

}  // namespace

class SqliteStore::Lease {
 public:
  Lease(SqliteStore& store, Connection* c) : store_(store), c_(c) {}
  ~Lease() {
    {
      std::lock_guard lock(store_.mutex_);
      store_.idle_.push_back(c_);
    }
    store_.available_.notify_one();
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Connection& operator*() const { return *c_; }
  Connection* operator->() const { return c_; }

 private:
  SqliteStore& store_;
  Connection* c_;
};

SqliteStore::SqliteStore(const std::string& path, unsigned pool_size) : path_(path) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  connections_.resize(std::max(1u, pool_size));
  for (auto& c : connections_) {
    const int rc =
        sqlite3_open_v2(path.c_str(), &c.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string msg = fmt::format("cannot open sqlite database {}: {}", path, sqlite3_errstr(rc));
      for (auto& o : connections_) sqlite3_close(o.db);
      throw std::runtime_error(msg);
    }
    sqlite3_busy_timeout(c.db, kBusyTimeoutMs);
    // WAL: readers never block the writer. synchronous=FULL: a commit is on
    // disk when it returns, so a 201 means the record survives a power cut.
    exec(c.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    idle_.push_back(&c);
  }
  writes_ = std::make_unique<WriteBatcher<Write>>([this](const auto& writes, auto& outcomes) {
    auto c = acquire();
    // A write may be several statements (a row and its owner's usage): each
    // runs in a transaction, alone or with the batch. BEGIN IMMEDIATE takes
    // the write lock now, not at the first write.
    const auto each_alone = [&] {
      for (std::size_t i = 0; i < writes.size(); ++i) {
        try {
          exec(c->db, "BEGIN IMMEDIATE");
          try {
            outcomes[i] = {(*writes[i])(*c), nullptr};
          } catch (...) {
            sqlite3_exec(c->db, "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
          }
          exec(c->db, "COMMIT");
        } catch (...) {
          outcomes[i] = {0, std::current_exception()};
        }
      }
    };
    if (writes.size() == 1) return each_alone();
    exec(c->db, "BEGIN IMMEDIATE");
    try {
      for (std::size_t i = 0; i < writes.size(); ++i) outcomes[i].rows = (*writes[i])(*c);
    } catch (...) {
      sqlite3_exec(c->db, "ROLLBACK", nullptr, nullptr, nullptr);
      return each_alone();
    }
    exec(c->db, "COMMIT");  // throws: every write of the batch reports it
  });
}

SqliteStore::~SqliteStore() {
  for (auto& c : connections_) {
    for (auto& [name, stmt] : c.statements) sqlite3_finalize(stmt);
    sqlite3_close(c.db);
  }
}

SqliteStore::Lease SqliteStore::acquire() {
  std::unique_lock lock(mutex_);
  if (idle_.empty()) {
    ++waiting_;
    available_.wait(lock, [&] { return !idle_.empty(); });
    --waiting_;
  }
  Connection* c = idle_.back();
  idle_.pop_back();
  return Lease(*this, c);
}

int SqliteStore::migrate() {
  auto c = acquire();
  exec(c->db,
       "CREATE TABLE IF NOT EXISTS schema_migrations ("
       " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
  int applied = 0;
  for (const auto& m : migrations_for(kDialect)) {
    // BEGIN IMMEDIATE takes the write lock first, so two processes migrating at
    // once serialise here and the second sees the first one's record.
    exec(c->db, "BEGIN IMMEDIATE");
    try {
      sqlite3_stmt* q = nullptr;
      sqlite3_prepare_v2(c->db, "SELECT 1 FROM schema_migrations WHERE version = ?", -1, &q, nullptr);
      sqlite3_bind_int(q, 1, m.version);
      const bool done = sqlite3_step(q) == SQLITE_ROW;
      sqlite3_finalize(q);
      if (done) {
        exec(c->db, "COMMIT");
        continue;
      }
      exec(c->db, std::string(m.sql));
      exec(c->db, fmt::format("INSERT INTO schema_migrations (version, name, applied_at) VALUES ({}, '{}', {})",
                              m.version, m.name, util::now_micros()));
      exec(c->db, "COMMIT");
      spdlog::info("applied migration {:04}_{}", m.version, m.name);
      ++applied;
    } catch (...) {
      sqlite3_exec(c->db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  return applied;
}

User SqliteStore::create_user(std::string_view name, bool is_admin) {
  auto c = acquire();
  const Micros now = util::now_micros();
  Statement s(*c, "createUser");
  s.bind(name, is_admin, now);
  if (!s.step()) fail(c->db, SQLITE_ERROR, "createUser returned no id");
  return User{.id = s.i64(0), .name = std::string(name), .is_admin = is_admin, .created_at = now};
}

std::optional<User> SqliteStore::find_user(std::string_view name) {
  auto c = acquire();
  Statement s(*c, "findUserByName");
  s.bind(name);
  if (!s.step()) return std::nullopt;
  return decode_user(StatementRow(s));
}

std::optional<User> SqliteStore::external_user(std::string_view issuer, std::string_view name, Micros now) {
  auto c = acquire();
  const auto find = [&]() -> std::optional<User> {
    Statement s(*c, "findUserByName");
    s.bind(name);
    if (!s.step()) return std::nullopt;
    return decode_user(StatementRow(s));
  };
  // Every request of a JWT user asks; only the first one writes.
  auto user = find();
  if (!user) {
    Statement insert(*c, "createExternalUser");
    insert.bind(name, issuer, now).run();
    user = find();
  }
  if (!user || user->issuer != issuer) return std::nullopt;
  return user;
}

std::optional<User> SqliteStore::get_user(std::int64_t id) {
  auto c = acquire();
  Statement s(*c, "getUser");
  s.bind(id);
  if (!s.step()) return std::nullopt;
  return decode_user(StatementRow(s));
}

std::vector<User> SqliteStore::list_users(std::string_view after, std::int64_t limit) {
  auto c = acquire();
  Statement s(*c, "listUsers");
  s.bind(after, limit);
  std::vector<User> out;
  while (s.step()) out.push_back(decode_user(StatementRow(s)));
  return out;
}

std::int64_t SqliteStore::count_users() {
  auto c = acquire();
  Statement s(*c, "countUsers");
  return s.step() ? s.i64(0) : 0;
}

void SqliteStore::create_token(const ApiToken& t, std::string_view token_hash) {
  auto c = acquire();
  Statement s(*c, "createToken");
  s.bind(t.id, t.user_id, t.name, token_hash, t.created_at, t.expires_at).run();
}

std::optional<TokenOwner> SqliteStore::find_token(std::string_view token_hash) {
  auto c = acquire();
  Statement s(*c, "findTokenByHash");
  s.bind(token_hash);
  if (!s.step()) return std::nullopt;
  return decode_token_owner(StatementRow(s));
}

std::vector<ApiToken> SqliteStore::list_tokens(std::optional<std::int64_t> user_id) {
  auto c = acquire();
  std::vector<ApiToken> out;
  if (user_id) {
    Statement s(*c, "listTokensByUser");
    s.bind(*user_id);
    while (s.step()) out.push_back(decode_token(StatementRow(s)));
  } else {
    Statement s(*c, "listTokens");
    while (s.step()) out.push_back(decode_token(StatementRow(s)));
  }
  return out;
}

bool SqliteStore::revoke_token(std::string_view token_id, Micros now) {
  auto c = acquire();
  Statement s(*c, "revokeToken");
  s.bind(token_id, now).run();
  return s.changes() > 0;
}

void SqliteStore::record(Connection& c, const EventToRecord& event, std::string_view upload_id,
                         std::vector<WebhookDelivery>& claimed) {
  const auto endpoints = events_.endpoints_for(event.type);
  if (!endpoints) return;
  const auto now = util::now_micros();
  Statement s(c, "recordEvent");
  s.bind(event.type, *endpoints, now, upload_id, event.status, event.or_status,
         static_cast<std::int64_t>(event.through_link_only), events_.claim_until(now));
  while (s.step()) {
    auto d = decode_delivery(StatementRow(s));
    if (d.attempts == 1) claimed.push_back(std::move(d));  // not held, and claimed here
  }
}

int SqliteStore::run_recording(const std::function<int(Connection&, std::vector<WebhookDelivery>&)>& write) {
  std::vector<WebhookDelivery> claimed;
  const int rows = writes_->run(Write([&](Connection& c) {
    claimed.clear();  // a batch that failed runs each write again on its own
    return write(c, claimed);
  }));
  events_.hand_over(std::move(claimed));
  return rows;
}

void SqliteStore::create_pending(const Upload& u) {
  run_recording([&](Connection& c, std::vector<WebhookDelivery>& claimed) {
    const int changed = insert_upload(c, u);
    record(c, kUploadCreated, u.id, claimed);
    return changed;
  });
}

bool SqliteStore::create_pending_through_link(const Upload& u, std::int64_t link_bytes, Micros now) {
  return run_recording([&](Connection& c, std::vector<WebhookDelivery>& claimed) {
    Statement reserve(c, "reserveLink");
    reserve.bind(*u.upload_link_id, link_bytes, now).run();
    if (reserve.changes() == 0) return 0;
    Statement s(c, "uploadFileThroughLink");
    s.bind(u.id, u.user_id, u.file_name, u.content_type, u.storage_key, u.store_upload_id, u.created_at,
           *u.upload_link_id, link_bytes)
        .run();
    const int changed = s.changes();
    record(c, kUploadCreated, u.id, claimed);
    return changed;
  }) > 0;
}

std::optional<UploadLink> SqliteStore::find_upload_link(std::string_view token_hash) {
  auto c = acquire();
  Statement s(*c, "findUploadLinkByHash");
  s.bind(token_hash);
  if (!s.step()) return std::nullopt;
  return decode_upload_link(StatementRow(s));
}

void SqliteStore::create_upload_link(const UploadLink& l, std::string_view token_hash) {
  writes_->run(Write([&](Connection& c) {
    Statement s(c, "createUploadLink");
    s.bind(l.id, l.user_id, token_hash, l.note, l.allowed_types, l.max_files, l.max_bytes, l.created_at, l.expires_at)
        .run();
    return s.changes();
  }));
}

std::optional<UploadLink> SqliteStore::get_upload_link(std::string_view id) {
  auto c = acquire();
  Statement s(*c, "getUploadLink");
  s.bind(id);
  if (!s.step()) return std::nullopt;
  return decode_upload_link(StatementRow(s));
}

std::vector<UploadLink> SqliteStore::list_upload_links(std::int64_t user_id, std::int64_t limit) {
  auto c = acquire();
  Statement s(*c, "listUploadLinks");
  s.bind(user_id, limit);
  std::vector<UploadLink> out;
  while (s.step()) out.push_back(decode_upload_link(StatementRow(s)));
  return out;
}

bool SqliteStore::revoke_upload_link(std::string_view id, std::int64_t user_id, Micros now) {
  return writes_->run(Write([&](Connection& c) {
    Statement s(c, "revokeUploadLink");
    s.bind(id, user_id, now).run();
    return s.changes();
  })) > 0;
}

namespace {
// The second step of completing, failing or deleting an upload: its owner's
// usage moves by `delta` (in the caller's transaction).
void adjust_usage(SqliteStore::Connection& c, std::int64_t user_id, std::int64_t delta) {
  if (delta == 0) return;
  Statement s(c, "adjustUsage");
  s.bind(user_id, delta).run();
}
}  // namespace

namespace {
// Runs `s`, a statement that changes one upload row and RETURNs its owner
// and an amount, then moves the owner's usage by delta(amount), in the
// caller's transaction. 1 if a row changed, else 0.
template <class Delta>
int change_row_and_usage(SqliteStore::Connection& c, Statement& s, Delta delta) {
  if (!s.step()) return 0;
  const std::int64_t user_id = s.i64(0), amount = s.i64(1);
  s.run();
  adjust_usage(c, user_id, delta(amount));
  return 1;
}
}  // namespace

bool SqliteStore::mark_complete(const Upload& u, StoreLeftovers leftovers) {
  return run_recording([&](Connection& c, std::vector<WebhookDelivery>& claimed) {
    Statement s(c, "completeUpload");  // returns the row's reservation: usage moves from it to the size
    s.bind(u.id, u.file_size, u.content_type, u.sha256, u.completed_at.value_or(util::now_micros()),
           leftovers == StoreLeftovers::remain);
    const int changed = change_row_and_usage(
        c, s, [&](std::int64_t reserved) { return static_cast<std::int64_t>(u.file_size) - reserved; });
    if (changed > 0) {
      record(c, kUploadCompleted, u.id, claimed);
      if (u.upload_link_id) record(c, kUploadLinkUsed, u.id, claimed);
    }
    return changed;
  }) > 0;
}

bool SqliteStore::mark_failed(std::string_view upload_id, Micros now, StoreLeftovers leftovers) {
  return run_recording([&](Connection& c, std::vector<WebhookDelivery>& claimed) {
    Statement s(c, "failUpload");  // returns the row's reservations, given back
    s.bind(upload_id, now, leftovers == StoreLeftovers::remain);
    if (!s.step()) return 0;
    const std::int64_t user_id = s.i64(0), reserved = s.i64(1), link_bytes = s.i64(3);
    const std::optional<std::string> link = s.null(2) ? std::nullopt : std::optional(s.text(2));
    s.run();
    adjust_usage(c, user_id, -reserved);
    if (link) {
      Statement release(c, "releaseLink");
      release.bind(*link, link_bytes).run();
    }
    record(c, kUploadFailed, upload_id, claimed);
    return 1;
  }) > 0;
}

std::vector<Upload> SqliteStore::uploads_with_leftovers(std::int64_t limit) {
  return first_uploads("uploadsWithLeftovers", limit);
}

std::vector<Upload> SqliteStore::first_uploads(std::string_view query, std::int64_t limit) {
  auto c = acquire();
  Statement s(*c, query);
  s.bind(limit);
  return read_uploads(s);
}

void SqliteStore::leftovers_removed(std::string_view upload_id) {
  writes_->run(Write([&](Connection& c) {
    Statement s(c, "leftoversRemoved");
    s.bind(upload_id).run();
    return 1;
  }));
}

bool SqliteStore::reserve_quota(std::string_view upload_id, std::int64_t user_id, std::int64_t bytes,
                                std::int64_t default_quota) {
  return writes_->run(Write([&](Connection& c) {
    {  // still pending? (the transaction holds the write lock: it stays so)
      Statement s(c, "getUpload");
      s.bind(upload_id);
      if (!s.step() || upload_status_from(s.text(8)) != UploadStatus::pending) return 0;
    }
    {
      Statement s(c, "reserveQuota");
      s.bind(user_id, bytes, default_quota).run();
      if (s.changes() == 0) return 0;
    }
    Statement s(c, "addReservation");
    s.bind(upload_id, bytes).run();
    return s.changes();
  })) > 0;
}

std::optional<User> SqliteStore::update_user(std::string_view name, const UserChange& change) {
  std::optional<User> updated;
  writes_->run(Write([&](Connection& c) {
    Statement s(c, "updateUser");
    s.bind(name, change.quota_bytes.has_value(), change.quota_bytes.value_or(std::nullopt), change.disabled,
           change.is_admin);
    if (s.step()) updated = decode_user(StatementRow(s));
    return updated ? 1 : 0;
  }));
  return updated;
}

std::optional<Accounts::DeletionStarted> SqliteStore::begin_user_deletion(std::string_view name, Micros now) {
  std::optional<DeletionStarted> started;
  writes_->run(Write([&](Connection& c) {
    Statement user(c, "beginUserDeletion");
    user.bind(name, now);
    if (!user.step()) return 0;
    DeletionStarted d{.user_id = user.i64(0)};
    user.run();  // to its end, before the next statement
    Statement files(c, "markUserUploadsDeleting");
    files.bind(d.user_id).run();
    d.files = files.changes();
    Statement unfinished(c, "failUserUploads");
    unfinished.bind(d.user_id, now).run();
    if (const auto endpoints = events_.endpoints_for(kUploadFailed.type)) {
      Statement failed(c, "recordUserFailures");
      failed.bind(*endpoints, d.user_id, now).run();
    }
    Statement resumable(c, "expireUserUploads");
    resumable.bind(d.user_id, now).run();
    started = d;
    return 1;
  }));
  return started;
}

bool SqliteStore::remove_user_if_empty(std::int64_t user_id) {
  return writes_->run(Write([&](Connection& c) {
    Statement failed(c, "removeUserFailedUploads");
    failed.bind(user_id).run();
    Statement user(c, "removeUserIfEmpty");
    user.bind(user_id).run();
    return user.changes();
  })) > 0;
}

std::vector<std::int64_t> SqliteStore::users_being_deleted(std::int64_t limit) {
  auto c = acquire();
  Statement s(*c, "usersBeingDeleted");
  s.bind(limit);
  std::vector<std::int64_t> out;
  while (s.step()) out.push_back(s.i64(0));
  return out;
}

void SqliteStore::set_store_upload_id(std::string_view upload_id, std::string_view store_upload_id) {
  writes_->run(Write([&](Connection& c) {
    Statement s(c, "setStoreUploadId");
    s.bind(upload_id, store_upload_id).run();
    return s.changes();
  }));
}

std::optional<Upload> SqliteStore::get_upload(std::string_view upload_id) {
  auto c = acquire();
  Statement s(*c, "getUpload");
  s.bind(upload_id);
  if (!s.step()) return std::nullopt;
  return decode_upload(StatementRow(s));
}

std::vector<Upload> SqliteStore::stale_pending(Micros created_before, const std::optional<ListPosition>& after,
                                               std::int64_t limit) {
  auto c = acquire();
  Statement s(*c, after ? "stalePendingAfter" : "stalePending");
  if (after) {
    s.bind(created_before, after->created_at, after->upload_id, limit);
  } else {
    s.bind(created_before, limit);
  }
  return read_uploads(s);
}

PoolState SqliteStore::pool_state() const {
  std::lock_guard lock(mutex_);
  return PoolState{connections_.size() - idle_.size(), idle_.size(), waiting_};
}

void SqliteStore::check_ready() {
  auto c = acquire();
  exec(c->db, "SELECT 1");
}

std::int64_t SqliteStore::count_uploads(UploadStatus status) {
  auto c = acquire();
  Statement s(*c, "countUploadsByStatus");
  s.bind(to_string(status));
  return s.step() ? s.i64(0) : 0;
}

std::vector<WebhookDelivery> SqliteStore::claim_deliveries(Micros now, Micros claimed_until, std::int64_t limit) {
  {
    auto c = acquire();
    Statement due(*c, "anyDeliveryDue");
    due.bind(now);
    if (!due.step()) return {};
  }
  std::vector<WebhookDelivery> out;
  writes_->run(Write([&](Connection& c) {
    out.clear();
    Statement s(c, "claimDeliveries");
    s.bind(now, claimed_until, limit);
    while (s.step()) out.push_back(decode_delivery(StatementRow(s)));
    return static_cast<int>(out.size());
  }));
  return out;
}

namespace {
// Deliveries' seqs as the queries read them: a JSON array, for json_each.
std::string json_array(const std::vector<std::int64_t>& seqs) { return fmt::format("[{}]", fmt::join(seqs, ",")); }
}  // namespace

void SqliteStore::unclaim_deliveries(const std::vector<std::int64_t>& seqs, Micros now) {
  if (seqs.empty()) return;
  const std::string list = json_array(seqs);
  writes_->run(Write([&](Connection& c) {
    Statement s(c, "unclaimDeliveries");
    s.bind(list, now).run();
    return s.changes();
  }));
}

void SqliteStore::deliveries_succeeded(const std::vector<std::int64_t>& seqs, Micros now) {
  if (seqs.empty()) return;
  const std::string list = json_array(seqs);
  run_recording([&](Connection& c, std::vector<WebhookDelivery>& claimed) {
    Statement s(c, "deliverySucceeded");
    s.bind(list, now).run();
    const int changed = s.changes();
    release_after(c, list, claimed);
    return changed;
  });
}

void SqliteStore::delivery_failed(std::int64_t seq, std::optional<Micros> next_attempt_at, std::string_view error) {
  run_recording([&](Connection& c, std::vector<WebhookDelivery>& claimed) {
    Statement s(c, "deliveryFailed");
    s.bind(seq, next_attempt_at, error).run();
    const int changed = s.changes();
    if (!next_attempt_at) release_after(c, json_array({seq}), claimed);  // dead: the next one goes
    return changed;
  });
}

void SqliteStore::release_after(Connection& c, const std::string& seqs, std::vector<WebhookDelivery>& claimed) {
  Statement release(c, "releaseHeldAfter");
  release.bind(seqs, events_.claim_until(util::now_micros()));
  while (release.step()) claimed.push_back(decode_delivery(StatementRow(release)));
}

void SqliteStore::disable_endpoint(std::string_view url, Micros now, std::string_view reason) {
  writes_->run(Write([&](Connection& c) {
    Statement s(c, "disableEndpoint");
    s.bind(url, now, reason).run();
    const int changed = s.changes();
    Statement hold(c, "holdEndpoint");
    hold.bind(url).run();
    return changed;
  }));
}

std::int64_t SqliteStore::release_held_deliveries() {
  return writes_->run(Write([&](Connection& c) {
    Statement s(c, "releaseHeld");
    s.run();
    return s.changes();
  }));
}

std::int64_t SqliteStore::prune_deliveries(Micros delivered_before, std::int64_t limit) {
  return writes_->run(Write([&](Connection& c) {
    Statement s(c, "pruneDeliveries");
    s.bind(delivered_before, limit).run();
    return s.changes();
  }));
}

std::int64_t SqliteStore::count_deliveries(DeliveryStatus status) {
  auto c = acquire();
  Statement s(*c, "countDeliveries");
  s.bind(to_string(status));
  return s.step() ? s.i64(0) : 0;
}

std::vector<DeliveryRecord> SqliteStore::list_deliveries(std::optional<DeliveryStatus> status,
                                                         std::optional<std::int64_t> before_seq, std::int64_t limit) {
  auto c = acquire();
  Statement s(*c, "listDeliveries");
  s.bind(status ? to_string(*status) : std::string_view(""), before_seq.value_or(0), limit);
  std::vector<DeliveryRecord> out;
  while (s.step()) out.push_back(decode_delivery_record(StatementRow(s)));
  return out;
}

std::int64_t SqliteStore::retry_deliveries(const std::optional<std::string>& event_id, Micros now) {
  return writes_->run(Write([&](Connection& c) {
    if (event_id) {
      Statement s(c, "retryDelivery");
      s.bind(*event_id, now).run();
      return s.changes();
    }
    Statement s(c, "retryDead");
    s.bind(now).run();
    return s.changes();
  }));
}

bool SqliteStore::enable_endpoint(std::string_view url) {
  return writes_->run(Write([&](Connection& c) {
    Statement s(c, "enableEndpoint");
    s.bind(url).run();
    const int changed = s.changes();
    Statement release(c, "releaseHeld");
    release.run();
    return changed;
  })) > 0;
}

std::vector<DisabledEndpoint> SqliteStore::disabled_endpoints() {
  auto c = acquire();
  Statement s(*c, "listDisabledEndpoints");
  std::vector<DisabledEndpoint> out;
  while (s.step()) out.push_back(decode_disabled_endpoint(StatementRow(s)));
  return out;
}

std::vector<Upload> SqliteStore::list_files(const FileListing& listing) {
  const auto query = file_listing_query(listing, kDialect);
  auto c = acquire();
  Statement s(*c, query.name, query.sql);
  int n = 0;
  if (listing.user_id) s.bind_at(++n, *listing.user_id);
  if (!listing.name_contains.empty()) s.bind_at(++n, file_listing_pattern(listing.name_contains));
  if (const auto& after = listing.after) {
    switch (listing.order) {
      case FileListing::Order::created: s.bind_at(++n, after->created_at); break;
      case FileListing::Order::name: s.bind_at(++n, after->file_name); break;
      case FileListing::Order::size: s.bind_at(++n, after->file_size); break;
    }
    s.bind_at(++n, after->upload_id);
  }
  s.bind_at(++n, listing.limit);
  return read_uploads(s);
}

bool SqliteStore::delete_upload(std::string_view upload_id) {
  return run_recording([&](Connection& c, std::vector<WebhookDelivery>& claimed) {
    record(c, kUploadDeleted, upload_id, claimed);  // from the row as it is; the delete below always happens
    Statement s(c, "deleteUpload");  // returns a complete upload's size (else 0), taken off its owner's usage
    s.bind(upload_id);
    return change_row_and_usage(c, s, [](std::int64_t held) { return -held; });
  }) > 0;
}

bool SqliteStore::mark_deleting(std::string_view upload_id) {
  return writes_->run(Write([&](Connection& c) {
    Statement s(c, "markDeleting");
    s.bind(upload_id).run();
    return s.changes();
  })) > 0;
}

std::vector<Upload> SqliteStore::deleting_uploads(std::int64_t limit) {
  return first_uploads("deletingUploads", limit);
}

int SqliteStore::insert_upload(Connection& c, const Upload& u) {
  Statement s(c, "uploadFile");
  s.bind(u.id, u.user_id, u.file_name, u.content_type, u.storage_key, u.store_upload_id, u.created_at).run();
  return s.changes();
}

int SqliteStore::insert_resumable(Connection& c, const ResumableState& r) {
  Statement s(c, "addResumable");
  const std::optional<std::int64_t> length =
      r.upload_length ? std::optional(static_cast<std::int64_t>(*r.upload_length)) : std::nullopt;
  s.bind(r.upload_id, length, r.offset, r.metadata, r.part_size, r.store_state, r.hash_state, r.expires_at,
         r.lease_token, r.lease_expires_at)
      .run();
  return s.changes();
}

void SqliteStore::add_resumable(const ResumableState& r) {
  writes_->run(Write([&](Connection& c) { return insert_resumable(c, r); }));
}

// Two statements in the one transaction of their write (SQLite has no
// INSERT inside WITH).
void SqliteStore::create_pending_resumable(const Upload& u, const ResumableState& r) {
  if (r.upload_id != u.id) throw std::invalid_argument("the progress is another upload's");
  run_recording([&](Connection& c, std::vector<WebhookDelivery>& claimed) {
    const int changed = insert_upload(c, u);
    insert_resumable(c, r);
    record(c, kUploadCreated, u.id, claimed);
    return changed;
  });
}

std::string SqliteStore::shared_secret(std::string_view name, std::string_view candidate) {
  writes_->run(Write([&](Connection& c) {
    Statement s(c, "ensureSecret");
    s.bind(name, candidate).run();
    return s.changes();
  }));
  auto c = acquire();
  Statement s(*c, "getSecret");
  s.bind(name);
  if (!s.step()) throw Error(Failure::unavailable, "the shared secret was not stored");
  return StatementRow(s).text(0);
}

std::optional<ResumableState> SqliteStore::get_resumable(std::string_view upload_id) {
  auto c = acquire();
  Statement s(*c, "getResumable");
  s.bind(upload_id);
  if (!s.step()) return std::nullopt;
  return decode_resumable(StatementRow(s));
}

bool SqliteStore::take_lease(std::string_view upload_id, std::int64_t seen_token, Micros now, Micros until) {
  return writes_->run(Write([&](Connection& c) {
    Statement s(c, "takeLease");
    s.bind(upload_id, seen_token, now, until).run();
    return s.changes();
  })) > 0;
}

bool SqliteStore::save_progress(const ResumableState& r) {
  return writes_->run(Write([&](Connection& c) {
    Statement s(c, "saveProgress");
    const std::optional<std::int64_t> length =
        r.upload_length ? std::optional(static_cast<std::int64_t>(*r.upload_length)) : std::nullopt;
    s.bind(r.upload_id, r.lease_token, r.offset, length, r.store_state, r.hash_state, r.expires_at,
           r.lease_expires_at)
        .run();
    return s.changes();
  })) > 0;
}

bool SqliteStore::holds_lease(std::string_view upload_id, std::int64_t token) {
  auto c = acquire();
  Statement s(*c, "holdsLease");
  s.bind(upload_id, token);
  return s.step();
}

void SqliteStore::release_lease(std::string_view upload_id, std::int64_t token) {
  writes_->run(Write([&](Connection& c) {
    Statement s(c, "releaseLease");
    s.bind(upload_id, token).run();
    return s.changes();
  }));
}

std::vector<Upload> SqliteStore::expired_resumable(Micros now, std::int64_t limit) {
  auto c = acquire();
  Statement s(*c, "expiredResumable");
  s.bind(now, limit);
  return read_uploads(s);
}

namespace {
// SQLite serves the instances of one host: a lock file beside the database.
class FileLock final : public ExclusiveLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {}
  ~FileLock() override { ::close(fd_); }  // closing releases the flock

 private:
  int fd_;
};
}  // namespace

std::unique_ptr<ExclusiveLock> SqliteStore::try_lock(std::string_view name) {
  const std::string path = path_ + ".lock-" + std::string(name);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) throw Error(Failure::unavailable, "cannot open lock file " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<FileLock>(fd);
}

std::unique_ptr<MetadataStore> open_sqlite_store(const std::string& path, unsigned pool_size) {
  return std::make_unique<SqliteStore>(path, pool_size);
}

}  // namespace s3up::db
