#include "db/postgres/postgres_store.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "db/file_listing.hpp"
#include "db/outbox.hpp"
#include "db/query_metrics.hpp"
#include "db/rows.hpp"
#include "db/write_batcher.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"

namespace s3up::db {

class PostgresStore final : public MetadataStore {
 public:
  // `conninfo`: a postgres:// or postgresql:// URL or a libpq keyword string
  // ("host=... dbname=..."); what it leaves out comes from the PG*
  // environment (PGHOST, PGUSER, PGPASSWORD, PGSSLMODE, ...) as libpq does.
  // Connects once to fail early with a clear message.
  PostgresStore(std::string conninfo, unsigned pool_size, std::chrono::milliseconds timeout);
  ~PostgresStore() override;

  std::string describe() const override { return description_; }
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

  class Connection;

 private:
  class Lease;
  Lease acquire();
  // The first `limit` upload rows of a query whose one parameter is the limit.
  std::vector<Upload> first_uploads(std::string_view query, std::int64_t limit);
  void release(std::unique_ptr<Connection> c);

  std::string conninfo_;
  std::chrono::milliseconds timeout_;  // how long a query may wait for its answer (Connection)
  std::string description_;  // postgres://user@host:port/db, from the first connection
  unsigned pool_size_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::size_t waiting_ = 0;  // in acquire()
  std::vector<std::unique_ptr<Connection>> idle_;
  unsigned open_ = 0;  // idle plus leased
  // The upload lifecycle's writes, group-committed: a batch goes to the
  // server as one pipelined round trip (BEGIN, the statements, COMMIT).
  struct Write;
  std::unique_ptr<WriteBatcher<Write>> writes_;
  EventRecording events_;
  // A lifecycle write's event, for the endpoints that take it.
  enum class When { before, after };
  void add_event(Write& w, When when, const EventToRecord& event, std::string_view upload_id);
  // writes_->run, then what the write claimed to this process's deliverer.
  int run_recording(Write& w);
  // The same on a connection of its own, outside the batches: for the
  // outbox's own writes (marking, releasing, holding), which the uploads'
  // writes need not wait for.
  int run_apart(Write& w);
  // `w` and its companions, in a transaction of their own on `c`.
  int run_alone(Connection& c, const Write& w);
  // A companion releasing (and claiming) what the deliveries `seqs` held.
  void release_after(Write& w, const std::vector<std::int64_t>& seqs);
};

namespace {

constexpr std::string_view kDialect = "postgres";
// Held while migrating, so instances starting together apply each step once.
// Any constant works; this one spells "s3up" in its high bytes.
constexpr std::string_view kMigrationLockKey = "7309377300000001";
constexpr std::string_view kSqlstateUniqueViolation = "23505";

using ResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

// A timestamp as PostgreSQL reads it, to the microsecond.
std::string timestamp_text(Micros t) {
  std::time_t secs = static_cast<std::time_t>(t / 1'000'000);
  Micros micros = t % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

// Parameters in libpq's text format; NULL is a null pointer.
class Params {
 public:
  Params& text(std::string_view v) {
    values_.emplace_back(v);
    return *this;
  }
  Params& integer(std::int64_t v) { return text(std::to_string(v)); }
  Params& boolean(bool v) { return text(v ? "true" : "false"); }
  Params& timestamp(Micros t) { return text(timestamp_text(t)); }
  Params& null() {
    values_.emplace_back(std::nullopt);
    return *this;
  }
  Params& timestamp(const std::optional<Micros>& t) {
    if (t) return timestamp(*t);
    values_.emplace_back(std::nullopt);
    return *this;
  }
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    for (const auto& v : values_) out.push_back(v ? v->c_str() : nullptr);
    return out;
  }

 private:
  std::vector<std::optional<std::string>> values_;
};

// Rows of a result, read as the schema's types.
class Rows {
 public:
  explicit Rows(ResultPtr r) : r_(std::move(r)) {}
  int size() const { return PQntuples(r_.get()); }
  int affected() const {
    const char* n = PQcmdTuples(r_.get());
    return n && *n ? std::atoi(n) : 0;
  }
  bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_.get(), row, col), static_cast<std::size_t>(PQgetlength(r_.get(), row, col)));
  }
  std::int64_t i64(int row, int col) const {
    std::int64_t v = 0;
    const char* p = PQgetvalue(r_.get(), row, col);
    std::from_chars(p, p + PQgetlength(r_.get(), row, col), v);
    return v;
  }
  bool boolean(int row, int col) const { return PQgetvalue(r_.get(), row, col)[0] == 't'; }
  Micros timestamp(int row, int col) const {
    const auto t = util::parse_rfc3339(text(row, col));
    if (!t) throw Error(Failure::unavailable, "unexpected timestamp from the database: " + text(row, col));
    return *t;
  }

 private:
  ResultPtr r_;
};

// One row of a result, for the decoders in db/rows.hpp.
class ResultRow final : public Row {
 public:
  ResultRow(const Rows& r, int row) : r_(r), row_(row) {}
  bool is_null(int column) const override { return r_.null(row_, column); }
  std::string text(int column) const override { return r_.text(row_, column); }
  std::int64_t integer(int column) const override { return r_.i64(row_, column); }
  bool boolean(int column) const override { return r_.boolean(row_, column); }
  Micros timestamp(int column) const override { return r_.timestamp(row_, column); }

 private:
  const Rows& r_;
  int row_;
};

// Upload ids are UUIDs in PostgreSQL; anything else cannot match a row, and
// must not reach the server as a type error.
bool plausible_upload_id(std::string_view id) { return util::is_uuid(id); }

// Every row of `r`, as uploads (its columns as getUpload's).
std::vector<Upload> uploads_in(const Rows& r) {
  std::vector<Upload> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(decode_upload(ResultRow(r, i)));
  return out;
}

}  // namespace

