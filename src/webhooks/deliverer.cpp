#include <curl/curl.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <pthread.h>
#include <thread>

#include <spdlog/spdlog.h>

#include "metrics/metrics.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "webhooks/signed_post.hpp"
#include "webhooks/webhooks.hpp"

namespace s3up::webhooks {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr auto kIdlePoll = 250ms;        // how often an idle deliverer looks for due events
constexpr auto kShortPause = 50ms;       // between claims that found less than there was room for
constexpr auto kMarkDelay = 100ms;       // delivered ones wait at most this long to be marked, several at once
constexpr std::size_t kMarkBatch = 256;  // or until this many are
constexpr auto kPruneInterval = 10min;   // how often delivered ones past retention go
constexpr auto kReleaseInterval = 1s;    // how often held deliveries whose wait is over are looked for
constexpr int kClaimed = 8 * Deliverer::kConcurrency;  // the most a claim fills the queue to
constexpr int kQueued = 4 * kClaimed;    // the most handed-over deliveries wait here

db::Micros micros(std::chrono::milliseconds d) { return d.count() * 1000; }

// s3uploader_webhook_deliveries_total{outcome}: delivered, failed (to be
// tried again) or dead.
metrics::Counter& deliveries(std::string_view outcome) {
  static auto& family = metrics::registry().counter(
      "s3uploader_webhook_deliveries_total", "Webhook delivery attempts by outcome: delivered, failed (tried again later) or dead.",
      {"outcome"});
  return family.with({std::string(outcome)});
}

}  // namespace

// Deliveries come two ways. Most are handed over by this process's own
// writes: the transaction that records an event (or ends the wait of one
// held behind another) claims it for this deliverer, and it is queued here
// once that commits, so it goes out at once. The claimer thread asks the
// database for the rest: retries that came due, deliveries released by a
// periodic sweep or an operator, those of an instance that died, and any
// this queue had no room for (it gives their claims back at once). It also
// marks what the workers delivered, several at a time, which releases what
// they held.
class Deliverer::Impl {
 public:
  Impl(db::WebhookOutbox& outbox, WebhookSettings settings, std::string user_agent)
      : outbox_(outbox), settings_(std::move(settings)) {
    options_.timeout = settings_.timeout;
    options_.user_agent = std::move(user_agent);
    options_.ca_file = settings_.ca_file;
    options_.stopping = &stopping_;
  }

  void start() {
    start_curl();
    outbox_.hand_claimed_to([this](std::vector<db::WebhookDelivery> claimed) { take(std::move(claimed)); },
                            micros(lease()));
    claimer_ = std::thread([this] { claim_loop(); });
    for (int i = 0; i < kConcurrency; ++i) workers_.emplace_back([this] { work_loop(); });
  }

  void stop() {
    outbox_.hand_claimed_to(nullptr, 0);  // returns once no hand-over to this one is under way
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    work_ready_.notify_all();
    claimer_wake_.notify_all();
    if (claimer_.joinable()) claimer_.join();
    for (auto& w : workers_) w.join();
    workers_.clear();
    if (!delivered_.empty()) {
      try {
        outbox_.deliveries_succeeded(delivered_, util::now_micros());
      } catch (const std::exception& e) {
        spdlog::warn("webhooks: marking {} delivered event(s) at shutdown failed: {}", delivered_.size(), e.what());
      }
      delivered_.clear();
    }
    // Claimed but not sent: their lease runs out and another deliverer (or
    // this one after a restart) sends them.
  }

 private:
  // Long enough for one attempt and its bookkeeping.
  std::chrono::milliseconds lease() const { return settings_.timeout + 30s; }
  // For a delivery claimed now: after this, an attempt could outlast the
  // claim, and another deliverer may be sending it.
  Clock::time_point send_by() const { return Clock::now() + lease() - settings_.timeout; }

