#include "http/server.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/serialize.hpp>

#include <boost/range/iterator_range.hpp>
#include <boost/url/parse.hpp>

#include "http/request_head.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"
#include "util/logging.hpp"

namespace s3up::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// A request as read: its headers, and its body through a buffer we give.

// Beast reads 512 bytes per recv unless the read buffer has capacity: a body
// read through the connection's buffer (chunked, or sized without a receive
// buffer from the budget) gets enough that one recv moves a large slice of
// it. Only then: a sized body with a receive buffer never touches it, and
// between requests the buffer is given back, so an idle connection holds
// Beast's first 512 bytes, not 64 KiB.
constexpr std::size_t kReadBufferCapacity = 64 * 1024;
// One recv into our own buffer for bodies of known length: large enough that a
// fast upload costs few syscalls, small enough per connection.
constexpr std::size_t kDirectChunkSize = 256 * 1024;
// A chunked body's receive buffer when the budget has no room for one.
constexpr std::size_t kFallbackChunkSize = 16 * 1024;
// After an error response to a request whose body we did not read, keep
// reading (and discarding) briefly so the client sees our response instead of
// a connection reset (nginx's "lingering close").
constexpr auto kLingerTime = 2s;
constexpr std::uint64_t kLingerBytes = 8 * 1024 * 1024;
// Once the shutdown grace is over, how long the 503 to a cut-off request may
// take to write.
constexpr auto kCutOffWriteTime = 2s;

// A client's connection: plain TCP, or TLS over it. Beast's operations use
// it as a stream; the deadlines are its TCP stream's (lowest()).
class ClientStream {
 public:
  using executor_type = beast::tcp_stream::executor_type;
  using Tls = beast::ssl_stream<beast::tcp_stream>;

  explicit ClientStream(tcp::socket socket) : plain_(std::in_place, std::move(socket)) {}
  ClientStream(tcp::socket socket, std::shared_ptr<asio::ssl::context> context)
      : context_(std::move(context)), tls_(std::in_place, std::move(socket), *context_) {}

  executor_type get_executor() { return lowest().get_executor(); }
  beast::tcp_stream& lowest() { return tls_ ? tls_->next_layer() : *plain_; }
  Tls* tls() { return tls_ ? &*tls_ : nullptr; }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    if (tls_) return tls_->async_read_some(buffers, std::forward<Token>(token));
    return plain_->async_read_some(buffers, std::forward<Token>(token));
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    if (tls_) return tls_->async_write_some(buffers, std::forward<Token>(token));
    return plain_->async_write_some(buffers, std::forward<Token>(token));
  }
  // `read(stream)` on what a body is read from, with no deadline of the TCP
  // stream's own (the body's reads keep theirs): the socket itself when
  // plain, saving the TCP stream's timer, else the TLS stream.
  template <class Read>
  auto untimed(Read read) {
    if (tls_) return read(*tls_);
    return read(plain_->socket());
  }

 private:
  std::shared_ptr<asio::ssl::context> context_;  // what the TLS stream was made with, kept alive
  std::optional<beast::tcp_stream> plain_;
  std::optional<Tls> tls_;
};

bool is_disconnect(const boost::system::error_code& ec) {
  return ec == beast_http::error::end_of_stream || ec == beast_http::error::partial_message || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor || ec == asio::error::not_connected;
}

}  // namespace

