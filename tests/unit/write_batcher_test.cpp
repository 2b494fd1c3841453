// Group commit (db/write_batcher.hpp): each caller gets its own result or
// error, a failing write does not fail its neighbours, a failed batch fails
// every write in it, and concurrent writes really are grouped.
#include "db/write_batcher.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>

namespace s3up::db {
namespace {

struct FakeWrite {
  int value = 0;
  bool fails = false;
};

// A database whose batches take as long as a commit's fsync; a write marked
// `fails` fails on its own, as the stores' rerun-each-alone path makes it.
struct FakeDatabase {
  std::atomic<int> batches{0}, largest{0}, committed{0};
  std::atomic<bool> commit_breaks{false};
  WriteBatcher<FakeWrite> batcher{[this](const auto& writes, auto& outcomes) {
    ++batches;
    largest = std::max<int>(largest, static_cast<int>(writes.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a commit's fsync
    if (commit_breaks) throw std::runtime_error("connection lost during COMMIT");
    for (std::size_t i = 0; i < writes.size(); ++i) {
      if (writes[i]->fails) {
        outcomes[i].error = std::make_exception_ptr(std::runtime_error("conflict"));
      } else {
        outcomes[i].rows = writes[i]->value;
        ++committed;
      }
    }
  }};
};

TEST(WriteBatcher, EachCallerGetsItsOwnResultOrError) {
  FakeDatabase db;
  EXPECT_EQ(db.batcher.run(FakeWrite{7}), 7);
  EXPECT_THROW(db.batcher.run(FakeWrite{1, true}), std::runtime_error);
  EXPECT_EQ(db.batcher.run(FakeWrite{3}), 3);
}

TEST(WriteBatcher, ConcurrentWritesAreGroupedAndNoneIsLost) {
  FakeDatabase db;
  constexpr int kThreads = 32, kEach = 20;
  std::atomic<int> failures{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const bool fails = (t * kEach + i) % 10 == 0;
        try {
          if (db.batcher.run(FakeWrite{t * 1000 + i, fails}) != t * 1000 + i) ++wrong;
          if (fails) ++wrong;
        } catch (const std::runtime_error&) {
          ++failures;
          if (!fails) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(failures, kThreads * kEach / 10);
  EXPECT_EQ(db.committed, kThreads * kEach - failures);
  EXPECT_LT(db.batches, kThreads * kEach / 4) << "writes were not grouped";
  EXPECT_GT(db.largest, 4);
}

TEST(WriteBatcher, AFailedBatchFailsEveryWriteInIt) {
  FakeDatabase db;
  db.commit_breaks = true;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      try {
        db.batcher.run(FakeWrite{1});
      } catch (const std::runtime_error&) {
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 8);
  db.commit_breaks = false;
  EXPECT_EQ(db.batcher.run(FakeWrite{5}), 5) << "the batcher recovers";
}

}  // namespace
}  // namespace s3up::db