// One libpq connection and the statements prepared on it. Every query
// waits for its answer at most `timeout` (libpq's own calls would wait
// forever on a server or network that went silent): then the connection is
// dropped and the caller gets database_unavailable.
class PostgresStore::Connection {
 public:
  Connection(const std::string& conninfo, std::chrono::milliseconds timeout) : timeout_(timeout) {
    // Ours first: the user's string (expanded from dbname) overrides them.
    // libpq takes whole seconds, at least 2.
    const std::string connect_seconds =
        std::to_string(std::max<std::int64_t>(2, std::chrono::ceil<std::chrono::seconds>(timeout).count()));
    const char* keys[] = {"application_name", "connect_timeout", "dbname", nullptr};
    const char* values[] = {"s3uploader", connect_seconds.c_str(), conninfo.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK || PQsetnonblocking(conn_, 1) != 0) {
      // libpq's messages end in a newline: util::trim for the logs.
      const std::string msg(util::trim(conn_ ? PQerrorMessage(conn_) : "out of memory"));
      PQfinish(conn_);
      conn_ = nullptr;
      throw std::runtime_error(msg);
    }
    // Timestamps are exchanged as UTC text; see timestamp_text().
    exec_simple("SET TIME ZONE 'UTC'; SET DateStyle TO ISO");
  }
  ~Connection() { PQfinish(conn_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // False when the server has closed this idle connection (a restart sends a
  // goodbye and closes; nothing else arrives on an idle connection of ours).
  bool still_usable() {
    if (PQstatus(conn_) != CONNECTION_OK) return false;
    pollfd p{PQsocket(conn_), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }
  bool broken() const { return broken_ || PQstatus(conn_) != CONNECTION_OK; }
  // Where libpq connected, after the URL and the PG* environment were applied.
  std::string describe() const {
    return fmt::format("postgres://{}@{}:{}/{} (TLS {})", PQuser(conn_), PQhost(conn_), PQport(conn_), PQdb(conn_),
                       PQsslInUse(conn_) ? "on" : "off");
  }

  // Runs a named query from sql/queries/, prepared on first use.
  // The query sql/queries/<name>.sql.
  Rows run(std::string_view name, const Params& params = {}) { return run(name, query_for(name, kDialect), params); }
  // A query made at run time, prepared once per connection under `name`.
  Rows run(std::string_view name, std::string_view sql, const Params& params) {
    const QueryTimer timer(name);
    prepare(name, sql);
    const std::string key(name);
    const auto values = params.pointers();
    sent(PQsendQueryPrepared(conn_, key.c_str(), static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0),
         name);
    ResultPtr r = last_result(name);
    check(r, name);
    return Rows(std::move(r));
  }

  // Statements without parameters (migrations, transaction control).
  Rows exec_simple(const std::string& sql, std::string_view what = "statement") {
    sent(PQsendQuery(conn_, sql.c_str()), what);
    ResultPtr r = last_result(what);
    check(r, what);
    return Rows(std::move(r));
  }
  Rows exec_params(const std::string& sql, const Params& params, std::string_view what) {
    const auto values = params.pointers();
    sent(PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                           nullptr, 0),
         what);
    ResultPtr r = last_result(what);
    check(r, what);
    return Rows(std::move(r));
  }

  // Until the guard ends, queries wait as long as the server takes
  // (migrations: a step may take long, or another instance's).
  class Unbounded {
   public:
    explicit Unbounded(Connection& c) : c_(c), saved_(std::exchange(c.timeout_, std::chrono::milliseconds(0))) {}
    ~Unbounded() { c_.timeout_ = saved_; }
    Unbounded(const Unbounded&) = delete;
    Unbounded& operator=(const Unbounded&) = delete;

   private:
    Connection& c_;
    std::chrono::milliseconds saved_;
  };

  // Runs the statements as one transaction in one round trip (libpq's
  // pipeline mode: BEGIN, each statement, COMMIT, then one sync) and fills
  // the rows each changed. Returns false if a statement failed: the
  // transaction was rolled back and nothing of it happened. Throws
  // database_unavailable if the connection broke or COMMIT failed (then the
  // outcome is unknown). `results`, unless empty, gets each statement's rows.
  bool run_in_one_round_trip(const std::vector<std::pair<std::string_view, const Params*>>& statements,
                             std::vector<int>& rows, std::vector<ResultPtr>& results) {
    const QueryTimer timer(statements.size() == 1 ? statements.front().first : std::string_view("batch"));
    for (const auto& [name, params] : statements) prepare(name, query_for(name, kDialect));
    if (PQenterPipelineMode(conn_) != 1) lost("entering pipeline mode");
    const auto send_simple = [&](const char* sql) {
      if (PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) lost("sending");
    };
    send_simple("BEGIN");
    for (const auto& [name, params] : statements) {
      const auto values = params->pointers();
      const std::string key(name);
      if (PQsendQueryPrepared(conn_, key.c_str(), static_cast<int>(values.size()), values.data(), nullptr, nullptr,
                              0) != 1) {
        lost("sending");
      }
    }
    send_simple("COMMIT");
    if (PQpipelineSync(conn_) != 1) lost("sending");

    // One result per query (each followed by a null), then the sync's.
    const Deadline deadline = deadline_from_now();
    bool statement_failed = false, commit_failed = false;
    std::string problem;
    for (std::size_t q = 0; q < statements.size() + 2; ++q) {
      ResultPtr r = next_result(deadline, "reading results");
      if (!r) lost("reading results");
      const auto status = PQresultStatus(r.get());
      const bool is_statement = q > 0 && q <= statements.size();
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        if (is_statement) {
          const char* n = PQcmdTuples(r.get());
          rows[q - 1] = n && *n ? std::atoi(n) : 0;
          if (!results.empty()) results[q - 1] = std::move(r);
        }
      } else if (status != PGRES_PIPELINE_ABORTED) {
        if (problem.empty()) problem = PQresultErrorMessage(r.get());
        (is_statement ? statement_failed : commit_failed) = true;
        if (q == 0) statement_failed = true;  // BEGIN itself
      }
      while (next_result(deadline, "reading results")) {
      }  // the null after each query's result
    }
    ResultPtr sync = next_result(deadline, "reading the pipeline sync");
    if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) lost("reading the pipeline sync");
    if (PQexitPipelineMode(conn_) != 1) lost("leaving pipeline mode");
    if (statement_failed) {
      // The failed statement left the transaction aborted (COMMIT was skipped).
      if (PQtransactionStatus(conn_) != PQTRANS_IDLE) exec_simple("ROLLBACK", "rollback");
      spdlog::debug("postgres: a statement in a batch failed ({}); running each on its own", problem);
      return false;
    }
    if (commit_failed) {
      spdlog::error("postgres commit: {}", util::trim(problem));
      throw Error(Failure::unavailable, "the metadata database failed");
    }
    return true;
  }

