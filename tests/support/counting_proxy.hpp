#pragma once
// A TCP proxy on 127.0.0.1 in front of a real server (radosgw, or the
// service), which counts the HTTP requests passing through it by method: how
// a test sees how many requests the service made for one of its own, without
// a mock of the store. It can also flip one byte on the way to the server
// (corrupt_upstream_byte): what a checksum is there to catch.
//
// Requests are counted by their request line ("GET /..."): at the start of a
// connection's stream and after each request's headers. It is meant for
// bodiless requests (GET, HEAD, DELETE); the body of a PUT could hide or fake
// a request line.
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace s3up::testing {

class CountingProxy {
 public:
  CountingProxy(std::string upstream_host, unsigned short upstream_port)
      : upstream_({boost::asio::ip::make_address(upstream_host), upstream_port}) {
    acceptor_.open(boost::asio::ip::tcp::v4());
    acceptor_.set_option(boost::asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~CountingProxy() {
    io_.stop();
    thread_.join();
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }

  int count(const std::string& method) const {
    std::lock_guard lock(mutex_);
    const auto it = counts_.find(method);
    return it == counts_.end() ? 0 : it->second;
  }
  void reset() {
    std::lock_guard lock(mutex_);
    counts_.clear();
  }
  // Inverts the bits of the byte at `offset` of everything sent upstream
  // (all connections, in the order they were read), once.
  void corrupt_upstream_byte(std::uint64_t offset) {
    std::lock_guard lock(mutex_);
    corrupt_at_ = offset;
  }
  bool corrupted() const {
    std::lock_guard lock(mutex_);
    return corrupted_;
  }

 private:
  using tcp = boost::asio::ip::tcp;
  static constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, client] = co_await acceptor_.async_accept(use_tuple);
      if (ec) co_return;
      auto pair = std::make_shared<std::pair<tcp::socket, tcp::socket>>(std::move(client), tcp::socket(io_));
      auto [cec] = co_await pair->second.async_connect(upstream_, use_tuple);
      if (cec) continue;
      boost::asio::co_spawn(io_, pump(pair, true), boost::asio::detached);
      boost::asio::co_spawn(io_, pump(pair, false), boost::asio::detached);
    }
  }

  // Copies one direction; upstream bytes are scanned for request lines.
  boost::asio::awaitable<void> pump(std::shared_ptr<std::pair<tcp::socket, tcp::socket>> pair, bool to_upstream) {
    auto& from = to_upstream ? pair->first : pair->second;
    auto& to = to_upstream ? pair->second : pair->first;
    std::array<char, 64 * 1024> buffer{};
    std::string seen;         // the current request's head so far
    bool at_request_start = true;
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(boost::asio::buffer(buffer), use_tuple);
      if (ec) break;
      if (to_upstream) {
        scan(std::string_view(buffer.data(), n), seen, at_request_start);
        tamper(buffer.data(), n);
      }
      auto [wec, written] = co_await boost::asio::async_write(to, boost::asio::buffer(buffer.data(), n), use_tuple);
      if (wec) break;
    }
    boost::system::error_code ignored;
    to.shutdown(tcp::socket::shutdown_send, ignored);
  }

  void scan(std::string_view data, std::string& seen, bool& at_request_start) {
    seen.append(data);
    for (;;) {
      if (at_request_start) {
        const auto space = seen.find(' ');
        if (space == std::string::npos) return;
        {
          std::lock_guard lock(mutex_);
          ++counts_[seen.substr(0, space)];
        }
        at_request_start = false;
      }
      const auto end = seen.find("\r\n\r\n");
      if (end == std::string::npos) return;
      seen.erase(0, end + 4);
      at_request_start = true;
    }
  }

  void tamper(char* data, std::size_t n) {
    std::lock_guard lock(mutex_);
    if (corrupt_at_ && !corrupted_ && *corrupt_at_ >= upstream_bytes_ && *corrupt_at_ < upstream_bytes_ + n) {
      data[*corrupt_at_ - upstream_bytes_] = static_cast<char>(~data[*corrupt_at_ - upstream_bytes_]);
      corrupted_ = true;
    }
    upstream_bytes_ += n;
  }

  tcp::endpoint upstream_;
  boost::asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::map<std::string, int> counts_;
  std::optional<std::uint64_t> corrupt_at_;
  std::uint64_t upstream_bytes_ = 0;
  bool corrupted_ = false;
};

}  // namespace s3up::testing
