// The global buffer budget: waits when spent, every way of letting a buffer go
// gives its share back.
#include "util/buffer_pool.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace s3up::util {
namespace {

namespace asio = boost::asio;
constexpr std::size_t MiB = 1024 * 1024;

// A coroutine waiting on the pool counts as outstanding work, so run() would
// wait for it forever: run what is ready, for a moment.
void run_ready(asio::io_context& io) {
  io.restart();
  io.run_for(std::chrono::milliseconds(200));
}

TEST(BufferPool, WaitsWhenTheBudgetIsSpentAndResumesOnRelease) {
  asio::io_context io;
  auto pool = std::make_shared<BufferPool>(2 * MiB);
  BufferPool::Buffer a, b, c;
  bool third = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        a = co_await pool->acquire(MiB);
        b = co_await pool->acquire(MiB);
        c = co_await pool->acquire(MiB);  // waits for a or b
        third = true;
      },
      asio::detached);
  run_ready(io);
  EXPECT_FALSE(third);
  EXPECT_EQ(pool->available(), 0u);
  a.reset();
  run_ready(io);
  EXPECT_TRUE(third);
  EXPECT_EQ(pool->available(), 0u);
  b = BufferPool::Buffer{};  // move-assigning over a buffer gives it back
  EXPECT_EQ(pool->available(), MiB);
  { BufferPool::Buffer moved = std::move(c); }  // destroying the moved-to one gives it back, once
  EXPECT_EQ(pool->available(), 2 * MiB);
}

TEST(BufferPool, BuffersAreWritableAndAligned) {
  asio::io_context io;
  auto pool = std::make_shared<BufferPool>(8 * MiB);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int round = 0; round < 3; ++round) {  // the second and third reuse cached memory
          auto buf = co_await pool->acquire(5 * MiB);
          EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buf.data()) % 4096, 0u);
          std::memset(buf.data(), round, buf.capacity());
        }
      },
      asio::detached);
  io.run();
  EXPECT_EQ(pool->available(), 8 * MiB);
}

TEST(BufferPool, TryAcquireNeverWaitsAndNeverJumpsTheQueue) {
  asio::io_context io;
  auto pool = std::make_shared<BufferPool>(2 * MiB);
  auto a = pool->try_acquire(MiB);
  ASSERT_TRUE(a);
  EXPECT_EQ(a.capacity(), MiB);
  auto b = pool->try_acquire(MiB);
  ASSERT_TRUE(b);
  EXPECT_FALSE(pool->try_acquire(1));        // spent
  EXPECT_FALSE(pool->try_acquire(3 * MiB));  // more than the budget: empty, not an exception
  b.reset();
  EXPECT_FALSE(pool->try_acquire(MiB / 2, MiB)) << "took what it was to keep free";
  b = pool->try_acquire(MiB / 2, MiB / 2);
  ASSERT_TRUE(b);
  b.reset();
  b = pool->try_acquire(MiB);
  ASSERT_TRUE(b);
  // Someone waits for 2 MiB; a free MiB must not go to a try_acquire ahead of them.
  bool waiter_served = false;
  BufferPool::Buffer waited;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        waited = co_await pool->acquire(2 * MiB);
        waiter_served = true;
      },
      asio::detached);
  run_ready(io);
  a.reset();
  EXPECT_FALSE(pool->try_acquire(MiB)) << "jumped ahead of a waiter";
  b.reset();
  run_ready(io);
  EXPECT_TRUE(waiter_served);
  EXPECT_EQ(pool->available(), 0u);
}

// Buffers of mixed sizes, freed and taken again: what is in use plus what is
// cached for reuse never exceeds the budget (available() counts the cache).
TEST(BufferPool, CachedBuffersNeverTakeTheProcessPastTheBudget) {
  auto pool = std::make_shared<BufferPool>(4 * MiB);
  std::vector<BufferPool::Buffer> held;
  for (int round = 0; round < 4; ++round) {
    const std::size_t size = (round % 2 == 0) ? 512 * 1024 : 256 * 1024;
    for (auto b = pool->try_acquire(size); b; b = pool->try_acquire(size)) {
      held.push_back(std::move(b));
      EXPECT_LE(pool->resident(), 4 * MiB);
    }
    EXPECT_EQ(pool->available(), 4 * MiB % size);
    held.clear();  // cached, up to a quarter of the budget
    EXPECT_EQ(pool->available(), 4 * MiB);
    EXPECT_GT(pool->resident(), 0u);
    EXPECT_LE(pool->resident(), MiB);
  }
}

TEST(BufferPool, MoreThanTheWholeBudgetIsRefused) {
  asio::io_context io;
  auto pool = std::make_shared<BufferPool>(MiB);
  bool threw = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await pool->acquire(2 * MiB);
        } catch (const std::length_error&) {
          threw = true;
        }
      },
      asio::detached);
  io.run();
  EXPECT_TRUE(threw);
}

}  // namespace
}  // namespace s3up::util
