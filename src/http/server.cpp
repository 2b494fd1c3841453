#include "http/server.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
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
#include <boost/beast/http/write.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/crypto.hpp"

namespace s3up::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Beast reads 512 bytes per recv unless the read buffer has capacity: reserve
// enough that one recv can move a large slice of a fast upload.
constexpr std::size_t kReadBufferCapacity = 64 * 1024;
// One recv into our own buffer for bodies of known length: large enough that a
// fast upload costs few syscalls, small enough per connection.
constexpr std::size_t kDirectChunkSize = 256 * 1024;
// After an error response to a request whose body we did not read, keep
// reading (and discarding) briefly so the client sees our response instead of
// a connection reset (nginx's "lingering close").
constexpr auto kLingerTime = 2s;
constexpr std::uint64_t kLingerBytes = 8 * 1024 * 1024;

std::string request_id_from(const RequestHeader& h) {
  const auto given = h["X-Request-Id"];
  if (!given.empty() && given.size() <= 128 &&
      std::all_of(given.begin(), given.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return std::string(given);
  }
  std::array<std::uint8_t, 8> rnd{};
  util::random_bytes(rnd);
  return util::to_hex(rnd);
}

bool is_disconnect(const boost::system::error_code& ec) {
  return ec == beast_http::error::end_of_stream || ec == beast_http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor ||
         ec == asio::error::not_connected;
}

}  // namespace

Response json_response(unsigned status, const boost::json::value& body) {
  Response res{static_cast<beast_http::status>(status), 11};
  res.set(beast_http::field::content_type, "application/json");
  res.body() = boost::json::serialize(body);
  res.body().push_back('\n');
  res.prepare_payload();
  return res;
}

Response error_response(errc code, std::string_view message) {
  boost::json::object err;
  err["code"] = error_slug(code);
  err["message"] = message;
  auto res = json_response(error_status(code), boost::json::object{{"error", std::move(err)}});
  if (code == errc::unauthorized) res.set(beast_http::field::www_authenticate, "Bearer realm=\"s3uploader\"");
  return res;
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  struct Session {
    asio::any_io_executor strand;  // the connection's strand
    beast::tcp_stream* stream = nullptr;
    bool busy = false;  // a request is being handled
  };

  Impl(asio::io_context& io, ServerOptions o, Handler h)
      : io(io), options(std::move(o)), handler(std::move(h)), acceptor(asio::make_strand(io)) {
    access_log = spdlog::get("access");
    if (!access_log) access_log = spdlog::default_logger();
  }

  asio::io_context& io;
  ServerOptions options;
  Handler handler;
  tcp::acceptor acceptor;
  std::shared_ptr<spdlog::logger> access_log;
  std::atomic<bool> stopping{false};
  std::mutex mutex;
  std::map<std::uint64_t, std::shared_ptr<Session>> sessions;
  std::uint64_t next_session_id = 0;

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> run_session(tcp::socket socket);
  asio::awaitable<void> shutdown_sequence(std::function<void()> on_done);

  // Closes a session's socket on its strand; `only_idle` spares busy ones.
  void close_sessions(bool only_idle) {
    std::lock_guard lock(mutex);
    for (auto& [id, s] : sessions) {
      asio::post(s->strand, [s, only_idle] {
        if (s->stream == nullptr || (only_idle && s->busy)) return;  // gone, or spared
        boost::system::error_code ignored;
        s->stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        s->stream->socket().close(ignored);
      });
    }
  }
};

namespace {

// One connection's view of the body of its current request.
//
// A body with a Content-Length is read straight from the socket into our
// chunk buffer (first whatever the header read already buffered), which saves
// Beast's copy from its read buffer into a buffer_body and its 64 KiB cap per
// recv. Chunked bodies go through Beast's parser, which undoes the framing.
class ConnectionBody final : public BodyReader {
 public:
  using Parser = beast_http::request_parser<beast_http::buffer_body>;

  ConnectionBody(beast::tcp_stream& stream, beast::flat_buffer& buffer, Parser& parser,
                 std::chrono::milliseconds idle_timeout, const std::atomic<bool>& stopping)
      : stream_(stream), buffer_(buffer), parser_(parser), idle_timeout_(idle_timeout), stopping_(stopping) {
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
    if (!continue_sent_) {
      continue_sent_ = true;
      // curl waits up to a second for this before sending the body anyway.
      if (beast::iequals(parser_.get()[beast_http::field::expect], "100-continue") && !complete()) {
        beast_http::response<beast_http::empty_body> cont{beast_http::status::continue_, 11};
        stream_.expires_after(idle_timeout_);
        auto [ec, n] = co_await beast_http::async_write(stream_, cont, use_tuple);
        if (ec) throw ApiError(errc::client_disconnected, "client disconnected");
      }
    }
    if (parser_.chunked()) co_return co_await read_chunked();
    co_return co_await read_sized();
  }

