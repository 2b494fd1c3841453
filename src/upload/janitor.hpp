#pragma once
// Cleans up after uploads whose process died (a crash, kill -9, a lost
// machine): their rows stay `pending`, with an S3 multipart upload or a local
// temporary file, and sometimes a committed object, behind them. At start-up
// and then every `interval`, rows pending for longer than `stale_after` (and
// not being received by this process) have what they left removed and are
// marked `failed`. With several instances on one database only one cleans at
// a time (MetadataStore::try_lock). It also finishes deletions a crash
// interrupted (rows left 'deleting'), removes what uploads left in a store
// that was unreachable at the time (uploads_with_leftovers: a failed
// upload's parts, other writers' tails beside a completed one), and
// ends resumable uploads past their expiry (Uploads::end_expired):
// those are judged by expiry, not age. Last, users being deleted go once
// nothing of theirs is left (Accounts::remove_user_if_empty).
#include <chrono>

#include <boost/asio/awaitable.hpp>

#include "upload/engine.hpp"

namespace s3up::upload {

struct JanitorReport {
  int cleaned = 0;             // rows marked failed, their leftovers removed
  int deletions_finished = 0;  // rows a crash left 'deleting': object and row removed
  int leftovers_removed = 0;   // uploads' leftovers the store was down to take at the time
  int expired = 0;             // unfinished resumable uploads past their expiry, ended
  int users_deleted = 0;       // users being deleted, gone with the last of their uploads
  int failed = 0;              // rows whose clean-up failed this time (tried again next time)
  bool skipped = false;        // another instance held the lock
};

class Janitor {
 public:
  Janitor(const Services& services, std::chrono::milliseconds stale_after, Uploads* resumable = nullptr,
          db::Accounts* accounts = nullptr)
      : services_(services), stale_after_(stale_after), resumable_(resumable), accounts_(accounts) {}
  boost::asio::awaitable<JanitorReport> run_once();
  // run_once now and every `interval`, and within a second of a
  // JanitorCall, until the coroutine is cancelled or the io_context stops.
  boost::asio::awaitable<void> run_every(std::chrono::milliseconds interval);

 private:
  boost::asio::awaitable<void> finish_deletions(JanitorReport& report);
  boost::asio::awaitable<void> remove_all_leftovers(JanitorReport& report);
  boost::asio::awaitable<void> remove_leftovers(const db::Upload& row);
  boost::asio::awaitable<void> finish_user_deletions(JanitorReport& report);

  Services services_;
  std::chrono::milliseconds stale_after_;
  Uploads* resumable_;
  db::Accounts* accounts_;
};

}  // namespace s3up::upload