  // Runs `body` in a transaction: all of it or none of it.
  template <class F>
  void transaction(F&& body) {
    exec_simple("BEGIN");
    try {
      body();
      exec_simple("COMMIT");
    } catch (...) {
      try {
        if (!broken()) exec_simple("ROLLBACK", "rollback");
      } catch (const std::exception&) {  // the connection is dropped; the server rolls back
      }
      throw;
    }
  }

 private:
  void prepare(std::string_view name, std::string_view text) {
    const std::string key(name);
    if (prepared_.contains(key)) return;
    const std::string sql(text);
    sent(PQsendPrepare(conn_, key.c_str(), sql.c_str(), 0, nullptr), name);
    check(last_result(name), name);
    prepared_.insert(key);
  }

  using Deadline = std::optional<std::chrono::steady_clock::time_point>;  // none: wait as long as it takes
  Deadline deadline_from_now() const {
    if (timeout_ <= std::chrono::milliseconds(0)) return std::nullopt;
    return std::chrono::steady_clock::now() + timeout_;
  }

  void sent(int ok, std::string_view what) {
    if (ok != 1) lost(what);
  }

  // Waits for the socket (`events`) until the deadline; throws when it passes.
  void wait_for_socket(short events, const Deadline& deadline, std::string_view what) {
    for (;;) {
      int wait_ms = -1;
      if (deadline) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) timed_out(what);
        wait_ms = static_cast<int>(std::min<std::int64_t>(left.count(), 60'000));
      }
      pollfd p{PQsocket(conn_), events, 0};
      const int ready = ::poll(&p, 1, wait_ms);
      if (ready > 0) return;
      if (ready < 0 && errno != EINTR) lost(what);
    }
  }

  // Sends what libpq holds, then reads until the next result is whole; its
  // result (null: the end of the current query's results).
  ResultPtr next_result(const Deadline& deadline, std::string_view what) {
    for (;;) {
      const int flushed = PQflush(conn_);
      if (flushed < 0) lost(what);
      if (flushed == 0) break;
      wait_for_socket(POLLOUT | POLLIN, deadline, what);
      if (PQconsumeInput(conn_) != 1) lost(what);  // the server may answer before taking all we send
    }
    while (PQisBusy(conn_)) {
      wait_for_socket(POLLIN, deadline, what);
      if (PQconsumeInput(conn_) != 1) lost(what);
    }
    return ResultPtr(PQgetResult(conn_), PQclear);
  }

  // The last result of what was sent, as PQexec gives it.
  ResultPtr last_result(std::string_view what) {
    const Deadline deadline = deadline_from_now();
    ResultPtr last(nullptr, PQclear);
    while (ResultPtr r = next_result(deadline, what)) last = std::move(r);
    return last;
  }

  [[noreturn]] void timed_out(std::string_view what) {
    broken_ = true;
    spdlog::error("postgres {}: no answer within {} ms; the connection is dropped", what, timeout_.count());
    throw Error(Failure::unavailable, "the metadata database did not answer in time");
  }

  [[noreturn]] void lost(std::string_view what) {
    broken_ = true;
    const std::string msg(util::trim(PQerrorMessage(conn_)));
    spdlog::error("postgres {}: {}", what, msg);
    throw Error(Failure::unavailable, "the metadata database failed");
  }

  void check(const ResultPtr& r, std::string_view what) {
    const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
    const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    const std::string sqlstate = state ? state : "";
    std::string msg(util::trim(r ? PQresultErrorMessage(r.get()) : ""));
    if (msg.empty()) msg = util::trim(PQerrorMessage(conn_));
    if (sqlstate == kSqlstateUniqueViolation) throw Error(Failure::conflict, "already exists");
    // Class 08 (connection exception) and 57P0x (the server is shutting down
    // or restarting): this connection is finished.
    if (PQstatus(conn_) != CONNECTION_OK || sqlstate.starts_with("08") || sqlstate.starts_with("57P")) {
      broken_ = true;
    }
    spdlog::error("postgres {}: {}{}", what, msg, sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")");
    throw Error(Failure::unavailable, "the metadata database failed");
  }

  PGconn* conn_ = nullptr;
  std::chrono::milliseconds timeout_;  // 0: none
  bool broken_ = false;
  std::set<std::string> prepared_;
};