ExchangeObserver access_log() {
  auto logger = spdlog::get("access");
  if (!logger) logger = spdlog::default_logger();
  return [logger](const Exchange& e) {
    if (!logger->should_log(spdlog::level::info)) return;
    const std::string_view method = e.method.empty() ? "-" : e.method, route = e.target.empty() ? "-" : e.target;
    const std::string user = e.user_id ? std::to_string(*e.user_id) : "-";
    const std::string text = fmt::format("{} {} {} {} {} {:.1f}ms in={} user={} req={}", e.peer, method, route,
                                         e.status, e.bytes_out, e.milliseconds, e.bytes_in, user,
                                         e.request_id.empty() ? "-" : e.request_id);
    util::log_fields(*logger, spdlog::level::info, text,
                     {{"request_id", e.request_id},
                      {"method", method},
                      {"route", route},
                      {"status", static_cast<std::int64_t>(e.status)},
                      {"duration_ms", e.milliseconds},
                      {"bytes_in", static_cast<std::int64_t>(e.bytes_in)},
                      {"bytes_out", static_cast<std::int64_t>(e.bytes_out)},
                      {"user_id", e.user_id ? util::LogValue(*e.user_id) : util::LogValue()},
                      {"remote", e.peer}});
  };
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  struct Session {
    asio::any_io_executor strand;  // the connection's strand
    ClientStream* stream = nullptr;
    std::atomic<bool> busy{false};  // a request is being handled (read by connections())
  };

  Impl(asio::io_context& io, ServerOptions o, Handler h)
      : io(io), options(std::move(o)), handler(std::move(h)), acceptor(asio::make_strand(io)) {
    if (!options.on_exchange) options.on_exchange = access_log();
  }

  asio::io_context& io;
  ServerOptions options;
  Handler handler;
  tcp::acceptor acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<bool> cutting_off{false};  // the shutdown grace is over
  std::mutex mutex;
  std::map<std::uint64_t, std::shared_ptr<Session>> sessions;
  std::uint64_t next_session_id = 0;

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> run_session(tcp::socket socket);
  // Reads the next request's headers into `parsing`; false when the
  // connection is done (closed, timed out, or refused: answered, then closed).
  asio::awaitable<bool> read_head(ClientStream& stream, beast::flat_buffer& buffer,
                                  std::optional<RequestParser>& parsing, std::string_view peer);
  // An error answered before the request's body was read: the connection
  // closes after it, as neither side can know where the body would end.
  asio::awaitable<void> refuse(ClientStream& stream, std::string_view peer, const Error& error,
                               std::string_view method, std::string_view target);
  asio::awaitable<Response> answer(Request& request);
  // Writes `res` (for HEAD its headers only) with the Content-Length its body has.
  struct Written {
    std::size_t bytes = 0;
    bool client_gone = false;
    bool cut_short = false;  // a streamed body failed midway: the connection must close
  };
  asio::awaitable<Written> write_response(ClientStream& stream, bool head, Response& res, bool keep_alive,
                                          const std::string& request_id);
  asio::awaitable<void> shutdown_sequence(std::function<void()> on_done);

  // What close_sessions() does to a connection with a request in progress:
  // spare it, cancel what it waits for on its socket (its handler then fails
  // with shutting_down, and the client gets that 503), or close it.
  enum class Busy { spare, cancel, close };

  // Idle connections are closed; busy ones as `busy` says. On each
  // session's strand.
  void close_sessions(Busy busy) {
    std::lock_guard lock(mutex);
    for (auto& [id, s] : sessions) {
      asio::post(s->strand, [s, busy] {
        if (s->stream == nullptr || (s->busy && busy == Busy::spare)) return;  // gone, or spared
        boost::system::error_code ignored;
        if (s->busy && busy == Busy::cancel) {
          s->stream->lowest().socket().cancel(ignored);
          return;
        }
        s->stream->lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        s->stream->lowest().socket().close(ignored);
      });
    }
  }
};

namespace {

// One connection's view of the body of its current request.
//
// A body with a Content-Length is read straight from the socket into a
// receive buffer (first whatever the header read already buffered), which
// saves Beast's copy from its read buffer into a buffer_body and its 64 KiB
// cap per recv. Chunked bodies go through Beast's parser, which undoes the
// framing. The receive buffer comes from the memory budget when it has room
// (never waiting for it: the upload may hold budget already), else the
// connection's own header buffer serves.
//
// Every socket read has a deadline: the idle timeout, or sooner the moment
// the body falls below the minimum rate. The read is cancelled then, not the
// connection closed, so the client still gets its 408.
class ConnectionBody final : public BodyReader {
 public:
  using Parser = RequestParser;
  using Clock = std::chrono::steady_clock;