  void take(std::vector<db::WebhookDelivery> claimed) {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    const auto until = send_by();
    for (auto& d : claimed) {
      if (static_cast<int>(queue_.size()) >= kQueued) {
        returned_.push_back(d.seq);  // no room: back to the database, for a claim
        continue;
      }
      queue_.push_back({std::move(d), until});
      work_ready_.notify_one();
    }
    if (!returned_.empty()) claimer_wake_.notify_one();
  }

  void claim_loop() {
    pthread_setname_np(pthread_self(), "s3up-hook-claim");  // as top and perf show it
    auto next_prune = Clock::now();
    auto next_release = next_prune + kReleaseInterval;
    auto next_claim = next_prune;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      // Wakes for delivered ones to mark (a few, or any after kMarkDelay),
      // or for a claim: when it is time for one and half the queue is free.
      const auto room = [&] { return kClaimed - static_cast<int>(queue_.size()) - busy_; };
      const auto claim_due = [&] { return room() >= kClaimed / 2 && Clock::now() >= next_claim; };
      const auto wake = [&] {
        return stopping_ || delivered_.size() >= kMarkBatch || !returned_.empty() || claim_due();
      };
      auto wake_by = Clock::now() + (delivered_.empty() ? std::chrono::milliseconds(kIdlePoll) : kMarkDelay);
      if (room() >= kClaimed / 2) wake_by = std::min(wake_by, next_claim);
      claimer_wake_.wait_until(lock, wake_by, wake);
      if (stopping_) break;
      std::vector<std::int64_t> delivered, returned;
      delivered.swap(delivered_);
      returned.swap(returned_);
      const int free = claim_due() ? room() : 0;
      lock.unlock();
      std::vector<db::WebhookDelivery> claimed;
      try {
        // Marked before the claim: what they held is handed over (take()),
        // or, when released by another instance's sweep, may be claimed now.
        if (!delivered.empty()) outbox_.deliveries_succeeded(delivered, util::now_micros());
        if (!returned.empty()) outbox_.unclaim_deliveries(returned, util::now_micros());
        const auto now = util::now_micros();
        if (Clock::now() >= next_release) {
          next_release = Clock::now() + kReleaseInterval;
          outbox_.release_held_deliveries();
        }
        if (free > 0) claimed = outbox_.claim_deliveries(now, now + micros(lease()), free);
        if (Clock::now() >= next_prune) {
          next_prune = Clock::now() + kPruneInterval;
          const auto pruned = outbox_.prune_deliveries(now - micros(settings_.retention), 10'000);
          if (pruned > 0) spdlog::info("webhooks: {} delivered event(s) past their retention removed", pruned);
        }
      } catch (const std::exception& e) {
        // Delivered but not marked: their claims run out and they go again
        // (a receiver dedupes by webhook-id).
        spdlog::warn("webhooks: looking for events to deliver failed: {}", e.what());
      }
      lock.lock();
      if (free > 0) {
        // All it had room for: at once again. Less (or it waits for
        // deliveries under way, as a completion waits for its creation):
        // after a moment. None: after the idle poll.
        const int n = static_cast<int>(claimed.size());
        next_claim = Clock::now() + (n == free ? 0ms : n > 0 ? std::chrono::milliseconds(kShortPause) : kIdlePoll);
      }
      const auto until = send_by();
      for (auto& d : claimed) queue_.push_back({std::move(d), until});
      if (!claimed.empty()) work_ready_.notify_all();
    }
  }

