#include "fault_proxy.hpp"

#include <fcntl.h>

#include <algorithm>
#include <charconv>
#include <future>
#include <random>
#include <stdexcept>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace s3up::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kPiece = 64 * 1024;

// One client connection and its upstream. Touched only on the proxy's thread.
struct Link {
  Link(tcp::socket c, asio::io_context& io) : client(std::move(c)), upstream(io) {}
  tcp::socket client, upstream;
  std::optional<std::uint64_t> budget;  // bytes left before a reset (reset_after)
  bool awaiting_answer = false;         // the client has sent since the peer last did
  bool fresh = true;                    // nothing has passed yet
  bool cut = false;                     // half_open: the peer side is gone, the client ignored
  bool dead = false;
};

// Not inherited by programs the test starts (std::system, fork + exec): a
// copy there would keep a listener or a connection open after the proxy
// closed it.
void close_on_exec(tcp::socket& s) { ::fcntl(s.native_handle(), F_SETFD, FD_CLOEXEC); }

void close_link(Link& link, bool reset) {
  boost::system::error_code ignored;
  link.dead = true;
  for (tcp::socket* s : {&link.client, &link.upstream}) {
    if (!s->is_open()) continue;
    if (reset) s->set_option(tcp::socket::linger(true, 0), ignored);  // close() then sends RST
    s->close(ignored);
  }
}

asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(use_tuple);
}

}  // namespace

struct FaultProxy::Impl {
  asio::io_context io;
  std::vector<tcp::endpoint> upstreams;
  std::size_t next_upstream = 0;
  tcp::acceptor acceptor{io};
  unsigned short port = 0;
  std::vector<std::weak_ptr<Link>> links;
  std::thread thread;

  std::chrono::milliseconds latency{0};
  std::uint64_t bandwidth = 0;
  std::optional<std::uint64_t> reset_after;
  bool blackhole = false, half_open = false, refusing = false;
  int lose_answers = 0;
  FaultCounts counts;

  // Listens on `on`; 0: a free port below Linux's ephemeral range, so that
  // while refuse has the listener closed, no outgoing connection is given
  // the port and the listener can have it back.
  void listen(unsigned short on) {
    static thread_local std::minstd_rand random(std::random_device{}());
    for (int attempt = 0;; ++attempt) {
      const auto candidate = on ? on : static_cast<unsigned short>(20000 + random() % 12000);
      boost::system::error_code ec;
      acceptor.open(tcp::v4());
      ::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
      acceptor.set_option(tcp::acceptor::reuse_address(true));
      acceptor.bind({asio::ip::make_address("127.0.0.1"), candidate}, ec);
      if (!ec) break;
      acceptor.close();
      if (on || attempt == 100) throw boost::system::system_error(ec, "fault proxy: bind");
    }
    acceptor.listen();
    port = acceptor.local_endpoint().port();
    asio::co_spawn(io, accept_loop(), asio::detached);
  }

  // Runs `f` on the proxy's thread and waits for it.
  template <class F>
  auto on_thread(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    asio::post(io, [&task] { task(); });
    return done.get();
  }