// A connection on loan; given back (or dropped when broken) at scope exit.
class PostgresStore::Lease {
 public:
  Lease(PostgresStore& store, std::unique_ptr<Connection> c) : store_(store), c_(std::move(c)) {}
  ~Lease() { store_.release(std::move(c_)); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Connection* operator->() const { return c_.get(); }
  Connection& operator*() const { return *c_; }

 private:
  PostgresStore& store_;
  std::unique_ptr<Connection> c_;
};

struct PostgresStore::Write {
  std::string_view query;  // a name in sql/queries/
  Params params;
  // Statements in the same transaction, before and after it: the events it
  // records (recordEvent), or what its change releases.
  struct Companion {
    std::string_view query;
    Params params;
    // Which of the deliveries it returns this process claimed.
    enum class Claims { none, first_attempts, all } claims = Claims::none;
  };
  std::vector<Companion> before, after;
  bool has_companions() const { return !before.empty() || !after.empty(); }
  bool claims() const {
    const auto claiming = [](const Companion& c) { return c.claims != Companion::Claims::none; };
    return std::any_of(before.begin(), before.end(), claiming) || std::any_of(after.begin(), after.end(), claiming);
  }
  // What the companions claimed, filled in once the transaction committed:
  // for EventRecording::hand_over.
  mutable std::vector<WebhookDelivery> claimed;
  void take_claimed(const Companion& companion, const Rows& rows) const {
    for (int i = 0; i < rows.size(); ++i) {
      auto d = decode_delivery(ResultRow(rows, i));
      if (companion.claims == Companion::Claims::all ||
          (companion.claims == Companion::Claims::first_attempts && d.attempts == 1)) {
        claimed.push_back(std::move(d));
      }
    }
  }
};

PostgresStore::PostgresStore(std::string conninfo, unsigned pool_size, std::chrono::milliseconds timeout)
    : conninfo_(std::move(conninfo)), timeout_(timeout), pool_size_(std::max(1u, pool_size)) {
  try {
    idle_.push_back(std::make_unique<Connection>(conninfo_, timeout_));
    open_ = 1;
    description_ = idle_.back()->describe();
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cannot connect to PostgreSQL: ") + e.what());
  }
  writes_ = std::make_unique<WriteBatcher<Write>>([this](const auto& writes, auto& outcomes) {
    auto c = acquire();
    const auto each_alone = [&] {
      for (std::size_t i = 0; i < writes.size(); ++i) {
        try {
          outcomes[i] = {run_alone(*c, *writes[i]), nullptr};
        } catch (...) {
          outcomes[i] = {0, std::current_exception()};
        }
      }
    };
    if (writes.size() == 1 && !writes[0]->has_companions()) return each_alone();
    // One transaction for the batch: each write's statement between its companions.
    std::vector<std::pair<std::string_view, const Params*>> statements;
    std::vector<std::size_t> main_statement;
    for (const Write* w : writes) {
      for (const auto& b : w->before) statements.emplace_back(b.query, &b.params);
      main_statement.push_back(statements.size());
      statements.emplace_back(w->query, &w->params);
      for (const auto& a : w->after) statements.emplace_back(a.query, &a.params);
    }
    std::vector<int> rows(statements.size());
    // The statements' rows are kept only when a companion claims some (webhooks on).
    std::vector<ResultPtr> results;
    if (std::any_of(writes.begin(), writes.end(), [](const Write* w) { return w->claims(); })) {
      for (std::size_t i = 0; i < statements.size(); ++i) results.emplace_back(nullptr, PQclear);
    }
    if (!c->run_in_one_round_trip(statements, rows, results)) return each_alone();
    for (std::size_t i = 0; i < writes.size(); ++i) {
      const Write& w = *writes[i];
      outcomes[i].rows = rows[main_statement[i]];
      w.claimed.clear();
      if (!w.claims()) continue;
      std::size_t at = main_statement[i] - w.before.size();
      const auto take = [&](const Write::Companion& companion, std::size_t statement) {
        if (companion.claims != Write::Companion::Claims::none && results[statement]) {
          w.take_claimed(companion, Rows(std::move(results[statement])));
        }
      };
      for (const auto& b : w.before) take(b, at++);
      ++at;
      for (const auto& a : w.after) take(a, at++);
    }
  });
}

PostgresStore::~PostgresStore() = default;

void PostgresStore::check_ready() { acquire()->exec_simple("SELECT 1", "readiness check"); }

PoolState PostgresStore::pool_state() const {
  std::lock_guard lock(mutex_);
  return PoolState{open_ - idle_.size(), idle_.size(), waiting_};
}

PostgresStore::Lease PostgresStore::acquire() {
  std::unique_lock lock(mutex_);
  for (;;) {
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (c->still_usable()) return Lease(*this, std::move(c));
      --open_;  // closed by the server while idle: replaced below
      spdlog::info("postgres: an idle connection was closed by the server; reconnecting");
    }
    if (open_ < pool_size_) break;
    ++waiting_;
    available_.wait(lock);
    --waiting_;
  }
  ++open_;
  lock.unlock();
  try {
    return Lease(*this, std::make_unique<Connection>(conninfo_, timeout_));
  } catch (const std::exception& e) {
    {
      std::lock_guard relock(mutex_);
      --open_;
    }
    available_.notify_one();
    spdlog::error("postgres: cannot connect: {}", e.what());
    throw Error(Failure::unavailable, "the metadata database cannot be reached");
  }
}

void PostgresStore::release(std::unique_ptr<Connection> c) {
  {
    std::lock_guard lock(mutex_);
    if (c->broken()) {
      --open_;
      c.reset();
    } else {
      idle_.push_back(std::move(c));
    }
  }
  available_.notify_one();
}

int PostgresStore::migrate() {
  auto c = acquire();
  const Connection::Unbounded no_deadline(*c);
  // A session lock: a second instance waits here until the first is done,
  // then finds every step recorded.
  c->exec_simple(fmt::format("SELECT pg_advisory_lock({})", kMigrationLockKey), "migration lock");
  int applied = 0;
  try {
    c->exec_simple(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        "schema_migrations");
    for (const auto& m : migrations_for(kDialect)) {
      bool ran = false;
      c->transaction([&] {
        Params version;
        version.integer(m.version);
        if (c->exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", version, "migration check").size()) {
          return;
        }
        c->exec_simple(std::string(m.sql), fmt::format("migration {:04}_{}", m.version, m.name));
        Params record;
        record.integer(m.version).text(m.name);
        c->exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", record, "migration record");
        ran = true;
      });
      if (ran) {
        spdlog::info("applied migration {:04}_{}", m.version, m.name);
        ++applied;
      }
    }
  } catch (...) {
    if (!c->broken()) c->exec_simple(fmt::format("SELECT pg_advisory_unlock({})", kMigrationLockKey));
    throw;
  }
  c->exec_simple(fmt::format("SELECT pg_advisory_unlock({})", kMigrationLockKey), "migration unlock");
  return applied;
}

User PostgresStore::create_user(std::string_view name, bool is_admin) {
  auto c = acquire();
  const Micros now = util::now_micros();
  Params p;
  p.text(name).boolean(is_admin).timestamp(now);
  const auto r = c->run("createUser", p);
  return User{.id = r.i64(0, 0), .name = std::string(name), .is_admin = is_admin, .created_at = now};
}

