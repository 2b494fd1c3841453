#include "http/server.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
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

#include <boost/range/iterator_range.hpp>
#include <boost/url/parse.hpp>

#include "util/crypto.hpp"
#include "util/text.hpp"

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
  std::atomic<bool> cutting_off{false};  // the shutdown grace is over
  std::mutex mutex;
  std::map<std::uint64_t, std::shared_ptr<Session>> sessions;
  std::uint64_t next_session_id = 0;

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> run_session(tcp::socket socket);
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
          s->stream->socket().cancel(ignored);
          return;
        }
        s->stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        s->stream->socket().close(ignored);
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
  using Parser = beast_http::request_parser<beast_http::buffer_body>;
  using Clock = std::chrono::steady_clock;

  ConnectionBody(beast::tcp_stream& stream, beast::flat_buffer& buffer, Parser& parser, const ServerOptions& options,
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
    if (!continue_sent_) {
      continue_sent_ = true;
      // curl waits up to a second for this before sending the body anyway.
      if (beast::iequals(parser_.get()[beast_http::field::expect], "100-continue") && !complete()) {
        beast_http::response<beast_http::empty_body> cont{beast_http::status::continue_, 11};
        stream_.expires_after(options_.idle_timeout);
        auto [ec, n] = co_await beast_http::async_write(stream_, cont, use_tuple);
        if (ec) throw ApiError(errc::client_disconnected, "client disconnected");
      }
      stream_.expires_never();  // body reads keep their own deadlines
    }
    if (cutting_off_) throw ApiError(errc::shutting_down, "server shutting down");
    resume_client_clock();
    const auto piece = parser_.chunked() ? co_await read_chunked() : co_await read_sized();
    returned_at_ = Clock::now();
    credit(piece.size());
    co_return piece;
  }

  bool complete() const { return parser_.chunked() ? parser_.is_done() : remaining_ == 0; }
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  asio::awaitable<std::span<const char>> read_sized() {
    buffer_.consume(pending_consume_);  // the span handed out last time, if it was in buffer_
    pending_consume_ = 0;
    if (remaining_ == 0) co_return std::span<const char>{};
    if (buffer_.size() == 0 && !receive_buffer()) {
      // No budget for a receive buffer: read into the header buffer.
      const auto room = std::max<std::size_t>(buffer_.capacity() - buffer_.size(), 4096);
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(room, remaining_));
      const std::size_t n = co_await read_deadline(stream_.socket().async_read_some(buffer_.prepare(want), use_tuple));
      buffer_.commit(n);
    }
    if (buffer_.size() > 0) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), remaining_));
      pending_consume_ = n;
      co_return take(static_cast<const char*>(buffer_.data().data()), n);
    }
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_.size(), remaining_));
    const std::size_t n =
        co_await read_deadline(stream_.socket().async_read_some(asio::buffer(chunk_.data(), want), use_tuple));
    co_return take(chunk_.data(), n);
  }

  asio::awaitable<std::span<const char>> read_chunked() {
    if (!receive_buffer()) {
      fallback_.resize(kFallbackChunkSize);
      chunk_ = std::span<char>(fallback_);
    }
    while (!parser_.is_done()) {
      parser_.get().body().data = chunk_.data();
      parser_.get().body().size = chunk_.size();
      co_await read_deadline(beast_http::async_read_some(stream_.socket(), buffer_, parser_, use_tuple));
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

  // Awaits one socket read (`read` yields an error code and a byte count)
  // until its deadline; returns the bytes read or throws the ApiError.
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
    if (cutting_off_) throw ApiError(errc::shutting_down, "server shutting down");
    if (result.index() == 1) throw too_slow(rate_binds);
    auto [ec, n] = std::get<0>(result);
    if (ec == beast_http::error::need_buffer) ec = {};
    if (ec) throw_read_error(ec);
    co_return n;
  }

  ApiError too_slow(bool rate_binds) const {
    if (rate_binds) {
      return ApiError(errc::timeout, fmt::format("request body too slow: under {} bytes/s over {}s",
                                                 options_.min_body_rate,
                                                 std::chrono::duration<double>(options_.min_body_rate_window).count()));
    }
    return ApiError(errc::timeout, "request body stalled: idle timeout");
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
    if (ec == beast_http::error::body_limit) throw ApiError(errc::file_too_large, "request body too large");
    if (stopping_ && is_disconnect(ec)) throw ApiError(errc::shutting_down, "server shutting down");
    if (is_disconnect(ec)) throw ApiError(errc::client_disconnected, "client disconnected");
    throw ApiError(errc::bad_request, "malformed request body: " + ec.message());
  }

  beast::tcp_stream& stream_;
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

// What RFC 9112 requires of a request's framing and routing headers beyond
// what Beast's parser checks (it refuses Content-Length beside
// Transfer-Encoding, and Content-Lengths that differ). A request that fails
// here is answered and the connection closed: its body cannot be trusted to
// end where we would think.
struct Refusal {
  errc code;
  std::string message;
};

std::optional<Refusal> framing_refusal(const RequestHeader& h) {
  // §6.1, §6.3: chunked must be the final coding and appear once; we
  // implement no other, and HTTP/1.0 has no Transfer-Encoding at all.
  std::vector<std::string> codings;
  bool has_transfer_encoding = false;
  for (const auto& f : boost::make_iterator_range(h.equal_range(beast_http::field::transfer_encoding))) {
    has_transfer_encoding = true;
    std::string_view list = f.value();
    while (!list.empty()) {
      const auto comma = list.find(',');
      const auto element = util::trim(list.substr(0, comma));
      if (!element.empty()) codings.push_back(util::ascii_lower(element));
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
  }
  if (has_transfer_encoding) {
    if (h.version() < 11) return Refusal{errc::bad_request, "Transfer-Encoding is not allowed in HTTP/1.0"};
    if (codings.empty() || codings.back() != "chunked" || std::count(codings.begin(), codings.end(), "chunked") != 1) {
      return Refusal{errc::bad_request, "Transfer-Encoding must end with chunked, given once"};
    }
    if (codings.size() > 1) {
      return Refusal{errc::not_implemented, "transfer coding " + codings.front() + " is not implemented"};
    }
  }
  // §3.2: exactly one Host in HTTP/1.1, at most one before.
  const auto hosts = h.count(beast_http::field::host);
  if (hosts > 1) return Refusal{errc::bad_request, "more than one Host header"};
  if (hosts == 0 && h.version() >= 11) return Refusal{errc::bad_request, "HTTP/1.1 request without a Host header"};
  // Two credentials: which one would be meant is anyone's guess.
  if (h.count(beast_http::field::authorization) > 1) {
    return Refusal{errc::bad_request, "more than one Authorization header"};
  }
  return std::nullopt;
}

// The request target in origin form: an absolute-form target (§3.2.2,
// "GET http://host/path") becomes its path and query, its authority the Host;
// a fragment, which no client should send, is not part of the target.
void normalize_target(RequestHeader& h) {
  std::string_view target = h.target();
  if (const auto hash = target.find('#'); hash != std::string_view::npos) {
    h.target(std::string(target.substr(0, hash)));
    target = h.target();
  }
  if (target.starts_with('/')) return;
  const auto uri = boost::urls::parse_absolute_uri(target);
  if (!uri || (uri->scheme_id() != boost::urls::scheme::http && uri->scheme_id() != boost::urls::scheme::https)) return;
  std::string origin(uri->encoded_path().empty() ? "/" : std::string_view(uri->encoded_path()));
  if (uri->has_query()) origin += "?" + std::string(uri->encoded_query());
  const std::string authority(uri->encoded_authority());
  h.set(beast_http::field::host, authority);
  h.target(origin);
}

// Takes an empty line (CRLF, or a bare LF) off the front of `buffer`; false
// if it does not start with one.
bool consume_empty_line(beast::flat_buffer& buffer) {
  const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
  const std::size_t length = data.starts_with("\r\n") ? 2 : data.starts_with('\n') ? 1 : 0;
  buffer.consume(length);
  return length > 0;
}

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

  const auto log_access = [&](std::string_view method, std::string_view target, unsigned status, std::size_t bytes_out,
                              double ms, std::uint64_t bytes_in, std::string_view user, std::string_view request_id) {
    access_log->info("{} {} {} {} {} {:.1f}ms in={} user={} req={}", peer, method, target, status, bytes_out, ms,
                     bytes_in, user, request_id);
  };
  // An error answered before the request's body was read: the connection
  // closes after it, as neither side can know where the body would end.
  const auto refuse = [&](errc code, std::string_view message, std::string_view method,
                          std::string_view target) -> asio::awaitable<void> {
    auto res = error_response(code, message);
    res.set(beast_http::field::server, "s3uploader");
    res.keep_alive(false);
    stream.expires_after(options.idle_timeout);
    auto [wec, written] = co_await beast_http::async_write(stream, res, use_tuple);
    log_access(method.empty() ? "-" : method, target.empty() ? "-" : target, res.result_int(), written, 0.0, 0, "-",
               "-");
    co_await lingering_close(stream);
  };

  while (!stopping) {
    std::optional<ConnectionBody::Parser> parsing;
    const auto fresh_parser = [&] {
      parsing.emplace();
      parsing->header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      // No body limit while reading the headers: Beast would refuse a large
      // Content-Length before the handler could authenticate the caller (401
      // comes before 413). Handlers check Content-Length themselves; the limit
      // set below still bounds bodies of unknown length.
      parsing->body_limit(boost::none);
    };
    fresh_parser();
    stream.expires_after(options.header_timeout);
    auto [ec, n] = co_await beast_http::async_read_header(stream, buffer, *parsing, use_tuple);
    // RFC 9112 §2.2: one empty line before a request line is ignored. Beast
    // refuses it, so the (rare) case is undone here, not paid for on every read.
    if (ec && !is_disconnect(ec) && ec != beast::error::timeout && consume_empty_line(buffer)) {
      fresh_parser();
      std::tie(ec, n) = co_await beast_http::async_read_header(stream, buffer, *parsing, use_tuple);
    }
    auto& parser = *parsing;
    if (ec) {
      if (ec == beast_http::error::header_limit) {
        // The request line alone is over the limit: 414, not 431.
        const std::string_view seen(static_cast<const char*>(buffer.data().data()), buffer.size());
        // (Beast may have parsed the request line already, and consumed it.)
        const auto line_end = seen.find('\n');
        const bool line_parsed = !parser.get().target().empty();
        if (!line_parsed && (line_end == std::string_view::npos || line_end >= options.max_header_bytes)) {
          co_await refuse(errc::uri_too_long, "request line too long", "", "");
        } else {
          co_await refuse(errc::headers_too_large, "request headers too large", "", "");
        }
      } else if (!is_disconnect(ec) && ec != beast::error::timeout) {
        co_await refuse(errc::bad_request, "malformed HTTP request", "", "");
      }
      break;
    }
    if (auto refusal = framing_refusal(parser.get().base())) {
      // Before any route has claimed the request, the log gets its first path
      // segment only: the rest may be a client's file name (or a pasted token).
      std::string_view target = parser.get().target();
      target = target.substr(0, target.find('?'));
      const std::string logged =
          target.find('/', 1) == std::string_view::npos ? std::string(target)
                                                        : std::string(target.substr(0, target.find('/', 1) + 1)) + "...";
      co_await refuse(refusal->code, refusal->message, parser.get().method_string(), logged);
      break;
    }
    normalize_target(parser.get().base());
    parser.body_limit(options.max_body_bytes);
    session->busy = true;
    const auto started = std::chrono::steady_clock::now();
    const auto& header = parser.get().base();
    const bool head = header.method() == beast_http::verb::head;
    RequestContext ctx;
    ctx.request_id = request_id_from(header);
    ConnectionBody body(stream, buffer, parser, options, stopping, cutting_off);
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
    // A streamed body: the handler set Content-Length. Any other: its length
    // is the string's, and HEAD answers carry the same headers without it. A
    // handler answering HEAD may set the Content-Length a GET would stream.
    const bool has_stream = ctx.response_stream.has_value() && res.result_int() < 300;
    const bool length_given = head && res.result_int() < 300 && res.has_content_length();
    if (!has_stream && !length_given) {
      res.prepare_payload();
      // RFC 9110 §8.6: no Content-Length on 1xx and 204; on 304 it would have
      // to be the representation's, which the handler did not say.
      const auto status = res.result_int();
      if (status < 200 || status == 204 || status == 304) res.erase(beast_http::field::content_length);
    }
    // After the shutdown grace a write must not hold the connection long.
    const auto write_timeout = cutting_off ? std::min<std::chrono::milliseconds>(options.idle_timeout, kCutOffWriteTime)
                                           : options.idle_timeout;

    std::size_t bytes_out = 0;
    if (!client_gone && (head || has_stream)) {
      stream.expires_after(write_timeout);
      beast_http::response_serializer<beast_http::string_body> serializer(res);
      auto [hec, head_bytes] = co_await beast_http::async_write_header(stream, serializer, use_tuple);
      bytes_out = head_bytes;
      if (hec) client_gone = true;
      while (!client_gone && !head) {
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
        stream.expires_after(write_timeout);
        auto [wec, written] = co_await asio::async_write(stream, asio::buffer(piece), use_tuple);
        bytes_out += written;
        if (wec) client_gone = true;
      }
    } else if (!client_gone) {
      stream.expires_after(write_timeout);
      auto [wec, written] = co_await beast_http::async_write(stream, res, use_tuple);
      bytes_out = written;
      if (wec) client_gone = true;
    }
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    // The route if the handler named one, else the path without its query:
    // both can carry something a log should not.
    std::string_view target = header.target();
    target = ctx.route.empty() ? target.substr(0, target.find('?')) : std::string_view(ctx.route);
    log_access(header.method_string(), target, client_gone ? 499u : res.result_int(), bytes_out, ms, body.bytes_read(),
               ctx.user_id ? std::to_string(*ctx.user_id) : "-", ctx.request_id);
    session->busy = false;
    if (client_gone) break;
    if (!res.keep_alive()) {
      if (!body_done && !cutting_off) co_await lingering_close(stream);
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

void Server::shutdown(std::function<void()> on_done) {
  if (impl_->stopping.exchange(true)) return;
  asio::co_spawn(impl_->io, impl_->shutdown_sequence(std::move(on_done)), asio::detached);
}

}  // namespace s3up::http
