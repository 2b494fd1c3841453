#include <curl/curl.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "util/text.hpp"
#include "util/time.hpp"
#include "webhooks/signed_post.hpp"
#include "webhooks/webhooks.hpp"

namespace s3up::webhooks {

namespace {

using namespace std::chrono_literals;
constexpr auto kIdlePoll = 250ms;       // how often an idle deliverer looks for due events
constexpr auto kShortPause = 50ms;      // between claims that found less than there was room for
constexpr auto kPruneInterval = 10min;  // how often delivered ones past retention go
constexpr int kQueued = 8 * Deliverer::kConcurrency;  // claimed and not yet done, at most

db::Micros micros(std::chrono::milliseconds d) { return d.count() * 1000; }

}  // namespace

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
    claimer_ = std::thread([this] { claim_loop(); });
    for (int i = 0; i < kConcurrency; ++i) workers_.emplace_back([this] { work_loop(); });
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    changed_.notify_all();
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
  void claim_loop() {
    auto next_prune = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      // Claimed ahead of the workers, and only once half the queue is free,
      // so a claim (the costly statement here) is made once for several
      // deliveries, however fast the receiver answers.
      const int free = kQueued - static_cast<int>(queue_.size()) - busy_;
      if (free < kQueued / 2) {
        changed_.wait(lock);
        continue;
      }
      // What the workers delivered since the last round, marked in one
      // statement (before the claim: a delivery waiting for one of them to
      // its upload's endpoint may go in this same round).
      std::vector<std::int64_t> delivered;
      delivered.swap(delivered_);
      lock.unlock();
      std::vector<db::WebhookDelivery> claimed;
      try {
        if (!delivered.empty()) outbox_.deliveries_succeeded(delivered, util::now_micros());
        const auto now = util::now_micros();
        // Long enough for one attempt and its bookkeeping.
        claimed = outbox_.claim_deliveries(now, now + micros(settings_.timeout) + 30'000'000, free);
        if (std::chrono::steady_clock::now() >= next_prune) {
          next_prune = std::chrono::steady_clock::now() + kPruneInterval;
          const auto pruned = outbox_.prune_deliveries(now - micros(settings_.retention), 10'000);
          if (pruned > 0) spdlog::info("webhooks: {} delivered event(s) past their retention removed", pruned);
        }
      } catch (const std::exception& e) {
        // Delivered but not marked: their claims run out and they go again
        // (a receiver dedupes by webhook-id).
        spdlog::warn("webhooks: looking for events to deliver failed: {}", e.what());
      }
      lock.lock();
      const bool full = static_cast<int>(claimed.size()) == free;
      for (auto& d : claimed) queue_.push_back(std::move(d));
      if (!claimed.empty()) changed_.notify_all();
      if (claimed.empty()) {
        changed_.wait_for(lock, kIdlePoll, [&] { return stopping_ || !delivered_.empty(); });
      } else if (!full) {
        // Less was due than there was room for (or it waits for deliveries
        // under way, as a completion waits for its creation): the next claim
        // waits for a few of those, or a moment, not for the next answer.
        changed_.wait_for(lock, kShortPause,
                          [&] { return stopping_ || static_cast<int>(delivered_.size()) >= kConcurrency; });
      }
    }
  }

  void work_loop() {
    CURL* curl = curl_easy_init();  // one per worker: its connections are kept between deliveries
    std::unique_lock lock(mutex_);
    while (true) {
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      auto d = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
      lock.unlock();
      try {
        deliver(curl, d);
      } catch (const std::exception& e) {
        // The database: the claim runs out, and the delivery comes round again.
        spdlog::warn("webhooks: recording the delivery of {} failed: {}", d.event_id, e.what());
      }
      lock.lock();
      --busy_;
      changed_.notify_all();
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
      outbox_.delivery_failed(d.seq, std::nullopt, error);
      spdlog::error("webhooks: {} {} to {} is dead after {} attempt(s) over webhook_max_age; last: {}", d.event_type,
                    d.event_id, where, d.attempts, error);
      return;
    }
    outbox_.delivery_failed(d.seq, next, error);
    spdlog::warn("webhooks: {} {} to {} failed (attempt {}): {}; trying again at {}", d.event_type, d.event_id, where,
                 d.attempts, error, util::rfc3339(next));
  }

  db::WebhookOutbox& outbox_;
  const WebhookSettings settings_;
  PostOptions options_;
  std::mutex mutex_;
  std::condition_variable changed_;
  // Set under mutex_ (so waits see it), read without it by transfers under way.
  std::atomic<bool> stopping_{false};
  std::deque<db::WebhookDelivery> queue_;
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