std::optional<User> PostgresStore::find_user(std::string_view name) {
  auto c = acquire();
  Params p;
  p.text(name);
  const auto r = c->run("findUserByName", p);
  if (r.size() == 0) return std::nullopt;
  return decode_user(ResultRow(r, 0));
}

std::optional<User> PostgresStore::external_user(std::string_view issuer, std::string_view name, Micros now) {
  auto c = acquire();
  Params by_name;
  by_name.text(name);
  const auto find = [&]() -> std::optional<User> {
    const auto r = c->run("findUserByName", by_name);
    if (r.size() == 0) return std::nullopt;
    return decode_user(ResultRow(r, 0));
  };
  // Every request of a JWT user asks; only the first one writes.
  auto user = find();
  if (!user) {
    Params insert;
    insert.text(name).text(issuer).timestamp(now);
    c->run("createExternalUser", insert);
    user = find();
  }
  if (!user || user->issuer != issuer) return std::nullopt;
  return user;
}

std::optional<User> PostgresStore::get_user(std::int64_t id) {
  auto c = acquire();
  Params p;
  p.integer(id);
  const auto r = c->run("getUser", p);
  if (r.size() == 0) return std::nullopt;
  return decode_user(ResultRow(r, 0));
}

std::vector<User> PostgresStore::list_users(std::string_view after, std::int64_t limit) {
  auto c = acquire();
  Params p;
  p.text(after).integer(limit);
  const auto r = c->run("listUsers", p);
  std::vector<User> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(decode_user(ResultRow(r, i)));
  return out;
}

std::int64_t PostgresStore::count_users() {
  auto c = acquire();
  return c->run("countUsers").i64(0, 0);
}

void PostgresStore::create_token(const ApiToken& t, std::string_view token_hash) {
  auto c = acquire();
  Params p;
  p.text(t.id).integer(t.user_id).text(t.name).text(token_hash).timestamp(t.created_at).timestamp(t.expires_at);
  c->run("createToken", p);
}

std::optional<TokenOwner> PostgresStore::find_token(std::string_view token_hash) {
  auto c = acquire();
  Params p;
  p.text(token_hash);
  const auto r = c->run("findTokenByHash", p);
  if (r.size() == 0) return std::nullopt;
  return decode_token_owner(ResultRow(r, 0));
}

std::vector<ApiToken> PostgresStore::list_tokens(std::optional<std::int64_t> user_id) {
  auto c = acquire();
  Params p;
  if (user_id) p.integer(*user_id);
  const auto r = c->run(user_id ? "listTokensByUser" : "listTokens", p);
  std::vector<ApiToken> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(decode_token(ResultRow(r, i)));
  return out;
}

bool PostgresStore::revoke_token(std::string_view token_id, Micros now) {
  auto c = acquire();
  Params p;
  p.text(token_id).timestamp(now);
  return c->run("revokeToken", p).affected() > 0;
}

namespace {
// uploadFile's parameters: the first of every statement that makes a row.
Params& new_upload_params(Params& p, const Upload& u) {
  return p.text(u.id)
      .integer(u.user_id)
      .text(u.file_name)
      .text(u.content_type)
      .text(u.storage_key)
      .text(u.store_upload_id)
      .timestamp(u.created_at);
}
}  // namespace

bool PostgresStore::create_pending_through_link(const Upload& u, std::int64_t link_bytes, Micros now) {
  if (!plausible_upload_id(u.id)) throw std::invalid_argument("upload id is not a UUID");
  Write w{"uploadFileThroughLink", {}};
  new_upload_params(w.params, u)
      .text(*u.upload_link_id)
      .integer(link_bytes)
      .timestamp(now);
  add_event(w, When::after, kUploadCreated, u.id);
  return run_recording(w) > 0;
}

namespace {
void optional_integer(Params& p, const std::optional<std::int64_t>& v) {
  if (v) {
    p.integer(*v);
  } else {
    p.null();
  }
}
}  // namespace

std::optional<UploadLink> PostgresStore::find_upload_link(std::string_view token_hash) {
  auto c = acquire();
  Params p;
  p.text(token_hash);
  const auto r = c->run("findUploadLinkByHash", p);
  if (r.size() == 0) return std::nullopt;
  return decode_upload_link(ResultRow(r, 0));
}

void PostgresStore::create_upload_link(const UploadLink& l, std::string_view token_hash) {
  auto c = acquire();
  Params p;
  p.text(l.id).integer(l.user_id).text(token_hash).text(l.note).text(l.allowed_types);
  optional_integer(p, l.max_files);
  optional_integer(p, l.max_bytes);
  p.timestamp(l.created_at).timestamp(l.expires_at);
  c->run("createUploadLink", p);
}

std::optional<UploadLink> PostgresStore::get_upload_link(std::string_view id) {
  auto c = acquire();
  Params p;
  p.text(id);
  const auto r = c->run("getUploadLink", p);
  if (r.size() == 0) return std::nullopt;
  return decode_upload_link(ResultRow(r, 0));
}

std::vector<UploadLink> PostgresStore::list_upload_links(std::int64_t user_id, std::int64_t limit) {
  auto c = acquire();
  Params p;
  p.integer(user_id).integer(limit);
  const auto r = c->run("listUploadLinks", p);
  std::vector<UploadLink> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(decode_upload_link(ResultRow(r, i)));
  return out;
}

bool PostgresStore::revoke_upload_link(std::string_view id, std::int64_t user_id, Micros now) {
  auto c = acquire();
  Params p;
  p.text(id).integer(user_id).timestamp(now);
  return c->run("revokeUploadLink", p).affected() > 0;
}

void PostgresStore::add_event(Write& w, When when, const EventToRecord& event, std::string_view upload_id) {
  const auto endpoints = events_.endpoints_for(event.type);
  if (!endpoints) return;
  Params p;
  p.text(event.type)
      .text(*endpoints)
      .timestamp(util::now_micros())
      .text(upload_id)
      .text(event.status)
      .text(event.or_status)
      .boolean(event.through_link_only);
  p.timestamp(events_.claim_until(util::now_micros()));
  (when == When::before ? w.before : w.after)
      .push_back({"recordEvent", std::move(p), Write::Companion::Claims::first_attempts});
}

