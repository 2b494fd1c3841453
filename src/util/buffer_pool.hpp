#pragma once
// The one memory budget for request bodies in flight, across the process: S3
// part buffers, local-disk blocks and the connections' receive buffers. A
// writer takes a buffer before it fills it and gives it back when its bytes
// are stored; when the budget is spent, acquire() waits, the writer stops
// taking bytes, its connection stops reading the socket, and TCP pushes back
// on the client. Memory is bounded by the budget, not by file sizes or the
// number of clients: buffers in use plus the ones cached for reuse never
// exceed it.
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace s3up::util {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  explicit BufferPool(std::size_t budget_bytes)
      : budget_(budget_bytes), available_(budget_bytes), cache_limit_(budget_bytes / 4) {}
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Memory counted against the budget; returned when destroyed.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(Buffer&&) noexcept = default;
    Buffer& operator=(Buffer&& other) noexcept;  // gives back what this one held first
    ~Buffer() { reset(); }
    void reset() noexcept;  // gives the memory and its share of the budget back
    char* data() const { return data_.get(); }
    std::size_t capacity() const { return capacity_; }
    explicit operator bool() const { return data_ != nullptr; }

   private:
    friend class BufferPool;
    struct Free {
      void operator()(char*) const {}  // the pool takes the memory back in ~Buffer
    };
    std::unique_ptr<char, Free> data_;
    std::size_t capacity_ = 0;
    std::shared_ptr<BufferPool> pool_;
  };

  // Waits (first come, first served) until `bytes` of the budget are free.
  // Throws std::length_error if `bytes` exceeds the whole budget.
  boost::asio::awaitable<Buffer> acquire(std::size_t bytes);
  // A buffer now if the budget has room for it with `keep_free` bytes to
  // spare and nobody is waiting; an empty one otherwise. For callers that have
  // a smaller fallback and must not wait while they hold other buffers (a
  // wait there could deadlock the budget).
  Buffer try_acquire(std::size_t bytes, std::size_t keep_free = 0);

  std::size_t budget() const { return budget_; }
  std::size_t available() const;
  std::size_t waiters() const;  // acquire() calls waiting for room
  // Memory the pool holds: buffers in use plus those cached for reuse.
  std::size_t resident() const;

 private:
  boost::asio::awaitable<void> reserve(std::size_t bytes);
  bool try_reserve(std::size_t bytes, std::size_t keep_free);
  Buffer make_buffer(std::size_t reserved_bytes);
  void release(std::size_t bytes);
  char* allocate(std::size_t bytes);
  void recycle(char* data, std::size_t bytes);

  struct Waiter {
    std::size_t bytes;
    boost::asio::any_io_executor executor;  // where the waiting coroutine resumes
    boost::asio::any_completion_handler<void()> handler;
  };
  const std::size_t budget_;
  mutable std::mutex mutex_;
  std::size_t available_;
  std::deque<Waiter> waiters_;
  // Freed buffers kept for reuse, up to a quarter of the budget: fresh memory
  // costs a page fault per 4 KiB on first touch, which on a VM costs more than
  // the copy into it. Cached memory stays resident, so it is counted as part
  // of what is available: a fresh allocation first frees cached buffers until
  // cached <= available, which keeps in use + cached within the budget.
  const std::size_t cache_limit_;
  std::size_t cached_bytes_ = 0;
  std::vector<std::pair<std::size_t, char*>> cache_;
};

}  // namespace s3up::util