  ConnectionBody(ClientStream& stream, beast::flat_buffer& buffer, Parser& parser, const ServerOptions& options,
                 const std::atomic<bool>& stopping, const std::atomic<bool>& cutting_off)
      : stream_(stream),
        buffer_(buffer),
        parser_(parser),
        options_(options),
        stopping_(stopping),
        cutting_off_(cutting_off),
        timer_(stream.get_executor()) {
    if (!parser_.chunked()) remaining_ = parser_.content_length().value_or(0);
  }
  // Bytes handed out from buffer_ are consumed here at the latest, so what
  // follows the body (a pipelined request) stays for the next header read.
  ~ConnectionBody() override { buffer_.consume(pending_consume_); }

  std::optional<std::uint64_t> content_length() const override {
    if (auto len = parser_.content_length()) return *len;
    return std::nullopt;
  }

  asio::awaitable<std::span<const char>> read_some() override {
    co_await before_read();
    const auto piece = parser_.chunked() ? co_await read_chunked() : co_await read_sized();
    returned_at_ = Clock::now();
    credit(piece.size());
    co_return piece;
  }

  // A body of known length is read straight into the caller's memory
  // (the store's part buffer): no receive buffer, and no copy out of one.
  // Bytes that arrived with the headers are copied from there.
  std::optional<std::uint64_t> left_to_read_in_place() const override {
    if (parser_.chunked()) return std::nullopt;
    return remaining_;
  }

  asio::awaitable<std::size_t> read_into(std::span<char> room) override {
    co_await before_read();
    buffer_.consume(pending_consume_);
    pending_consume_ = 0;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(room.size(), remaining_));
    std::size_t n = 0;
    if (want > 0 && buffer_.size() > 0) {
      n = std::min(buffer_.size(), want);
      std::memcpy(room.data(), buffer_.data().data(), n);
      buffer_.consume(n);
    } else if (want > 0) {
      n = co_await read_socket(asio::buffer(room.data(), want));
    }
    take(room.data(), n);
    returned_at_ = Clock::now();
    credit(n);
    co_return n;
  }

  bool complete() const { return parser_.chunked() ? parser_.is_done() : remaining_ == 0; }
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  // What every read does first: answer Expect: 100-continue, stop if the
  // shutdown grace is over, and start the client's clock again.
  asio::awaitable<void> before_read() {
    if (!continue_sent_) {
      continue_sent_ = true;
      // curl waits up to a second for this before sending the body anyway.
      if (beast::iequals(parser_.get()[beast_http::field::expect], "100-continue") && !complete()) {
        beast_http::response<beast_http::empty_body> cont{beast_http::status::continue_, 11};
        stream_.lowest().expires_after(options_.idle_timeout);
        auto [ec, n] = co_await beast_http::async_write(stream_, cont, use_tuple);
        if (ec) throw disconnected();
      }
      stream_.lowest().expires_never();  // body reads keep their own deadlines
    }
    if (cutting_off_) throw shutting_down();
    resume_client_clock();
  }

