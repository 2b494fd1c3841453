#include "util/buffer_pool.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <new>
#include <stdexcept>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace s3up::util {

namespace asio = boost::asio;

// Buffers are mapped pages of their own (4096-aligned, so the same memory can
// be written with O_DIRECT), not heap memory: unmapping one gives it back to
// the system at once, where malloc's per-thread arenas would keep freed
// buffers resident, and the process's memory would outgrow the budget.
constexpr std::size_t kAlignment = 4096;

std::size_t mapped_size(std::size_t bytes) {
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  return rounded == 0 ? kAlignment : rounded;
}

void unmap(char* p, std::size_t bytes) { ::munmap(p, mapped_size(bytes)); }

void BufferPool::Buffer::reset() noexcept {
  if (!pool_) return;
  pool_->recycle(data_.release(), capacity_);  // memory first, then let a waiter have the budget
  pool_->release(capacity_);
  pool_.reset();
  capacity_ = 0;
}

BufferPool::Buffer& BufferPool::Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = std::move(other.data_);
    capacity_ = std::exchange(other.capacity_, 0);
    pool_ = std::move(other.pool_);
  }
  return *this;
}

BufferPool::~BufferPool() {
  for (auto& [size, p] : cache_) unmap(p, size);
}

char* BufferPool::allocate(std::size_t bytes) {
  {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < cache_.size(); ++i) {
      if (cache_[i].first == bytes) {
        char* p = cache_[i].second;
        cached_bytes_ -= bytes;
        cache_[i] = cache_.back();
        cache_.pop_back();
        return p;
      }
    }
  }
  // Fresh memory: give cached buffers back to the system until what stays
  // cached fits in what is still available (this reservation is already out).
  std::vector<std::pair<std::size_t, char*>> evicted;
  {
    std::lock_guard lock(mutex_);
    while (cached_bytes_ > available_ && !cache_.empty()) {
      cached_bytes_ -= cache_.back().first;
      evicted.push_back(cache_.back());
      cache_.pop_back();
    }
  }
  for (auto& [size, q] : evicted) unmap(q, size);
  void* p = ::mmap(nullptr, mapped_size(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<char*>(p);
}

void BufferPool::recycle(char* data, std::size_t bytes) {
  if (data == nullptr) return;
  {
    std::lock_guard lock(mutex_);
    if (cached_bytes_ + bytes <= cache_limit_) {
      cache_.emplace_back(bytes, data);
      cached_bytes_ += bytes;
      return;
    }
  }
  unmap(data, bytes);
}

std::size_t BufferPool::available() const {
  std::lock_guard lock(mutex_);
  return available_;
}

std::size_t BufferPool::waiters() const {
  std::lock_guard lock(mutex_);
  return waiters_.size();
}

bool BufferPool::try_reserve(std::size_t bytes, std::size_t keep_free) {
  std::lock_guard lock(mutex_);
  if (!waiters_.empty() || available_ < bytes + keep_free) return false;
  available_ -= bytes;
  return true;
}

std::size_t BufferPool::resident() const {
  std::lock_guard lock(mutex_);
  return budget_ - available_ + cached_bytes_;
}

asio::awaitable<void> BufferPool::reserve(std::size_t bytes) {
  return asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [this, bytes](auto handler) {
        std::unique_lock lock(mutex_);
        if (waiters_.empty() && available_ >= bytes) {
          available_ -= bytes;
          lock.unlock();
          auto ex = asio::get_associated_executor(handler);
          asio::post(ex, std::move(handler));
          return;
        }
        asio::any_io_executor ex = asio::get_associated_executor(handler);
        waiters_.push_back(Waiter{bytes, std::move(ex), std::move(handler)});
      },
      asio::use_awaitable);
}

void BufferPool::release(std::size_t bytes) {
  std::vector<Waiter> ready;
  {
    std::lock_guard lock(mutex_);
    available_ += bytes;
    while (!waiters_.empty() && available_ >= waiters_.front().bytes) {
      available_ -= waiters_.front().bytes;
      ready.push_back(std::move(waiters_.front()));
      waiters_.pop_front();
    }
  }
  for (auto& w : ready) {
    asio::post(w.executor, [h = std::move(w.handler)]() mutable { std::move(h)(); });
  }
}

BufferPool::Buffer BufferPool::make_buffer(std::size_t reserved_bytes) {
  Buffer b;
  b.pool_ = shared_from_this();
  b.capacity_ = reserved_bytes;
  b.data_.reset(allocate(reserved_bytes));  // on bad_alloc, ~Buffer returns the reservation
  return b;
}

asio::awaitable<BufferPool::Buffer> BufferPool::acquire(std::size_t bytes) {
  if (bytes > budget_) throw std::length_error("buffer larger than the whole buffer budget");
  // Without a wait, no trip through the executor: most acquisitions find room.
  if (!try_reserve(bytes, 0)) co_await reserve(bytes);
  co_return make_buffer(bytes);
}

BufferPool::Buffer BufferPool::try_acquire(std::size_t bytes, std::size_t keep_free) {
  if (bytes > budget_ || !try_reserve(bytes, keep_free)) return Buffer{};
  return make_buffer(bytes);
}

}  // namespace s3up::util