  void work_loop() {
    pthread_setname_np(pthread_self(), "s3up-hook-send");
    CURL* curl = curl_easy_init();  // one per worker: its connections are kept between deliveries
    std::unique_lock lock(mutex_);
    while (true) {
      work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      auto next = std::move(queue_.front());
      queue_.pop_front();
      // Its claim ends before an attempt could: another deliverer may send
      // it by then, so this one leaves it.
      if (Clock::now() > next.send_by) continue;
      ++busy_;
      lock.unlock();
      try {
        deliver(curl, next.delivery);
      } catch (const std::exception& e) {
        // The database: the claim runs out, and the delivery comes round again.
        spdlog::warn("webhooks: recording the delivery of {} failed: {}", next.delivery.event_id, e.what());
      }
      lock.lock();
      --busy_;
      // The claimer: enough to mark, or room for a claim (else its timer).
      if (delivered_.size() == kMarkBatch || (queue_.empty() && busy_ == 0)) claimer_wake_.notify_one();
    }
    if (curl) curl_easy_cleanup(curl);
  }

  void deliver(CURL* curl, const db::WebhookDelivery& d) {
    const std::string body = payload(d);
    const Answer answer =
        post_signed(curl, {.url = d.endpoint, .id = d.event_id, .body = body}, settings_.secrets, options_, nullptr);
    const auto now = util::now_micros();
    const std::string where = util::redact_url_userinfo(d.endpoint);
    if (answer.status >= 200 && answer.status < 300) {
      {
        std::lock_guard lock(mutex_);
        delivered_.push_back(d.seq);
      }
      deliveries("delivered").add();
      spdlog::debug("webhooks: {} {} delivered to {} (attempt {})", d.event_type, d.event_id, where, d.attempts);
      return;
    }
    const std::string error = answer.status ? "HTTP " + std::to_string(answer.status) : answer.error;
    if (answer.status == 410) {
      outbox_.disable_endpoint(d.endpoint, now, "410 Gone");
      spdlog::warn("webhooks: {} answered 410 Gone: nothing more is sent to it until it is enabled again", where);
    }
    if (stopping_ && answer.status == 0) return;  // cut off by shutdown: the claim runs out
    const std::chrono::seconds retry_after =
        answer.status == 429 || answer.status == 503 ? answer.retry_after : std::chrono::seconds{};
    const db::Micros next = now + micros(backoff(d.attempts, retry_after));
    if (next > d.created_at + micros(settings_.max_age)) {
      deliveries("dead").add();
      outbox_.delivery_failed(d.seq, std::nullopt, error);
      spdlog::error("webhooks: {} {} to {} is dead after {} attempt(s) over webhook_max_age; last: {}", d.event_type,
                    d.event_id, where, d.attempts, error);
      return;
    }
    deliveries("failed").add();
    outbox_.delivery_failed(d.seq, next, error);
    spdlog::warn("webhooks: {} {} to {} failed (attempt {}): {}; trying again at {}", d.event_type, d.event_id, where,
                 d.attempts, error, util::rfc3339(next));
  }

  db::WebhookOutbox& outbox_;
  const WebhookSettings settings_;
  PostOptions options_;
  std::mutex mutex_;
  std::condition_variable work_ready_;     // workers wait for the queue
  std::condition_variable claimer_wake_;  // the claimer waits for deliveries to mark, or room
  // Set under mutex_ (so waits see it), read without it by transfers under way.
  std::atomic<bool> stopping_{false};
  struct Queued {
    db::WebhookDelivery delivery;
    Clock::time_point send_by;  // its claim's end, less one attempt
  };
  std::deque<Queued> queue_;
  std::vector<std::int64_t> returned_;   // handed over with no room for them, to be unclaimed
  std::vector<std::int64_t> delivered_;  // by the workers, to be marked by the claimer
  int busy_ = 0;
  std::thread claimer_;
  std::vector<std::thread> workers_;

};

Deliverer::Deliverer(db::WebhookOutbox& outbox, WebhookSettings settings, std::string user_agent)
    : impl_(std::make_unique<Impl>(outbox, std::move(settings), std::move(user_agent))) {}

Deliverer::~Deliverer() { stop(); }

void Deliverer::start() { impl_->start(); }

void Deliverer::stop() { impl_->stop(); }

}  // namespace s3up::webhooks