  asio::awaitable<std::span<const char>> read_sized() {
    buffer_.consume(pending_consume_);  // the span handed out last time, if it was in buffer_
    pending_consume_ = 0;
    if (remaining_ == 0) co_return std::span<const char>{};
    if (buffer_.size() == 0 && !receive_buffer()) {
      // No budget for a receive buffer: read into the header buffer.
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kReadBufferCapacity, remaining_));
      const std::size_t n = co_await read_socket(buffer_.prepare(want));
      buffer_.commit(n);
    }
    if (buffer_.size() > 0) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), remaining_));
      pending_consume_ = n;
      co_return take(static_cast<const char*>(buffer_.data().data()), n);
    }
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_.size(), remaining_));
    const std::size_t n = co_await read_socket(asio::buffer(chunk_.data(), want));
    co_return take(chunk_.data(), n);
  }

  asio::awaitable<std::span<const char>> read_chunked() {
    if (!receive_buffer()) {
      fallback_.resize(kFallbackChunkSize);
      chunk_ = std::span<char>(fallback_);
    }
    buffer_.reserve(kReadBufferCapacity);
    while (!parser_.is_done()) {
      parser_.get().body().data = chunk_.data();
      parser_.get().body().size = chunk_.size();
      co_await read_deadline(stream_.untimed(
          [&](auto& from) { return beast_http::async_read_some(from, buffer_, parser_, use_tuple); }));
      const std::size_t got = chunk_.size() - parser_.get().body().size;
      if (got > 0) co_return take(chunk_.data(), got);
    }
    co_return std::span<const char>{};
  }

  // The receive buffer, taken from the budget on first need; false if the
  // budget has no room for one now. At most half the budget goes to receive
  // buffers: a connection holds its buffer while its upload waits for the
  // store's, and the store's half is what lets those waits end.
  bool receive_buffer() {
    if (!chunk_.empty()) return true;
    pooled_ = options_.buffers->try_acquire(kDirectChunkSize, options_.buffers->budget() / 2);
    if (!pooled_) return false;
    chunk_ = std::span<char>(pooled_.data(), kDirectChunkSize);
    return true;
  }

  // One read from the client's socket into `into`, under the body's deadlines.
  asio::awaitable<std::size_t> read_socket(asio::mutable_buffer into) {
    co_return co_await read_deadline(
        stream_.untimed([&](auto& from) { return from.async_read_some(into, use_tuple); }));
  }

  // Awaits one socket read (`read` yields an error code and a byte count)
  // until its deadline; returns the bytes read or throws the Error.
  template <class Read>
  asio::awaitable<std::size_t> read_deadline(Read read) {
    using namespace asio::experimental::awaitable_operators;
    const auto now = Clock::now();
    auto deadline = now + options_.idle_timeout;
    const bool rate_binds = options_.min_body_rate > 0 && rate_deadline_ < deadline;
    if (rate_binds) deadline = rate_deadline_;
    if (deadline <= now) throw too_slow(rate_binds);
    timer_.expires_at(deadline);
    auto result = co_await (std::move(read) || timer_.async_wait(use_tuple));
    if (cutting_off_) throw shutting_down();
    if (result.index() == 1) throw too_slow(rate_binds);
    auto [ec, n] = std::get<0>(result);
    if (ec == beast_http::error::need_buffer) ec = {};
    if (ec) throw_read_error(ec);
    co_return n;
  }

  static Error disconnected() { return Error(kClientClosedRequest, "client_disconnected", "client disconnected"); }
  static Error shutting_down() { return Error(Status::service_unavailable, "shutting_down", "server shutting down"); }

  Error too_slow(bool rate_binds) const {
    if (rate_binds) {
      return Error(Status::request_timeout, "request_timeout",
                   fmt::format("request body too slow: under {} bytes/s over {}s", options_.min_body_rate,
                               std::chrono::duration<double>(options_.min_body_rate_window).count()));
    }
    return Error(Status::request_timeout, "request_timeout", "request body stalled: idle timeout");
  }

  // The rate deadline moves only while we wait for the client: time since
  // read_some last returned (the handler's own work, waiting for budget) is
  // added back. It starts one window ahead (the grace), each byte pushes it
  // 1/rate further, and never more than one window past now (credit from a
  // fast start cannot pay for a long drip).
  void resume_client_clock() {
    const auto now = Clock::now();
    const bool first_read = returned_at_ == Clock::time_point{};
    rate_deadline_ = first_read ? now + options_.min_body_rate_window : rate_deadline_ + (now - returned_at_);
  }
  // Called as read_some returns, with returned_at_ just set.
  void credit(std::size_t n) {
    if (options_.min_body_rate == 0) return;
    const auto earned = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(static_cast<double>(n) / static_cast<double>(options_.min_body_rate)));
    rate_deadline_ = std::min(rate_deadline_ + earned, returned_at_ + options_.min_body_rate_window);
  }

  std::span<const char> take(const char* data, std::size_t n) {
    bytes_read_ += n;
    if (!parser_.chunked()) remaining_ -= n;
    return {data, n};
  }

  [[noreturn]] void throw_read_error(const boost::system::error_code& ec) const {
    if (ec == beast_http::error::body_limit)
      throw Error(Status::payload_too_large, "file_too_large", "request body too large");
    if (stopping_ && is_disconnect(ec)) throw shutting_down();
    if (is_disconnect(ec)) throw disconnected();
    throw Error(Status::bad_request, "bad_request", "malformed request body: " + ec.message());
  }

  ClientStream& stream_;
  beast::flat_buffer& buffer_;
  Parser& parser_;
  const ServerOptions& options_;
  const std::atomic<bool>& stopping_;
  const std::atomic<bool>& cutting_off_;  // the shutdown grace is over: abort the body
  asio::steady_timer timer_;
  util::BufferPool::Buffer pooled_;  // the receive buffer, from the budget
  std::vector<char> fallback_;       // a chunked body's, when the budget has no room
  std::span<char> chunk_;
  std::uint64_t remaining_ = 0;  // for bodies with a Content-Length
  std::size_t pending_consume_ = 0;
  bool continue_sent_ = false;
  std::uint64_t bytes_read_ = 0;
  Clock::time_point rate_deadline_{};  // see resume_client_clock()
  Clock::time_point returned_at_{};    // when read_some last returned; unset before the first read
};