int PostgresStore::run_alone(Connection& c, const Write& w) {
  if (!w.has_companions()) return c.run(w.query, w.params).affected();
  int rows = 0;
  c.transaction([&] {
    w.claimed.clear();
    const auto run_companion = [&](const Write::Companion& companion) {
      const auto r = c.run(companion.query, companion.params);
      if (companion.claims != Write::Companion::Claims::none) w.take_claimed(companion, r);
    };
    for (const auto& b : w.before) run_companion(b);
    rows = c.run(w.query, w.params).affected();
    for (const auto& a : w.after) run_companion(a);
  });
  return rows;
}

int PostgresStore::run_apart(Write& w) {
  int rows = 0;
  {
    auto c = acquire();
    rows = run_alone(*c, w);
  }
  events_.hand_over(std::move(w.claimed));
  return rows;
}

int PostgresStore::run_recording(Write& w) {
  const int rows = writes_->run(w);
  events_.hand_over(std::move(w.claimed));
  return rows;
}

void PostgresStore::create_pending(const Upload& u) {
  if (!plausible_upload_id(u.id)) throw std::invalid_argument("upload id is not a UUID");
  Write w{"uploadFile", {}};
  new_upload_params(w.params, u);
  add_event(w, When::after, kUploadCreated, u.id);
  run_recording(w);
}

bool PostgresStore::mark_complete(const Upload& u, StoreLeftovers leftovers) {
  if (!plausible_upload_id(u.id)) return false;
  Write w{"completeUpload", {}};
  w.params.text(u.id)
      .integer(static_cast<std::int64_t>(u.file_size))
      .text(u.content_type)
      .text(u.sha256)
      .timestamp(u.completed_at.value_or(util::now_micros()))
      .boolean(leftovers == StoreLeftovers::remain);
  add_event(w, When::after, kUploadCompleted, u.id);
  if (u.upload_link_id) add_event(w, When::after, kUploadLinkUsed, u.id);
  return run_recording(w) > 0;
}

bool PostgresStore::reserve_quota(std::string_view upload_id, std::int64_t user_id, std::int64_t bytes,
                                  std::int64_t default_quota) {
  if (!plausible_upload_id(upload_id)) return false;
  Write w{"reserveQuota", {}};
  w.params.text(upload_id).integer(user_id).integer(bytes).integer(default_quota);
  return writes_->run(w) > 0;
}

std::optional<User> PostgresStore::update_user(std::string_view name, const UserChange& change) {
  auto c = acquire();
  Params p;
  p.text(name).boolean(change.quota_bytes.has_value());
  if (change.quota_bytes && *change.quota_bytes) {
    p.integer(**change.quota_bytes);
  } else {
    p.null();
  }
  for (const auto& flag : {change.disabled, change.is_admin}) {
    if (flag) {
      p.boolean(*flag);
    } else {
      p.null();
    }
  }
  const auto r = c->run("updateUser", p);
  if (r.size() == 0) return std::nullopt;
  return decode_user(ResultRow(r, 0));
}

std::optional<Accounts::DeletionStarted> PostgresStore::begin_user_deletion(std::string_view name, Micros now) {
  auto c = acquire();
  Params p;
  p.text(name).timestamp(now);
  std::optional<DeletionStarted> started;
  c->transaction([&] {
    const auto r = c->run("beginUserDeletion", p);
    if (r.size() == 0) return;
    started = DeletionStarted{.user_id = r.i64(0, 0), .files = r.i64(0, 1)};
    if (const auto endpoints = events_.endpoints_for(kUploadFailed.type)) {
      Params failed;
      failed.text(*endpoints).integer(started->user_id).timestamp(now);
      c->run("recordUserFailures", failed);
    }
  });
  return started;
}

bool PostgresStore::remove_user_if_empty(std::int64_t user_id) {
  auto c = acquire();
  Params p;
  p.integer(user_id);
  return c->run("removeUserIfEmpty", p).affected() > 0;
}

std::vector<std::int64_t> PostgresStore::users_being_deleted(std::int64_t limit) {
  auto c = acquire();
  Params p;
  p.integer(limit);
  const auto r = c->run("usersBeingDeleted", p);
  std::vector<std::int64_t> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(r.i64(i, 0));
  return out;
}

bool PostgresStore::mark_failed(std::string_view upload_id, Micros now, StoreLeftovers leftovers) {
  if (!plausible_upload_id(upload_id)) return false;
  Write w{"failUpload", {}};
  w.params.text(upload_id).timestamp(now).boolean(leftovers == StoreLeftovers::remain);
  add_event(w, When::after, kUploadFailed, upload_id);
  return run_recording(w) > 0;
}

std::vector<Upload> PostgresStore::uploads_with_leftovers(std::int64_t limit) {
  return first_uploads("uploadsWithLeftovers", limit);
}

std::vector<Upload> PostgresStore::first_uploads(std::string_view query, std::int64_t limit) {
  auto c = acquire();
  Params p;
  p.integer(limit);
  const auto r = c->run(query, p);
  return uploads_in(r);
}

void PostgresStore::leftovers_removed(std::string_view upload_id) {
  if (!plausible_upload_id(upload_id)) return;
  Write w{"leftoversRemoved", {}};
  w.params.text(upload_id);
  writes_->run(w);
}

void PostgresStore::set_store_upload_id(std::string_view upload_id, std::string_view store_upload_id) {
  if (!plausible_upload_id(upload_id)) return;
  Write w{"setStoreUploadId", {}};
  w.params.text(upload_id).text(store_upload_id);
  writes_->run(w);
}

std::optional<Upload> PostgresStore::get_upload(std::string_view upload_id) {
  if (!plausible_upload_id(upload_id)) return std::nullopt;
  auto c = acquire();
  Params p;
  p.text(upload_id);
  const auto r = c->run("getUpload", p);
  if (r.size() == 0) return std::nullopt;
  return decode_upload(ResultRow(r, 0));
}

