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
    while (!item.done) {
      if (leading_) {
        finished_.wait(lock);
        continue;
      }
      leading_ = true;
      const auto n = static_cast<std::ptrdiff_t>(std::min(queue_.size(), max_batch_));
      std::vector<Item*> batch(queue_.begin(), queue_.begin() + n);
      queue_.erase(queue_.begin(), queue_.begin() + n);
      lock.unlock();
      execute(batch);
      lock.lock();
      for (Item* i : batch) i->done = true;
      leading_ = false;
      finished_.notify_all();
    }
    if (item.outcome.error) std::rethrow_exception(item.outcome.error);
    return item.outcome.rows;
  }

 private:
  struct Item {
    const Write* write;
    Outcome outcome{};
    bool done = false;
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
  std::condition_variable finished_;
  std::vector<Item*> queue_;
  bool leading_ = false;
};

}  // namespace s3up::db