// Shut our sending side, drain what the client still sends for a moment, close.
asio::awaitable<void> lingering_close(ClientStream& stream) {
  boost::system::error_code ec;
  stream.lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
  std::array<char, 16 * 1024> sink{};
  std::uint64_t drained = 0;
  stream.lowest().expires_after(kLingerTime);
  while (drained < kLingerBytes) {
    auto [rec, n] = co_await stream.async_read_some(asio::buffer(sink), use_tuple);
    if (rec) break;
    drained += n;
  }
  stream.lowest().socket().close(ec);
}

}  // namespace

asio::awaitable<void> Server::Impl::accept_loop() {
  auto self = shared_from_this();
  while (!stopping) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), use_tuple);
    if (ec) {
      if (stopping || ec == asio::error::operation_aborted) break;
      spdlog::warn("accept failed: {}", ec.message());
      // e.g. EMFILE: back off instead of spinning
      asio::steady_timer t(acceptor.get_executor(), 50ms);
      co_await t.async_wait(use_tuple);
      continue;
    }
    auto executor = socket.get_executor();
    asio::co_spawn(executor, run_session(std::move(socket)), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("connection ended by an unexpected error: {}", ex.what());
      }
    });
  }
}

asio::awaitable<void> Server::Impl::refuse(ClientStream& stream, std::string_view peer, const Error& error,
                                           std::string_view method, std::string_view target) {
  auto res = error_response(error);
  res.set(beast_http::field::server, "s3uploader");
  beast_http::response<beast_http::string_body> message(std::move(res.header()),
                                                        std::get<std::string>(std::move(res.body())));
  message.keep_alive(false);
  message.prepare_payload();
  stream.lowest().expires_after(options.idle_timeout);
  auto [wec, written] = co_await beast_http::async_write(stream, message, use_tuple);
  options.on_exchange(
      Exchange{.peer = peer, .method = method, .target = target, .status = error.status(), .bytes_out = written});
  co_await lingering_close(stream);
}

asio::awaitable<bool> Server::Impl::read_head(ClientStream& stream, beast::flat_buffer& buffer,
                                              std::optional<RequestParser>& parsing, std::string_view peer) {
  const auto fresh_parser = [&] {
    parsing.emplace();
    prepare_head_parser(*parsing, options.max_header_bytes);
  };
  fresh_parser();
  stream.lowest().expires_after(options.header_timeout);
  auto [ec, n] = co_await beast_http::async_read_header(stream, buffer, *parsing, use_tuple);
  // RFC 9112 §2.2: one empty line before a request line is ignored. Beast
  // refuses it, so the (rare) case is undone here, not paid for on every read.
  if (ec && !is_disconnect(ec) && ec != beast::error::timeout && consume_empty_line(buffer)) {
    fresh_parser();
    std::tie(ec, n) = co_await beast_http::async_read_header(stream, buffer, *parsing, use_tuple);
  }
  auto& parser = *parsing;
  // (The error is named before it is passed: GCC 12 may destroy a temporary
  // argument of a coroutine twice.)
  if (ec) {
    if (ec == beast_http::error::header_limit) {
      const std::string_view seen(static_cast<const char*>(buffer.data().data()), buffer.size());
      const Refusal too_large = oversized_head(seen, !parser.get().target().empty(), options.max_header_bytes);
      const Error error(too_large.status, too_large.code, too_large.message);
      co_await refuse(stream, peer, error, "", "");
    } else if (!is_disconnect(ec) && ec != beast::error::timeout) {
      const Refusal malformed = malformed_head();
      const Error error(malformed.status, malformed.code, malformed.message);
      co_await refuse(stream, peer, error, "", "");
    }
    co_return false;
  }
  auto refusal = framing_refusal(parser.get().base());
  if (!refusal) refusal = normalize_target(parser.get().base());
  if (refusal) {
    // Before any route has claimed the request, the log gets its first path
    // segment only: the rest may be a client's file name (or a pasted token).
    std::string_view target = parser.get().target();
    target = target.substr(0, target.find('?'));
    const std::string logged = target.find('/', 1) == std::string_view::npos
                                   ? std::string(target)
                                   : std::string(target.substr(0, target.find('/', 1) + 1)) + "...";
    const Error error(refusal->status, refusal->code, refusal->message);
    co_await refuse(stream, peer, error, parser.get().method_string(), logged);
    co_return false;
  }
  co_return true;
}