  bool complete() const { return parser_.chunked() ? parser_.is_done() : remaining_ == 0; }
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  asio::awaitable<std::span<const char>> read_sized() {
    buffer_.consume(pending_consume_);  // the span handed out last time, if it was in buffer_
    pending_consume_ = 0;
    if (remaining_ == 0) co_return std::span<const char>{};
    if (buffer_.size() > 0) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), remaining_));
      pending_consume_ = n;
      co_return take(static_cast<const char*>(buffer_.data().data()), n);
    }
    if (chunk_.empty()) chunk_.resize(kDirectChunkSize);
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_.size(), remaining_));
    stream_.expires_after(idle_timeout_);
    auto [ec, n] = co_await stream_.async_read_some(asio::buffer(chunk_.data(), want), use_tuple);
    if (ec) throw_read_error(ec);
    co_return take(chunk_.data(), n);
  }

  asio::awaitable<std::span<const char>> read_chunked() {
    if (chunk_.empty()) chunk_.resize(kDirectChunkSize);
    while (!parser_.is_done()) {
      parser_.get().body().data = chunk_.data();
      parser_.get().body().size = chunk_.size();
      stream_.expires_after(idle_timeout_);
      auto [ec, n] = co_await beast_http::async_read_some(stream_, buffer_, parser_, use_tuple);
      if (ec == beast_http::error::need_buffer) ec = {};
      if (ec) throw_read_error(ec);
      const std::size_t got = chunk_.size() - parser_.get().body().size;
      if (got > 0) co_return take(chunk_.data(), got);
    }
    co_return std::span<const char>{};
  }

  std::span<const char> take(const char* data, std::size_t n) {
    bytes_read_ += n;
    if (!parser_.chunked()) remaining_ -= n;
    return {data, n};
  }

  [[noreturn]] void throw_read_error(const boost::system::error_code& ec) const {
    if (ec == beast::error::timeout) throw ApiError(errc::timeout, "request body stalled: idle timeout");
    if (ec == beast_http::error::body_limit) throw ApiError(errc::file_too_large, "request body too large");
    if (stopping_ && is_disconnect(ec)) throw ApiError(errc::shutting_down, "server shutting down");
    if (is_disconnect(ec)) throw ApiError(errc::client_disconnected, "client disconnected");
    throw ApiError(errc::bad_request, "malformed request body: " + ec.message());
  }

  beast::tcp_stream& stream_;
  beast::flat_buffer& buffer_;
  Parser& parser_;
  std::chrono::milliseconds idle_timeout_;
  const std::atomic<bool>& stopping_;
  std::vector<char> chunk_;
  std::uint64_t remaining_ = 0;  // for bodies with a Content-Length
  std::size_t pending_consume_ = 0;
  bool continue_sent_ = false;
  std::uint64_t bytes_read_ = 0;
};