  template <class F>
  void each_live_link(F f) {
    std::erase_if(links, [](const std::weak_ptr<Link>& w) { return w.expired(); });
    for (auto& w : links) {
      if (auto link = w.lock(); link && !link->dead) f(*link);
    }
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, client] = co_await acceptor.async_accept(use_tuple);
      if (ec) co_return;  // closed: refuse, or the proxy is going away
      ++counts.connections;
      close_on_exec(client);
      auto link = std::make_shared<Link>(std::move(client), io);
      links.push_back(link);
      if (half_open) {
        link->cut = true;
        asio::co_spawn(io, pump(link, true), asio::detached);
        continue;
      }
      asio::co_spawn(io, connect_then_pump(link), asio::detached);
    }
  }

  asio::awaitable<void> connect_then_pump(std::shared_ptr<Link> link) {
    for (std::size_t tried = 0; tried < upstreams.size(); ++tried) {
      const auto& target = upstreams[next_upstream++ % upstreams.size()];
      boost::system::error_code ignored;
      link->upstream.close(ignored);
      auto [ec] = co_await link->upstream.async_connect(target, use_tuple);
      if (ec) continue;
      close_on_exec(link->upstream);
      if (link->dead) co_return;
      link->upstream.set_option(tcp::no_delay(true), ignored);
      link->client.set_option(tcp::no_delay(true), ignored);
      link->budget = reset_after;
      asio::co_spawn(io, pump(link, true), asio::detached);
      asio::co_spawn(io, pump(link, false), asio::detached);
      co_return;
    }
    close_link(*link, false);  // no upstream takes it: the client sees its connection closed
  }

  asio::awaitable<void> hold_while_blackholed() {
    while (blackhole) co_await sleep_for(10ms);
  }

  // Passes one direction on, applying the faults of the moment.
  asio::awaitable<void> pump(std::shared_ptr<Link> link, bool to_upstream) {
    auto& from = to_upstream ? link->client : link->upstream;
    auto& to = to_upstream ? link->upstream : link->client;
    std::vector<char> buffer(kPiece);
    for (;;) {
      co_await hold_while_blackholed();
      const std::size_t want = bandwidth ? std::clamp<std::size_t>(bandwidth / 20, 1, kPiece) : kPiece;
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buffer.data(), want), use_tuple);
      if (ec || link->dead) break;
      if (link->cut) {
        if (to_upstream) continue;  // the client's bytes go nowhere
        break;
      }
      co_await hold_while_blackholed();
      if (link->dead || link->cut) continue;
      if (!to_upstream && link->awaiting_answer && lose_answers > 0) {
        --lose_answers;
        ++counts.answers_lost;
        close_link(*link, false);
        co_return;
      }
      // The first piece each way of an exchange waits: a round trip's delay
      // that leaves the throughput alone.
      const bool turn = link->awaiting_answer != to_upstream || link->fresh;
      link->awaiting_answer = to_upstream;
      link->fresh = false;
      if (turn && latency > 0ms) co_await sleep_for(latency);
      std::size_t pass = n;
      bool reset_now = false;
      if (link->budget) {
        if (n >= *link->budget) {
          pass = static_cast<std::size_t>(*link->budget);
          reset_now = true;
        } else {
          *link->budget -= n;
        }
      }
      if (link->dead) co_return;
      auto [wec, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), pass), use_tuple);
      counts.bytes += written;
      if (reset_now) {
        ++counts.resets;
        close_link(*link, true);
        co_return;
      }
      if (wec) break;
      if (bandwidth) co_await sleep_for(std::chrono::microseconds(pass * 1'000'000 / bandwidth));
    }
    if (!link->cut && !link->dead) {
      boost::system::error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);  // pass the end of the stream on
    }
  }

  void set_half_open(bool on) {
    half_open = on;
    if (!on) return;
    each_live_link([&](Link& link) {
      if (link.cut) return;
      link.cut = true;
      ++counts.dropped;
      boost::system::error_code ignored;
      link.upstream.close(ignored);
    });
  }

  void set_refuse(bool on) {
    if (on == refusing) return;
    refusing = on;
    boost::system::error_code ignored;
    if (on) {
      ++counts.refused;
      acceptor.close(ignored);
    } else {
      listen(port);
    }
  }

  void set_reset_after(std::optional<std::uint64_t> bytes) {
    reset_after = bytes;
    each_live_link([&](Link& link) { link.budget = bytes; });
  }
};