asio::awaitable<void> Server::Impl::run_session(tcp::socket socket) {
  auto self = shared_from_this();
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  std::string peer;
  if (auto ep = socket.remote_endpoint(ignored); !ignored) peer = fmt::format("{}", ep.address().to_string());
  // Shared with close_sessions(), whose posted closers may run after this
  // coroutine ends; they run on the same strand and see stream == nullptr.
  auto session = std::make_shared<Session>();
  session->strand = socket.get_executor();
  ClientStream stream = options.tls ? ClientStream(std::move(socket), options.tls->current())
                                    : ClientStream(std::move(socket));
  session->stream = &stream;
  std::uint64_t session_id = 0;
  {
    std::lock_guard lock(mutex);
    session_id = next_session_id++;
    sessions.emplace(session_id, session);
  }
  struct Unregister {
    Impl& impl;
    std::uint64_t id;
    Session& session;
    ~Unregister() {
      session.stream = nullptr;
      std::lock_guard lock(impl.mutex);
      impl.sessions.erase(id);
    }
  } unregister{*this, session_id, *session};

  beast::flat_buffer buffer;
  if (auto* tls = stream.tls()) {
    // Within the header timeout, like the request head that follows it.
    stream.lowest().expires_after(options.header_timeout);
    auto [ec] = co_await tls->async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (ec) {
      spdlog::debug("connection {} from {}: TLS handshake failed: {}", session_id, peer, ec.message());
      stream.lowest().socket().close(ignored);
      co_return;
    }
  }
  spdlog::debug("connection {} from {} opened", session_id, peer);

  while (!stopping) {
    std::optional<RequestParser> parsing;
    // What the last request left unread (a pipelined head) stays.
    if (buffer.size() == 0) buffer.shrink_to_fit();
    if (!co_await read_head(stream, buffer, parsing, peer)) break;
    auto& parser = *parsing;
    parser.body_limit(options.max_body_bytes);
    session->busy = true;
    const auto started = std::chrono::steady_clock::now();
    const auto& header = parser.get().base();
    RequestContext context;
    context.peer_address = peer;
    context.secure = stream.tls() != nullptr;
    ConnectionBody body(stream, buffer, parser, options, stopping, cutting_off);
    Request request{header, body, context};
    Response res = co_await answer(request);
    const bool body_done = body.complete();
    const bool keep_alive = parser.get().keep_alive() && body_done && !stopping;
    const unsigned status = res.status();
    const auto written =
        co_await write_response(stream, header.method() == beast_http::verb::head, res, keep_alive, context.request_id);
    const bool client_gone = written.client_gone;
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    // The route if one matched, else the path without its query: both can
    // carry something a log should not.
    const std::string_view target = context.route.empty() ? request.path() : std::string_view(context.route);
    options.on_exchange(Exchange{.peer = peer,
                                 .method = header.method_string(),
                                 .target = target,
                                 .route = context.route,
                                 .status = client_gone ? static_cast<unsigned>(kClientClosedRequest) : status,
                                 .bytes_in = body.bytes_read(),
                                 .bytes_out = written.bytes,
                                 .milliseconds = ms,
                                 .user_id = context.user_id,
                                 .request_id = context.request_id});
    session->busy = false;
    if (client_gone || written.cut_short) break;
    if (!keep_alive) {
      if (!body_done && !cutting_off) co_await lingering_close(stream);
      break;
    }
  }
  stream.lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.lowest().socket().close(ignored);
  spdlog::debug("connection {} from {} closed", session_id, peer);
}

