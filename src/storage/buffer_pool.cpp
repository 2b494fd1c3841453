#include "storage/buffer_pool.hpp"

#include <cstdlib>
#include <new>
#include <stdexcept>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace s3up::storage {

namespace asio = boost::asio;

// 4096-aligned, so the same memory can be written with O_DIRECT.
constexpr std::size_t kAlignment = 4096;

void BufferPool::Buffer::Free::operator()(char* p) const { std::free(p); }

BufferPool::Buffer::~Buffer() {
  const std::size_t bytes = capacity_;
  data_.reset();  // free first, then let a waiter allocate
  if (pool_ && bytes > 0) pool_->release(bytes);
}

std::size_t BufferPool::available() const {
  std::lock_guard lock(mutex_);
  return available_;
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

asio::awaitable<BufferPool::Buffer> BufferPool::acquire(std::size_t bytes) {
  if (bytes > budget_) throw std::length_error("buffer larger than the whole buffer budget");
  co_await reserve(bytes);
  Buffer b;
  b.pool_ = shared_from_this();
  b.capacity_ = bytes;
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  auto* p = static_cast<char*>(std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded));
  if (p == nullptr) throw std::bad_alloc();  // ~Buffer returns the reservation
  b.data_.reset(p);
  co_return b;
}

}  // namespace s3up::storage
