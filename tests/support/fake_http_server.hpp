#pragma once
// A tiny HTTP/1.1 server on 127.0.0.1 for tests that need a third party we
// cannot run for real on a test machine: the AWS container-credential and EC2
// instance-metadata endpoints. It answers each request with what the test's
// handler returns and records every request it saw.
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace s3up::testing {

class FakeHttpServer {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  struct Reply {
    unsigned status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  using Handler = std::function<Reply(const Request&)>;

  explicit FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
    acceptor_.open(boost::asio::ip::tcp::v4());
    acceptor_.set_option(boost::asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind({boost::asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeHttpServer() {
    io_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }

  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto socket = co_await acceptor_.async_accept(boost::asio::use_awaitable);
      boost::asio::co_spawn(io_, serve(std::move(socket)), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    try {
      for (;;) {
        Request req;
        co_await http::async_read(socket, buffer, req, boost::asio::use_awaitable);
        Reply reply;
        {
          std::lock_guard lock(mutex_);
          requests_.push_back(req);
          reply = handler_(req);
        }
        http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
        res.body() = reply.body;
        for (const auto& [name, value] : reply.headers) res.set(name, value);
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        co_await http::async_write(socket, res, boost::asio::use_awaitable);
        if (!req.keep_alive()) co_return;
      }
    } catch (const std::exception&) {
      // the client went away
    }
  }

  Handler handler_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<Request> requests_;
};

}  // namespace s3up::testing