// Shut our sending side, drain what the client still sends for a moment, close.
asio::awaitable<void> lingering_close(beast::tcp_stream& stream) {
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  std::array<char, 16 * 1024> sink{};
  std::uint64_t drained = 0;
  stream.expires_after(kLingerTime);
  while (drained < kLingerBytes) {
    auto [rec, n] = co_await stream.async_read_some(asio::buffer(sink), use_tuple);
    if (rec) break;
    drained += n;
  }
  stream.socket().close(ec);
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

asio::awaitable<void> Server::Impl::run_session(tcp::socket socket) {
  auto self = shared_from_this();
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  std::string peer;
  if (auto ep = socket.remote_endpoint(ignored); !ignored) peer = fmt::format("{}", ep.address().to_string());
  // Shared with close_sessions(), whose posted closers may run after this
  // coroutine ends; they run on the same strand and see stream == nullptr.
  auto session = std::make_shared<Session>(
      Session{socket.get_executor(), nullptr, false});
  beast::tcp_stream stream(std::move(socket));
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
  buffer.reserve(kReadBufferCapacity);
  spdlog::debug("connection {} from {} opened", session_id, peer);

  while (!stopping) {
    ConnectionBody::Parser parser;
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    // No body limit while reading the headers: Beast would refuse a large
    // Content-Length before the handler could authenticate the caller (401
    // comes before 413). Handlers check Content-Length themselves; the limit set
    // below still bounds bodies of unknown length.
    parser.body_limit(boost::none);
    stream.expires_after(options.header_timeout);
    auto [ec, n] = co_await beast_http::async_read_header(stream, buffer, parser, use_tuple);
    if (ec) {
      if (ec == beast_http::error::header_limit) {
        auto res = error_response(errc::headers_too_large, "request headers too large");
        res.keep_alive(false);
        stream.expires_after(options.idle_timeout);
        co_await beast_http::async_write(stream, res, use_tuple);
        co_await lingering_close(stream);
      } else if (!is_disconnect(ec) && ec != beast::error::timeout) {
        auto res = error_response(errc::bad_request, "malformed HTTP request");
        res.keep_alive(false);
        stream.expires_after(options.idle_timeout);
        co_await beast_http::async_write(stream, res, use_tuple);
        co_await lingering_close(stream);
      }
      break;
    }
    parser.body_limit(options.max_body_bytes);
    session->busy = true;
    const auto started = std::chrono::steady_clock::now();
    const auto& header = parser.get().base();
    RequestContext ctx;
    ctx.request_id = request_id_from(header);
    ConnectionBody body(stream, buffer, parser, options.idle_timeout, stopping);
    Request request{header, body, ctx};

    Response res;
    bool client_gone = false;
    try {
      res = co_await handler(request);
    } catch (const ApiError& e) {
      client_gone = e.code() == errc::client_disconnected;
      res = error_response(e.code(), e.what());
      if (e.retry_after()) res.set(beast_http::field::retry_after, std::to_string(*e.retry_after()));
      if (error_status(e.code()) >= 500) spdlog::warn("request {} failed: {}", ctx.request_id, e.what());
    } catch (const std::exception& e) {
      spdlog::error("request {} failed unexpectedly: {}", ctx.request_id, e.what());
      res = error_response(errc::internal, "internal error");
    }
    const bool body_done = body.complete();
    res.set(beast_http::field::server, "s3uploader");
    res.set("X-Request-Id", ctx.request_id);
    res.keep_alive(parser.get().keep_alive() && body_done && !stopping);
    // A streamed body: the handler set Content-Length; HEAD sends headers only.
    const bool has_stream = ctx.response_stream.has_value() && res.result_int() < 300;
    const bool streamed = has_stream && header.method() != beast_http::verb::head;
    if (!has_stream) res.prepare_payload();

    std::size_t bytes_out = 0;
    if (!client_gone && streamed) {
      stream.expires_after(options.idle_timeout);
      beast_http::response_serializer<beast_http::string_body> serializer(res);
      auto [hec, head_bytes] = co_await beast_http::async_write_header(stream, serializer, use_tuple);
      bytes_out = head_bytes;
      if (hec) client_gone = true;
      while (!client_gone) {
        std::string piece;
        try {
          piece = co_await ctx.response_stream->next();
        } catch (const std::exception& e) {
          spdlog::error("request {}: the response body failed after {} bytes: {}", ctx.request_id, bytes_out,
                        e.what());
          res.keep_alive(false);  // the client must see the body end short
          break;
        }
        if (piece.empty()) break;
        stream.expires_after(options.idle_timeout);
        auto [wec, written] = co_await asio::async_write(stream, asio::buffer(piece), use_tuple);
        bytes_out += written;
        if (wec) client_gone = true;
      }
    } else if (!client_gone) {
      stream.expires_after(options.idle_timeout);
      auto [wec, written] = co_await beast_http::async_write(stream, res, use_tuple);
      bytes_out = written;
      if (wec) client_gone = true;
    }
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    // The path only: a query string may carry something a log should not.
    std::string_view target = header.target();
    target = target.substr(0, target.find('?'));
    access_log->info("{} {} {} {} {} {:.1f}ms in={} user={} req={}", peer, header.method_string(), target,
                                client_gone ? 499u : res.result_int(), bytes_out, ms, body.bytes_read(),
                                ctx.user_id ? std::to_string(*ctx.user_id) : "-", ctx.request_id);
    session->busy = false;
    if (client_gone) break;
    if (!res.keep_alive()) {
      if (!body_done) co_await lingering_close(stream);
      break;
    }
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
  spdlog::debug("connection {} from {} closed", session_id, peer);
}

asio::awaitable<void> Server::Impl::shutdown_sequence(std::function<void()> on_done) {
  auto self = shared_from_this();
  asio::post(acceptor.get_executor(), [self] {
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
  });
  close_sessions(/*only_idle=*/true);
  const auto deadline = std::chrono::steady_clock::now() + options.shutdown_grace;
  asio::steady_timer timer(io);
  bool cut_off = false;
  for (;;) {
    std::size_t left = 0;
    {
      std::lock_guard lock(mutex);
      left = sessions.size();
    }
    if (left == 0) break;
    if (!cut_off && std::chrono::steady_clock::now() >= deadline) {
      spdlog::warn("shutdown grace period over: aborting {} request(s) still in progress", left);
      close_sessions(/*only_idle=*/false);
      cut_off = true;
    } else if (!cut_off) {
      // Connections that finished a request since the last pass are idle now.
      close_sessions(/*only_idle=*/true);
    }
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

void Server::shutdown(std::function<void()> on_done) {
  if (impl_->stopping.exchange(true)) return;
  asio::co_spawn(impl_->io, impl_->shutdown_sequence(std::move(on_done)), asio::detached);
}

}  // namespace s3up::http
