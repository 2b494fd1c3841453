#pragma once
// Group commit for the metadata stores (internal to db/).
//
// Every upload writes its row twice (pending, then complete), and a commit
// waits for the disk (SQLite's WAL fsync, PostgreSQL's WAL flush). One commit
// per write caps a store at a few hundred to a few thousand uploads a second,
// and wakes a database process per write. So writes that arrive while a
// commit is running wait, then go together: the first caller to find no batch
// running becomes the leader, takes everything queued, has the store run it
// as one transaction, and hands each caller its own result. The others sleep
// until theirs is done (or lead the next batch).
//
// How a store runs a batch is its own business (SQLite: statements in one
// BEGIN IMMEDIATE; PostgreSQL: one pipelined round trip), but the rules are
// the same: a statement that fails inside a batch (a conflict, say) must not
// fail its neighbours, so the batch is rolled back and each write rerun on
// its own; a failed COMMIT leaves the outcome unknown, so every write in the
// batch reports that error and none is rerun.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

namespace s3up::db {

template <class Write>
class WriteBatcher {
 public:
  struct Outcome {
    int rows = 0;  // rows the write changed
    std::exception_ptr error;
  };
  // Runs `writes` together and fills one outcome each. If it throws, every
  // write of the batch fails with that error.
  using RunBatch = std::function<void(const std::vector<const Write*>& writes, std::vector<Outcome>& outcomes)>;

  explicit WriteBatcher(RunBatch run_batch, std::size_t max_batch = 256)
      : run_batch_(std::move(run_batch)), max_batch_(max_batch) {}

  // Runs `write` in a transaction shared with the writes submitted meanwhile;
  // returns the rows it changed, or throws its error, once that is over.
  int run(const Write& write) {
    Item item{&write};
    std::unique_lock lock(mutex_);
    queue_.push_back(&item);
    if (leading_) {
      // Each waiter has its own condition variable, woken once: when its
      // write is done, or when it is handed the lead. (One shared by all
      // woke every waiter after every batch: most of the server's context
      // switches under load.)
      item.wake.wait(lock, [&] { return item.done || item.lead; });
    } else {
      leading_ = true;
    }
    if (!item.done) {
      // We lead: batches from the queue until our own write is done, then
      // the lead goes to the next waiter, if any.
      while (!item.done) {
        const auto n = static_cast<std::ptrdiff_t>(std::min(queue_.size(), max_batch_));
        std::vector<Item*> batch(queue_.begin(), queue_.begin() + n);
        queue_.erase(queue_.begin(), queue_.begin() + n);
        lock.unlock();
        execute(batch);
        lock.lock();
        for (Item* i : batch) {
          i->done = true;
          if (i != &item) i->wake.notify_one();
        }
      }
      if (queue_.empty()) {
        leading_ = false;
      } else {
        queue_.front()->lead = true;
        queue_.front()->wake.notify_one();
      }
    }
    lock.unlock();
    if (item.outcome.error) std::rethrow_exception(item.outcome.error);
    return item.outcome.rows;
  }

 private:
  struct Item {
    explicit Item(const Write* w) : write(w) {}
    const Write* write;
    Outcome outcome{};
    bool done = false;
    bool lead = false;  // handed the lead while waiting
    std::condition_variable wake;
  };

  void execute(std::vector<Item*>& batch) {
    std::vector<const Write*> writes;
    for (Item* i : batch) writes.push_back(i->write);
    std::vector<Outcome> outcomes(batch.size());
    try {
      run_batch_(writes, outcomes);
    } catch (...) {
      for (auto& o : outcomes) o.error = std::current_exception();
    }
    for (std::size_t k = 0; k < batch.size(); ++k) batch[k]->outcome = outcomes[k];
  }

  RunBatch run_batch_;
  const std::size_t max_batch_;
  std::mutex mutex_;
  std::deque<Item*> queue_;
  bool leading_ = false;
};

}  // namespace s3up::db