std::vector<Upload> PostgresStore::stale_pending(Micros created_before, const std::optional<ListPosition>& after,
                                                 std::int64_t limit) {
  if (after && !plausible_upload_id(after->upload_id)) return {};
  auto c = acquire();
  Params p;
  p.timestamp(created_before);
  if (after) p.timestamp(after->created_at).text(after->upload_id);
  p.integer(limit);
  const auto r = c->run(after ? "stalePendingAfter" : "stalePending", p);
  return uploads_in(r);
}

std::vector<WebhookDelivery> PostgresStore::claim_deliveries(Micros now, Micros claimed_until, std::int64_t limit) {
  auto c = acquire();
  Params due;
  due.timestamp(now);
  if (c->run("anyDeliveryDue", due).size() == 0) return {};
  Params p;
  p.timestamp(now).timestamp(claimed_until).integer(limit);
  const auto r = c->run("claimDeliveries", p);
  std::vector<WebhookDelivery> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(decode_delivery(ResultRow(r, i)));
  return out;
}

namespace {
// What releaseHeldAfter releases after: the deliveries `seqs`.
Params seq_array(const std::vector<std::int64_t>& seqs) {
  Params p;
  p.text(fmt::format("{{{}}}", fmt::join(seqs, ",")));
  return p;
}
}  // namespace

void PostgresStore::unclaim_deliveries(const std::vector<std::int64_t>& seqs, Micros now) {
  if (seqs.empty()) return;
  Write w{"unclaimDeliveries", seq_array(seqs)};
  w.params.timestamp(now);
  run_apart(w);
}

void PostgresStore::deliveries_succeeded(const std::vector<std::int64_t>& seqs, Micros now) {
  if (seqs.empty()) return;
  Write w{"deliverySucceeded", seq_array(seqs)};
  w.params.timestamp(now);
  release_after(w, seqs);
  run_apart(w);
}

void PostgresStore::delivery_failed(std::int64_t seq, std::optional<Micros> next_attempt_at, std::string_view error) {
  Write w{"deliveryFailed", {}};
  w.params.integer(seq).timestamp(next_attempt_at).text(error);
  if (!next_attempt_at) release_after(w, {seq});  // dead: the next one goes
  run_apart(w);
}

void PostgresStore::release_after(Write& w, const std::vector<std::int64_t>& seqs) {
  Params p = seq_array(seqs);
  p.timestamp(events_.claim_until(util::now_micros()));
  w.after.push_back({"releaseHeldAfter", std::move(p), Write::Companion::Claims::all});
}

void PostgresStore::disable_endpoint(std::string_view url, Micros now, std::string_view reason) {
  Write w{"disableEndpoint", {}};
  w.params.text(url).timestamp(now).text(reason);
  Params hold;
  hold.text(url);
  w.after.push_back({"holdEndpoint", std::move(hold)});
  run_apart(w);
}

std::int64_t PostgresStore::release_held_deliveries() {
  Write w{"releaseHeld", {}};
  return run_apart(w);
}

std::int64_t PostgresStore::prune_deliveries(Micros delivered_before, std::int64_t limit) {
  auto c = acquire();
  Params p;
  p.timestamp(delivered_before).integer(limit);
  return c->run("pruneDeliveries", p).affected();
}

std::int64_t PostgresStore::count_deliveries(DeliveryStatus status) {
  auto c = acquire();
  Params p;
  p.text(to_string(status));
  return c->run("countDeliveries", p).i64(0, 0);
}

std::vector<DeliveryRecord> PostgresStore::list_deliveries(std::optional<DeliveryStatus> status,
                                                           std::optional<std::int64_t> before_seq, std::int64_t limit) {
  auto c = acquire();
  Params p;
  p.text(status ? to_string(*status) : std::string_view()).integer(before_seq.value_or(0)).integer(limit);
  const auto r = c->run("listDeliveries", p);
  std::vector<DeliveryRecord> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(decode_delivery_record(ResultRow(r, i)));
  return out;
}

std::int64_t PostgresStore::retry_deliveries(const std::optional<std::string>& event_id, Micros now) {
  Write w{event_id ? "retryDelivery" : "retryDead", {}};
  if (event_id) w.params.text(*event_id);
  w.params.timestamp(now);
  return writes_->run(w);
}

bool PostgresStore::enable_endpoint(std::string_view url) {
  Write w{"enableEndpoint", {}};
  w.params.text(url);
  w.after.push_back({"releaseHeld", {}});
  return run_apart(w) > 0;
}

std::vector<DisabledEndpoint> PostgresStore::disabled_endpoints() {
  auto c = acquire();
  const auto r = c->run("listDisabledEndpoints");
  std::vector<DisabledEndpoint> out;
  for (int i = 0; i < r.size(); ++i) out.push_back(decode_disabled_endpoint(ResultRow(r, i)));
  return out;
}

std::int64_t PostgresStore::count_uploads(UploadStatus status) {
  auto c = acquire();
  Params p;
  p.text(to_string(status));
  return c->run("countUploadsByStatus", p).i64(0, 0);
}

std::vector<Upload> PostgresStore::list_files(const FileListing& listing) {
  if (listing.after && !plausible_upload_id(listing.after->upload_id)) return {};
  const auto query = file_listing_query(listing, kDialect);
  Params p;
  if (listing.user_id) p.integer(*listing.user_id);
  if (!listing.name_contains.empty()) p.text(file_listing_pattern(listing.name_contains));
  if (const auto& after = listing.after) {
    switch (listing.order) {
      case FileListing::Order::created: p.timestamp(after->created_at); break;
      case FileListing::Order::name: p.text(after->file_name); break;
      case FileListing::Order::size: p.integer(after->file_size); break;
    }
    p.text(after->upload_id);
  }
  p.integer(listing.limit);
  auto c = acquire();
  const auto r = c->run(query.name, query.sql, p);
  return uploads_in(r);
}

