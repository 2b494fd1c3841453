#pragma once
// Runs blocking work (SQLite, file-system calls, fsync) on a thread pool so it
// never stalls an I/O thread, and resumes the caller on its own executor.
//
// Pass lambdas that capture by reference only: `co_await run_blocking(pool,
// [&] { ... })`. The caller is suspended until the work is done, so its locals
// outlive the call; and GCC 12 destroys a closure written inside a co_await
// expression twice, which is harmless only when its captures are references.
#include <type_traits>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace s3up::util {

namespace detail {
// The callable is a parameter, so it lives in the coroutine frame (a lambda
// coroutine's captures would die with the lambda object, before it runs).
template <class Fn>
auto invoke_as_awaitable(Fn fn) -> boost::asio::awaitable<std::invoke_result_t<Fn&>> {
  if constexpr (std::is_void_v<std::invoke_result_t<Fn&>>) {
    fn();
    co_return;
  } else {
    co_return fn();
  }
}
}  // namespace detail

// Deliberately not a coroutine itself: GCC 12 destroys a prvalue argument of a
// coroutine twice (a temporary lambda passed straight into co_await), so the
// callable is moved, as an xvalue, into the coroutine that runs it.
template <class Fn>
boost::asio::awaitable<std::invoke_result_t<Fn&>> run_blocking(boost::asio::thread_pool& pool, Fn fn) {
  // co_spawn runs the body on the pool; its completion (value or exception) is
  // delivered through the awaiting coroutine's executor.
  return boost::asio::co_spawn(pool.get_executor(), detail::invoke_as_awaitable(std::move(fn)),
                               boost::asio::use_awaitable);
}

}  // namespace s3up::util
