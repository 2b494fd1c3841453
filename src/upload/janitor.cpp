// The janitor: clean-up after uploads whose process died (see janitor.hpp).
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "metrics/metrics.hpp"
#include "upload/janitor.hpp"
#include "util/blocking.hpp"

namespace s3up::upload {

namespace asio = boost::asio;

namespace {
constexpr std::int64_t kRowsPerRound = 100;
constexpr int kMaxRounds = 100;  // 10,000 rows per run at most; the rest next time

// A run's report, added to the metrics.
void count(const JanitorReport& report) {
  static auto& runs = metrics::registry().counter(
      "s3uploader_janitor_runs_total",
      "Janitor runs, by outcome: ran, or skipped (another instance held the lock).", {"outcome"});
  static auto& removed = metrics::registry().counter(
      "s3uploader_janitor_removed_total",
      "What the janitor ended: stale (uploads whose process died), deletions (interrupted deletions finished), "
      "leftovers (of uploads that failed while the store was down), expired (resumable uploads past their "
      "expiry), users (deleted users' last traces), failed (clean-ups that failed, tried again next run).",
      {"what"});
  runs.with({report.skipped ? "skipped" : "ran"}).add();
  const std::pair<const char*, int> counts[] = {{"stale", report.cleaned},
                                                {"deletions", report.deletions_finished},
                                                {"leftovers", report.leftovers_removed},
                                                {"expired", report.expired},
                                                {"users", report.users_deleted},
                                                {"failed", report.failed}};
  // Every child exists from the first run, so a rate of 0 reads as 0, not as missing.
  for (const auto& [what, n] : counts) removed.with({what}).add(n);
}
}  // namespace

asio::awaitable<JanitorReport> Janitor::run_once() {
  JanitorReport report;
  auto lock =
      co_await util::run_blocking(services_.blocking, [&] { return services_.coordination.try_lock("janitor"); });
  if (!lock) {
    spdlog::debug("janitor: another instance is cleaning up");
    report.skipped = true;
    count(report);
    co_return report;
  }
  const util::Micros cutoff =
      util::now_micros() - std::chrono::duration_cast<std::chrono::microseconds>(stale_after_).count();
  // A page at a time, each after the last row of the one before: a row
  // whose clean-up fails is counted once and tried again next run.
  std::optional<db::ListPosition> after;
  for (int round = 0; round < kMaxRounds; ++round) {
    auto rows = co_await util::run_blocking(
        services_.blocking, [&] { return services_.records.stale_pending(cutoff, after, kRowsPerRound); });
    for (const auto& row : rows) {
      if (services_.live->contains(row.id)) continue;  // still arriving here, only slowly
      try {
        co_await remove_leftovers(row);
        const auto now = util::now_micros();
        co_await util::run_blocking(services_.blocking, [&] { services_.records.mark_failed(row.id, now); });
        ++report.cleaned;
        spdlog::info("janitor: upload {} (user {}, started {}) died with its process; {} removed, marked failed",
                     row.id, row.user_id, util::rfc3339(row.created_at),
                     row.store_upload_id.empty() ? "its leftovers" : "its multipart upload and leftovers");
      } catch (const std::exception& e) {
        ++report.failed;
        spdlog::warn("janitor: cleaning up upload {} failed ({}); trying again next time", row.id, e.what());
      }
    }
    if (static_cast<std::int64_t>(rows.size()) < kRowsPerRound) break;
    after = db::ListPosition{rows.back().created_at, rows.back().id};
  }
  co_await finish_deletions(report);
  co_await remove_all_leftovers(report);
  co_await finish_user_deletions(report);
  for (int round = 0; resumable_ && round < kMaxRounds; ++round) {
    const auto ended = co_await resumable_->end_expired(kRowsPerRound);
    report.expired += static_cast<int>(ended);
    if (ended < static_cast<std::size_t>(kRowsPerRound)) break;
  }
  co_await util::run_blocking(services_.blocking, [&] { lock.reset(); });
  if (report.cleaned > 0 || report.failed > 0 || report.deletions_finished > 0 || report.expired > 0 ||
      report.leftovers_removed > 0 || report.users_deleted > 0) {
    spdlog::info(
        "janitor: {} stale upload(s) cleaned up, {} deletion(s) finished, {} failed upload(s)' leftovers removed, "
        "{} expired upload(s) ended, {} user(s) deleted, {} failed",
        report.cleaned, report.deletions_finished, report.leftovers_removed, report.expired, report.users_deleted,
        report.failed);
  }
  count(report);
  co_return report;
}

// Rows a crash left 'deleting': their object goes (again: removing an absent
// one is no error), then the row. A deletion still in progress elsewhere
// does the same steps, so both finishing it is harmless.
asio::awaitable<void> Janitor::finish_deletions(JanitorReport& report) {
  for (int round = 0; round < kMaxRounds; ++round) {
    const auto rows = co_await util::run_blocking(services_.blocking,
                                                  [&] { return services_.records.deleting_uploads(kRowsPerRound); });
    int failed = 0;
    for (const auto& row : rows) {
      try {
        co_await remove_object_then_row(services_, row);
        ++report.deletions_finished;
        spdlog::info("janitor: the deletion of upload {} (user {}) was interrupted; finished", row.id, row.user_id);
      } catch (const std::exception& e) {
        ++failed;
        spdlog::warn("janitor: finishing the deletion of upload {} failed ({}); trying again next time", row.id,
                     e.what());
      }
    }
    report.failed += failed;
    // A row that fails stays first in the list: stop rather than fetch it again.
    if (static_cast<std::int64_t>(rows.size()) < kRowsPerRound || failed > 0) break;
  }
}

// Uploads whose leftovers the store was down to take: a failed upload's,
// or what other writers left beside a completed one's object. A row that
// fails again stays first in the list, as above.
asio::awaitable<void> Janitor::remove_all_leftovers(JanitorReport& report) {
  for (int round = 0; round < kMaxRounds; ++round) {
    const auto rows = co_await util::run_blocking(
        services_.blocking, [&] { return services_.records.uploads_with_leftovers(kRowsPerRound); });
    for (const auto& row : rows) {
      try {
        co_await remove_leftovers(row);
        co_await util::run_blocking(services_.blocking, [&] { services_.records.leftovers_removed(row.id); });
        ++report.leftovers_removed;
        spdlog::info("janitor: upload {} (user {}, {}) had leftovers the store was down to take; removed", row.id,
                     row.user_id, db::to_string(row.status));
      } catch (const std::exception& e) {
        ++report.failed;
        spdlog::warn("janitor: removing the leftovers of upload {} failed ({}); trying again next time", row.id,
                     e.what());
        co_return;
      }
    }
    if (static_cast<std::int64_t>(rows.size()) < kRowsPerRound) break;
  }
}

// Users being deleted whose files and leftovers the steps before removed:
// the user goes (a user with something still left waits for a later run).
asio::awaitable<void> Janitor::finish_user_deletions(JanitorReport& report) {
  if (!accounts_) co_return;
  const auto users =
      co_await util::run_blocking(services_.blocking, [&] { return accounts_->users_being_deleted(kRowsPerRound); });
  for (const auto id : users) {
    const bool gone = co_await util::run_blocking(services_.blocking, [&] { return accounts_->remove_user_if_empty(id); });
    if (gone) {
      ++report.users_deleted;
      spdlog::info("janitor: user {} deleted, the last of their files gone", id);
    }
  }
}

asio::awaitable<void> Janitor::remove_leftovers(const db::Upload& row) {
  auto* recovery = services_.store.recovery();
  if (row.status == db::UploadStatus::complete) {
    // Never the file: only what other writers left beside it, if the store
    // keeps anything of the kind.
    if (recovery) co_await recovery->discard_beside(row.storage_key);
  } else if (recovery) {
    co_await recovery->discard_unfinished(row.storage_key, row.store_upload_id);
  } else {
    co_await services_.store.remove(row.storage_key);  // a store without leftovers of its own
  }
}

asio::awaitable<void> Janitor::run_every(std::chrono::milliseconds interval) {
  using Clock = std::chrono::steady_clock;
  // Awake every second at most, to answer a JanitorCall; a round only when
  // called or when the interval is up.
  const auto tick = std::min<std::chrono::milliseconds>(interval, std::chrono::seconds(1));
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    try {
      co_await run_once();
    } catch (const std::exception& e) {
      spdlog::warn("janitor: {}; trying again in {}s", e.what(),
                   std::chrono::duration_cast<std::chrono::seconds>(interval).count());
    }
    const auto next_round = Clock::now() + interval;
    do {
      timer.expires_after(tick);
      auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;  // cancelled: shutting down
    } while (Clock::now() < next_round && !services_.janitor_call->take());
  }
}

}  // namespace s3up::upload