bool PostgresStore::delete_upload(std::string_view upload_id) {
  if (!plausible_upload_id(upload_id)) return false;
  Write w{"deleteUpload", {}};
  w.params.text(upload_id);
  add_event(w, When::before, kUploadDeleted, upload_id);  // from the row as it is; the delete always happens
  return run_recording(w) > 0;
}

bool PostgresStore::mark_deleting(std::string_view upload_id) {
  if (!plausible_upload_id(upload_id)) return false;
  Write w{"markDeleting", {}};
  w.params.text(upload_id);
  return writes_->run(w) > 0;
}

std::vector<Upload> PostgresStore::deleting_uploads(std::int64_t limit) {
  return first_uploads("deletingUploads", limit);
}

namespace {
Params& length_or_null(Params& p, const std::optional<std::uint64_t>& length) {
  return length ? p.integer(static_cast<std::int64_t>(*length)) : p.null();
}

// Appends the progress columns of addResumable (those after its upload id).
Params& resumable_params(Params& p, const ResumableState& r) {
  length_or_null(p, r.upload_length)
      .integer(static_cast<std::int64_t>(r.offset))
      .text(r.metadata)
      .integer(static_cast<std::int64_t>(r.part_size))
      .text(r.store_state)
      .text(r.hash_state)
      .timestamp(r.expires_at)
      .integer(r.lease_token)
      .timestamp(r.lease_expires_at);
  return p;
}
}  // namespace

void PostgresStore::add_resumable(const ResumableState& r) {
  if (!plausible_upload_id(r.upload_id)) throw std::invalid_argument("upload id is not a UUID");
  Write w{"addResumable", {}};
  w.params.text(r.upload_id);
  resumable_params(w.params, r);
  writes_->run(w);
}

void PostgresStore::create_pending_resumable(const Upload& u, const ResumableState& r) {
  if (!plausible_upload_id(u.id)) throw std::invalid_argument("upload id is not a UUID");
  if (r.upload_id != u.id) throw std::invalid_argument("the progress is another upload's");
  Write w{"uploadResumableFile", {}};
  new_upload_params(w.params, u);
  resumable_params(w.params, r);
  add_event(w, When::after, kUploadCreated, u.id);
  run_recording(w);
}

std::string PostgresStore::shared_secret(std::string_view name, std::string_view candidate) {
  Write w{"ensureSecret", {}};
  w.params.text(name).text(candidate);
  writes_->run(w);
  auto c = acquire();
  Params p;
  p.text(name);
  const auto r = c->run("getSecret", p);
  if (r.size() == 0) throw Error(Failure::unavailable, "the shared secret was not stored");
  return ResultRow(r, 0).text(0);
}

std::optional<ResumableState> PostgresStore::get_resumable(std::string_view upload_id) {
  if (!plausible_upload_id(upload_id)) return std::nullopt;
  auto c = acquire();
  Params p;
  p.text(upload_id);
  const auto r = c->run("getResumable", p);
  if (r.size() == 0) return std::nullopt;
  return decode_resumable(ResultRow(r, 0));
}

bool PostgresStore::take_lease(std::string_view upload_id, std::int64_t seen_token, Micros now, Micros until) {
  if (!plausible_upload_id(upload_id)) return false;
  Write w{"takeLease", {}};
  w.params.text(upload_id).integer(seen_token).timestamp(now).timestamp(until);
  return writes_->run(w) > 0;
}

bool PostgresStore::save_progress(const ResumableState& r) {
  if (!plausible_upload_id(r.upload_id)) return false;
  Write w{"saveProgress", {}};
  w.params.text(r.upload_id).integer(r.lease_token).integer(static_cast<std::int64_t>(r.offset));
  length_or_null(w.params, r.upload_length)
      .text(r.store_state)
      .text(r.hash_state)
      .timestamp(r.expires_at)
      .timestamp(r.lease_expires_at);
  return writes_->run(w) > 0;
}

bool PostgresStore::holds_lease(std::string_view upload_id, std::int64_t token) {
  if (!plausible_upload_id(upload_id)) return false;
  auto c = acquire();
  Params p;
  p.text(upload_id).integer(token);
  return c->run("holdsLease", p).size() > 0;
}

void PostgresStore::release_lease(std::string_view upload_id, std::int64_t token) {
  if (!plausible_upload_id(upload_id)) return;
  Write w{"releaseLease", {}};
  w.params.text(upload_id).integer(token);
  writes_->run(w);
}

std::vector<Upload> PostgresStore::expired_resumable(Micros now, std::int64_t limit) {
  auto c = acquire();
  Params p;
  p.timestamp(now).integer(limit);
  const auto r = c->run("expiredResumable", p);
  return uploads_in(r);
}

namespace {
// A session-level advisory lock, on a connection of its own that lives as
// long as the lock: if this process dies, the server releases it.
class AdvisoryLock final : public ExclusiveLock {
 public:
  explicit AdvisoryLock(std::unique_ptr<PostgresStore::Connection> c) : connection_(std::move(c)) {}

 private:
  std::unique_ptr<PostgresStore::Connection> connection_;  // closing it releases the lock
};
}  // namespace

std::unique_ptr<ExclusiveLock> PostgresStore::try_lock(std::string_view name) {
  std::unique_ptr<Connection> c;
  try {
    c = std::make_unique<Connection>(conninfo_, timeout_);
  } catch (const std::exception& e) {
    spdlog::error("postgres: cannot connect: {}", e.what());
    throw Error(Failure::unavailable, "the metadata database cannot be reached");
  }
  Params p;
  p.text(name);
  const auto r = c->exec_params("SELECT pg_try_advisory_lock(hashtext('s3uploader:' || $1))", p, "try_lock");
  if (!r.boolean(0, 0)) return nullptr;
  return std::make_unique<AdvisoryLock>(std::move(c));
}

std::unique_ptr<MetadataStore> open_postgres_store(const std::string& conninfo, unsigned pool_size,
                                                   std::chrono::milliseconds timeout) {
  return std::make_unique<PostgresStore>(conninfo, pool_size, timeout);
}

}  // namespace s3up::db
