#pragma once
// A TCP proxy on 127.0.0.1 in front of a real server (radosgw, or the
// service), which counts the HTTP requests passing through it by method: how
// a test sees how many requests the service made for one of its own, without
// a mock of the store. It can also flip one byte on the way to the server
// (corrupt_upstream_byte): what a checksum is there to catch; and lose the
// answer to one request after the server has acted on it
// (lose_answers_to): what a retry or a clean-up must cope with.
//
// Requests are found by their heads, each body skipped by its Content-Length
// (clients that send chunked bodies are not supported).
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
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
  // The next `count` requests with this method whose target contains
  // `target_part` go through whole; when the answer to one starts to come
  // back, the proxy closes its connection instead of passing it on.
  void lose_answers_to(std::string method, std::string target_part, int count = 1) {
    std::lock_guard lock(mutex_);
    lose_ = LoseAnswers{std::move(method), std::move(target_part), count};
  }
  void stop_losing_answers() {
    std::lock_guard lock(mutex_);
    lose_.reset();
  }
  int answers_lost() const {
    std::lock_guard lock(mutex_);
    return answers_lost_;
  }

 private:
  using tcp = boost::asio::ip::tcp;
  static constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  // One client connection and its upstream; both pumps run on io_'s thread.
  struct Link {
    Link(tcp::socket c, boost::asio::io_context& io) : client(std::move(c)), upstream(io) {}
    tcp::socket client, upstream;
    std::string head;             // the current request's head so far
    std::uint64_t body_left = 0;  // of the current request's body
    bool marked = false;          // the current request's answer is to be lost
    bool lose_next_answer = false;
  };

  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, client] = co_await acceptor_.async_accept(use_tuple);
      if (ec) co_return;
      auto link = std::make_shared<Link>(std::move(client), io_);
      auto [cec] = co_await link->upstream.async_connect(upstream_, use_tuple);
      if (cec) continue;
      boost::asio::co_spawn(io_, pump(link, true), boost::asio::detached);
      boost::asio::co_spawn(io_, pump(link, false), boost::asio::detached);
    }
  }

  // Copies one direction; upstream bytes are scanned for requests.
  boost::asio::awaitable<void> pump(std::shared_ptr<Link> link, bool to_upstream) {
    auto& from = to_upstream ? link->client : link->upstream;
    auto& to = to_upstream ? link->upstream : link->client;
    std::array<char, 64 * 1024> buffer{};
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(boost::asio::buffer(buffer), use_tuple);
      if (ec) break;
      if (to_upstream) {
        scan(std::string_view(buffer.data(), n), *link);
        tamper(buffer.data(), n);
      } else if (link->lose_next_answer) {
        {
          std::lock_guard lock(mutex_);
          ++answers_lost_;
        }
        boost::system::error_code ignored;
        link->client.close(ignored);
        link->upstream.close(ignored);
        co_return;
      }
      auto [wec, written] = co_await boost::asio::async_write(to, boost::asio::buffer(buffer.data(), n), use_tuple);
      if (wec) break;
    }
    boost::system::error_code ignored;
    to.shutdown(tcp::socket::shutdown_send, ignored);
  }

  void scan(std::string_view data, Link& link) {
    while (!data.empty()) {
      if (link.body_left > 0) {
        const auto n = std::min<std::uint64_t>(link.body_left, data.size());
        link.body_left -= n;
        data.remove_prefix(n);
        if (link.body_left == 0 && link.marked) link.lose_next_answer = true;
        continue;
      }
      const std::size_t searched = link.head.size() < 3 ? 0 : link.head.size() - 3;
      link.head.append(data);
      const auto end = link.head.find("\r\n\r\n", searched);
      if (end == std::string::npos) return;
      const std::size_t rest_in_data = link.head.size() - (end + 4);  // the bytes after the head, all from `data`
      data = data.substr(data.size() - rest_in_data);
      link.head.resize(end + 4);
      on_request_head(link);
      link.head.clear();
    }
  }

  void on_request_head(Link& link) {
    const std::string& head = link.head;
    const auto space = head.find(' ');
    const auto second = head.find(' ', space + 1);
    if (space == std::string::npos || second == std::string::npos) return;
    const std::string method = head.substr(0, space), target = head.substr(space + 1, second - space - 1);
    std::string lower = head;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    link.body_left = 0;
    if (const auto at = lower.find("\r\ncontent-length:"); at != std::string::npos) {
      link.body_left = std::strtoull(lower.c_str() + at + 17, nullptr, 10);
    }
    std::lock_guard lock(mutex_);
    ++counts_[method];
    link.marked = lose_ && method == lose_->method && target.find(lose_->target_part) != std::string::npos;
    if (link.marked && --lose_->count == 0) lose_.reset();
    if (link.marked && link.body_left == 0) link.lose_next_answer = true;
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
  struct LoseAnswers {
    std::string method, target_part;
    int count;
  };
  std::optional<LoseAnswers> lose_;
  int answers_lost_ = 0;
};

}  // namespace s3up::testing