asio::awaitable<Response> Server::Impl::answer(Request& request) {
  // The handler chain renders its own errors; this is the net below it.
  std::optional<Response> res;
  std::exception_ptr failure;
  try {
    res = co_await handler(request);
  } catch (...) {
    failure = std::current_exception();
  }
  // A stream opens before the headers go out (never for HEAD), so what fails
  // there, a missing object, is still an error answer.
  auto* stream = res ? std::get_if<Response::Stream>(&res->body()) : nullptr;
  if (stream && request.header.method() != beast_http::verb::head) {
    try {
      co_await stream->source->open();
    } catch (...) {
      failure = std::current_exception();
    }
  }
  if (failure) {
    res = error_answer(failure, request.context.request_id);
    res->set("X-Request-Id", request.context.request_id);
  }
  co_return std::move(*res);
}

namespace {

// The pace a response body must keep: the deadline starts one window ahead,
// each byte sent pushes it 1/rate further, never more than one window past
// now (a fast start cannot pay for a long drip), and time the server spent
// on its own side is given back. The same rule the request side applies.
class ReaderPace {
 public:
  using Clock = std::chrono::steady_clock;
  ReaderPace(std::uint64_t rate, std::chrono::milliseconds window)
      : rate_(rate), window_(window), deadline_(Clock::now() + window) {}
  Clock::time_point deadline() const { return rate_ == 0 ? Clock::time_point::max() : deadline_; }
  void not_the_clients(Clock::duration spent) { deadline_ += spent; }
  void sent(std::size_t n) {
    if (rate_ == 0) return;
    const auto earned = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(static_cast<double>(n) / static_cast<double>(rate_)));
    deadline_ = std::min(deadline_ + earned, Clock::now() + window_);
  }

 private:
  std::uint64_t rate_;
  std::chrono::milliseconds window_;
  Clock::time_point deadline_;
};

}  // namespace

asio::awaitable<Server::Impl::Written> Server::Impl::write_response(ClientStream& stream, bool head, Response& res,
                                                                    bool keep_alive, const std::string& request_id) {
  if (res.status() == static_cast<unsigned>(kClientClosedRequest)) co_return Written{0, true};
  auto& header = res.header();
  header.set(beast_http::field::server, "s3uploader");
  // RFC 9110 §8.6: no Content-Length (and no body) on 1xx, 204 and 304; on
  // 304 it would have to be the representation's, which we do not repeat.
  // Any other answer, HEAD included, carries the length its body has.
  const unsigned status = res.status();
  if (status < 200 || status == 204 || status == 304) {
    header.erase(beast_http::field::content_length);
    res.body() = std::monostate{};
  } else {
    header.set(beast_http::field::content_length, std::to_string(res.body_length()));
  }
  // After the shutdown grace a write must not hold the connection long.
  const auto write_timeout =
      cutting_off ? std::min<std::chrono::milliseconds>(options.idle_timeout, kCutOffWriteTime) : options.idle_timeout;
  stream.lowest().expires_after(write_timeout);

  auto* text = std::get_if<std::string>(&res.body());
  if (text && !head) {
    beast_http::response<beast_http::string_body> message(std::move(header), std::move(*text));
    message.keep_alive(keep_alive);
    auto [ec, written] = co_await beast_http::async_write(stream, message, use_tuple);
    co_return Written{written, bool(ec)};
  }
  beast_http::response<beast_http::empty_body> message(std::move(header));
  message.keep_alive(keep_alive);
  beast_http::response_serializer<beast_http::empty_body> serializer(message);
  auto [ec, written] = co_await beast_http::async_write_header(stream, serializer, use_tuple);
  auto* body = std::get_if<Response::Stream>(&res.body());
  if (ec || head || !body) co_return Written{written, bool(ec)};
  std::uint64_t left = body->length;
  // A slow reader is held to what a slow writer is: no write may pause
  // longer than the idle timeout, and the body must move at min_body_rate
  // averaged over its window (time spent getting bytes from the store is
  // not the client's). Either cut holds the connection's memory no longer.
  using Clock = ReaderPace::Clock;
  ReaderPace pace(options.min_body_rate, options.min_body_rate_window);
  while (left > 0) {
    std::span<const char> piece;
    const auto asked = Clock::now();
    try {
      piece = co_await body->source->next();
    } catch (const std::exception& e) {
      spdlog::error("request {}: the response body failed after {} bytes: {}", request_id, written, e.what());
      break;
    }
    if (piece.empty()) {
      spdlog::error("request {}: the response body ended {} bytes short", request_id, left);
      break;
    }
    pace.not_the_clients(Clock::now() - asked);
    piece = piece.first(static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), left)));
    const auto idle_deadline = Clock::now() + write_timeout;
    stream.lowest().expires_at(std::min(idle_deadline, pace.deadline()));
    auto [wec, n] = co_await asio::async_write(stream, asio::buffer(piece.data(), piece.size()), use_tuple);
    written += n;
    left -= n;
    pace.sent(n);
    if (wec) {
      if (wec == beast::error::timeout) {
        spdlog::info("request {}: the client read too slowly ({} after {} bytes); closing", request_id,
                     Clock::now() >= idle_deadline ? "idle" : "under min_body_rate", written);
      }
      co_return Written{written, true};
    }
  }
  co_return Written{written, false, left > 0};
}