FaultProxy::FaultProxy(std::vector<std::pair<std::string, unsigned short>> upstreams, unsigned short port)
    : impl_(std::make_shared<Impl>()) {
  if (upstreams.empty()) throw std::invalid_argument("FaultProxy: no upstream");
  for (const auto& [host, p] : upstreams) impl_->upstreams.emplace_back(asio::ip::make_address(host), p);
  impl_->listen(port);
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

FaultProxy::~FaultProxy() {
  impl_->on_thread([impl = impl_.get()] {
    boost::system::error_code ignored;
    impl->blackhole = false;
    impl->acceptor.close(ignored);
    impl->each_live_link([](Link& link) { close_link(link, false); });
  });
  impl_->io.stop();
  impl_->thread.join();
}

unsigned short FaultProxy::port() const { return impl_->port; }

void FaultProxy::latency(std::chrono::milliseconds delay) {
  impl_->on_thread([&] { impl_->latency = delay; });
}
void FaultProxy::bandwidth(std::uint64_t bytes_per_second) {
  impl_->on_thread([&] { impl_->bandwidth = bytes_per_second; });
}
void FaultProxy::reset_after(std::optional<std::uint64_t> bytes) {
  impl_->on_thread([&] { impl_->set_reset_after(bytes); });
}
void FaultProxy::blackhole(bool on) {
  impl_->on_thread([&] { impl_->blackhole = on; });
}
void FaultProxy::half_open(bool on) {
  impl_->on_thread([&] { impl_->set_half_open(on); });
}
void FaultProxy::lose_answers(int count) {
  impl_->on_thread([&] { impl_->lose_answers = count; });
}
void FaultProxy::refuse(bool on) {
  impl_->on_thread([&] { impl_->set_refuse(on); });
}
void FaultProxy::clear() {
  impl_->on_thread([&] {
    impl_->latency = 0ms;
    impl_->bandwidth = 0;
    impl_->set_reset_after(std::nullopt);
    impl_->blackhole = false;
    impl_->set_half_open(false);
    impl_->lose_answers = 0;
    impl_->set_refuse(false);
  });
}
FaultCounts FaultProxy::counts() const {
  return impl_->on_thread([&] { return impl_->counts; });
}

std::string FaultProxy::command(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
  const auto space = line.find(' ');
  const std::string_view verb = line.substr(0, space);
  const std::string_view arg = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
  const auto number = [&]() -> std::optional<std::uint64_t> {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), v);
    if (ec != std::errc() || end != arg.data() + arg.size() || arg.empty()) return std::nullopt;
    return v;
  };
  const auto on_off = [&]() -> std::optional<bool> {
    if (arg == "on") return true;
    if (arg == "off") return false;
    return std::nullopt;
  };
  if (verb == "clear") {
    clear();
    return "ok";
  }
  if (verb == "counts") {
    const auto c = counts();
    return "{\"connections\":" + std::to_string(c.connections) + ",\"resets\":" + std::to_string(c.resets) +
           ",\"answers_lost\":" + std::to_string(c.answers_lost) + ",\"dropped\":" + std::to_string(c.dropped) +
           ",\"refused\":" + std::to_string(c.refused) + ",\"bytes\":" + std::to_string(c.bytes) + "}";
  }
  if (verb == "latency" || verb == "bandwidth" || verb == "reset_after" || verb == "lose_answers") {
    const auto n = number();
    if (!n) return "error: " + std::string(verb) + " takes a number";
    if (verb == "latency") latency(std::chrono::milliseconds(*n));
    if (verb == "bandwidth") bandwidth(*n);
    if (verb == "reset_after") reset_after(*n);
    if (verb == "lose_answers") lose_answers(static_cast<int>(*n));
    return "ok";
  }
  if (verb == "blackhole" || verb == "half_open" || verb == "refuse") {
    const auto on = on_off();
    if (!on) return "error: " + std::string(verb) + " takes on or off";
    if (verb == "blackhole") blackhole(*on);
    if (verb == "half_open") half_open(*on);
    if (verb == "refuse") refuse(*on);
    return "ok";
  }
  return "error: unknown command '" + std::string(verb) + "'";
}

}  // namespace s3up::testing