asio::awaitable<void> Server::Impl::shutdown_sequence(std::function<void()> on_done) {
  auto self = shared_from_this();
  asio::post(acceptor.get_executor(), [self] {
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
  });
  close_sessions(Busy::spare);
  const auto deadline = std::chrono::steady_clock::now() + options.shutdown_grace;
  // After the grace, requests still running are cancelled and get their 503;
  // whatever is left after this long more is closed without one.
  const auto hard_deadline = deadline + kCutOffWriteTime + 1s;
  asio::steady_timer timer(io);
  bool closed_all = false;
  for (;;) {
    std::size_t left = 0;
    {
      std::lock_guard lock(mutex);
      left = sessions.size();
    }
    if (left == 0) break;
    const auto now = std::chrono::steady_clock::now();
    if (!cutting_off && now >= deadline) {
      spdlog::warn("shutdown grace period over: aborting {} request(s) still in progress", left);
      cutting_off = true;
      close_sessions(Busy::cancel);
    } else if (!closed_all && now >= hard_deadline) {
      close_sessions(Busy::close);
      closed_all = true;
    } else if (!cutting_off) {
      // Connections that finished a request since the last pass are idle now.
      close_sessions(Busy::spare);
    }
    // (A request cut off while it waited elsewhere, e.g. for the store,
    // notices at its next body read: that throws shutting_down.)
    timer.expires_after(50ms);
    co_await timer.async_wait(use_tuple);
  }
  on_done();
}

Server::Server(asio::io_context& io, ServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(handler))) {}

Server::~Server() = default;

void Server::start() {
  auto& a = impl_->acceptor;
  a.open(impl_->options.endpoint.protocol());
  a.set_option(tcp::acceptor::reuse_address(true));
  a.bind(impl_->options.endpoint);
  a.listen(asio::socket_base::max_listen_connections);
  asio::co_spawn(a.get_executor(), impl_->accept_loop(), asio::detached);
}

tcp::endpoint Server::local_endpoint() const { return impl_->acceptor.local_endpoint(); }

Server::Connections Server::connections() const {
  std::lock_guard lock(impl_->mutex);
  Connections counts;
  for (const auto& [id, session] : impl_->sessions) {
    ++(session->busy ? counts.busy : counts.idle);
  }
  return counts;
}

void Server::shutdown(std::function<void()> on_done) {
  if (impl_->stopping.exchange(true)) return;
  asio::co_spawn(impl_->io, impl_->shutdown_sequence(std::move(on_done)), asio::detached);
}

}  // namespace s3up::http
