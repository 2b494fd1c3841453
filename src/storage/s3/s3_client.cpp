#include "storage/s3/s3_client.hpp"

#include <openssl/ssl.h>

#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/span_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>

#include "metrics/metrics.hpp"
#include "storage/s3/s3_xml.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"

namespace s3up::storage::s3 {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// An error that means no sign of life from the store: nobody listening, or
// nothing heard within the timeout (see ConnectionFailure::silent).
bool silence(const boost::system::error_code& ec) {
  return ec == beast::error::timeout || ec == asio::error::connection_refused || ec == asio::error::timed_out ||
         ec == asio::error::host_unreachable || ec == asio::error::network_unreachable;
}
// Error bodies and XML answers are small; object bodies are not read here.
constexpr std::uint64_t kMaxResponseBody = 16 * 1024 * 1024;
constexpr auto kBackoffBase = 100ms;
constexpr auto kBackoffCap = 5s;

bool is_ip_or_localhost(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// 5xx (SlowDown is a 503) and RequestTimeout (a 400) are worth another try.
bool retryable(const Response& r) {
  if (r.status >= 500) return true;
  if (r.status == 400) {
    if (auto e = parse_error(r.body)) return e->code == "RequestTimeout";
  }
  return false;
}

std::chrono::milliseconds backoff(int attempt) {
  // Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").
  thread_local std::mt19937 rng{std::random_device{}()};
  const auto cap = std::min<std::chrono::milliseconds>(kBackoffCap, kBackoffBase * (1 << std::min(attempt, 10)));
  return std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(0, cap.count())(rng));
}

}  // namespace

std::string Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

struct Client::TlsContext {
  asio::ssl::context ctx{asio::ssl::context::tls_client};
};

struct Client::Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

Client::Client(asio::any_io_executor executor, ClientOptions options, std::shared_ptr<CredentialsProvider> credentials)
    : executor_(std::move(executor)), options_(std::move(options)), credentials_(std::move(credentials)) {
  if (options_.endpoint.empty()) options_.endpoint = "https://s3." + options_.region + ".amazonaws.com";
  auto url = boost::urls::parse_absolute_uri(options_.endpoint);
  if (!url) throw std::invalid_argument("S3 endpoint is not a URL: " + options_.endpoint);
  tls_ = url->scheme() == "https";
  if (!tls_ && url->scheme() != "http") throw std::invalid_argument("S3 endpoint must be http:// or https://");
  endpoint_host_ = url->host();
  endpoint_port_ = url->has_port() ? std::string(url->port()) : (tls_ ? "443" : "80");
  path_style_ = options_.force_path_style || is_ip_or_localhost(endpoint_host_) ||
                options_.bucket.find('.') != std::string::npos;  // dotted buckets break TLS host names
  // Where to connect and what the Host header says, decided once.
  connect_host_ = path_style_ ? endpoint_host_ : options_.bucket + "." + endpoint_host_;
  const bool default_port = endpoint_port_ == (tls_ ? "443" : "80");
  host_header_ = default_port ? connect_host_ : connect_host_ + ":" + endpoint_port_;
  if (tls_) {
    tls_context_ = std::make_unique<TlsContext>();
    tls_context_->ctx.set_default_verify_paths();
    if (!options_.ca_file.empty()) tls_context_->ctx.load_verify_file(options_.ca_file);
    tls_context_->ctx.set_verify_mode(asio::ssl::verify_peer);
  }
}

Client::~Client() = default;

std::string Client::path_for(const std::string& key) const {
  if (path_style_) return "/" + options_.bucket + (key.empty() ? "" : "/" + key);
  return "/" + key;
}

std::unique_ptr<Client::Connection> Client::take_idle() {
  std::lock_guard lock(mutex_);
  if (idle_.empty()) return nullptr;
  auto c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

void Client::give_back(std::unique_ptr<Connection> c) {
  std::lock_guard lock(mutex_);
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(c));
}

asio::awaitable<std::unique_ptr<Client::Connection>> Client::connect() {
  const std::string& host = connect_host_;
  tcp::resolver resolver(executor_);
  auto [rec, results] = co_await resolver.async_resolve(host, endpoint_port_, use_tuple);
  if (rec) throw ConnectionFailure(fmt::format("resolving {}: {}", host, rec.message()), true);
  auto c = std::make_unique<Connection>();
  c->buffer.reserve(64 * 1024);
  if (tls_) {
    c->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(executor_, tls_context_->ctx);
    // SNI carries host names only, never an IP address (RFC 6066 §3).
    if (!is_ip_or_localhost(host) && !SSL_set_tlsext_host_name(c->tls->native_handle(), host.c_str())) {
      throw ConnectionFailure("TLS: cannot set SNI host name");
    }
    c->tls->set_verify_callback(asio::ssl::host_name_verification(host));
  } else {
    c->plain = std::make_unique<beast::tcp_stream>(executor_);
  }
  c->lowest().expires_after(options_.timeout);
  auto [cec, ep] = co_await c->lowest().async_connect(results, use_tuple);
  if (cec) {
    throw ConnectionFailure(fmt::format("connecting to {}:{}: {}", host, endpoint_port_, cec.message()), silence(cec));
  }
  c->lowest().socket().set_option(tcp::no_delay(true));
  if (tls_) {
    auto [hec] = co_await c->tls->async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (hec) throw ConnectionFailure(fmt::format("TLS handshake with {}: {}", host, hec.message()), silence(hec));
  }
  co_return c;
}

namespace {

struct ExchangeResult {
  Response response;
  bool reusable = false;
};

template <class Fields>
void copy_headers(const Fields& fields, std::vector<Header>& out) {
  for (const auto& f : fields) out.emplace_back(util::ascii_lower(f.name_string()), std::string(f.value()));
}

// Sends what `sr` has left, each write given `timeout` anew: a slow store is
// waited for, a silent one not.
template <class Stream>
asio::awaitable<void> write_rest(Stream& stream, beast::tcp_stream& lowest,
                                 http::request_serializer<http::span_body<const char>>& sr,
                                 std::chrono::milliseconds timeout) {
  while (!sr.is_done()) {
    lowest.expires_after(timeout);
    auto [ec, n] = co_await http::async_write_some(stream, sr, use_tuple);
    if (ec) throw ConnectionFailure("sending request body: " + ec.message(), silence(ec));
  }
}

template <class Stream>
asio::awaitable<ExchangeResult> exchange(Stream& stream, beast::tcp_stream& lowest, beast::flat_buffer& buffer,
                                         http::request<http::span_body<const char>>& req, bool expect_continue,
                                         bool head, std::chrono::milliseconds timeout) {
  ExchangeResult out;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  if (head) parser.skip(true);
  bool body_sent = true;

  lowest.expires_after(timeout);
  if (expect_continue && req.body().size() > 0) {
    req.set(http::field::expect, "100-continue");
    http::request_serializer<http::span_body<const char>> sr(req);
    auto [wec, wn] = co_await http::async_write_header(stream, sr, use_tuple);
    if (wec) throw ConnectionFailure("sending request headers: " + wec.message(), silence(wec));
    http::response_parser<http::empty_body> interim;
    lowest.expires_after(timeout);
    auto [iec, in] = co_await http::async_read_header(stream, buffer, interim, use_tuple);
    if (iec) throw ConnectionFailure("waiting for 100 Continue: " + iec.message(), silence(iec));
    if (interim.get().result() == http::status::continue_) {
      co_await write_rest(stream, lowest, sr, timeout);
    } else {
      // A final answer instead of 100 (403, 400, ...): the body was never sent,
      // so the connection cannot carry another request. Its own body, if any,
      // is read below from where the interim parser stopped: re-parse it whole.
      body_sent = false;
      out.response.status = interim.get().result_int();
      copy_headers(interim.get(), out.response.headers);
      if (!interim.is_done()) {
        http::response_parser<http::string_body> rest{std::move(interim)};
        rest.body_limit(kMaxResponseBody);
        auto [rec, rn] = co_await http::async_read(stream, buffer, rest, use_tuple);
        if (!rec) out.response.body = std::move(rest.get().body());
      }
      co_return out;
    }
  } else {
    http::request_serializer<http::span_body<const char>> sr(req);
    co_await write_rest(stream, lowest, sr, timeout);
  }

  // The answer's head, then its body piece by piece: a store may take long
  // over CompleteMultipartUpload and keep the connection alive meanwhile
  // with whitespace (S3 does).
  lowest.expires_after(timeout);
  auto [rec, rn] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
  if (rec) throw ConnectionFailure("reading response: " + rec.message(), silence(rec));
  while (!parser.is_done()) {
    lowest.expires_after(timeout);
    auto [bec, bn] = co_await http::async_read_some(stream, buffer, parser, use_tuple);
    if (bec) throw ConnectionFailure("reading response: " + bec.message(), silence(bec));
  }
  auto& res = parser.get();
  out.response.status = res.result_int();
  copy_headers(res, out.response.headers);
  out.response.body = std::move(res.body());
  out.reusable = body_sent && res.keep_alive();
  co_return out;
}

}  // namespace

namespace {

// The signed HTTP request for `request` (its body is a view: it stays the caller's).
http::request<http::span_body<const char>> signed_request(const Request& request, const std::string& path,
                                                          const std::string& host_header, const std::string& region,
                                                          const Credentials& creds, const std::string& payload_hash) {
  SignableRequest signable{request.method, path, request.query, request.headers, payload_hash};
  signable.headers.emplace_back("host", host_header);
  const auto signature = sign(signable, creds, SigningContext{region, "s3", std::chrono::system_clock::now()});

  std::string path_and_query = uri_encode(path, false);
  for (std::size_t i = 0; i < request.query.size(); ++i) {
    path_and_query += (i == 0 ? "?" : "&") + uri_encode(request.query[i].first, true);
    if (!request.query[i].second.empty()) path_and_query += "=" + uri_encode(request.query[i].second, true);
  }
  http::request<http::span_body<const char>> req{http::string_to_verb(request.method), path_and_query, 11};
  req.set(http::field::host, host_header);
  req.set(http::field::user_agent, "s3uploader");
  for (const auto& [k, v] : request.headers) req.set(k, v);
  for (const auto& [k, v] : signature.headers) req.set(k, v);
  req.body() = request.body;
  req.keep_alive(true);
  req.prepare_payload();
  if (request.body.empty() && (request.method == "PUT" || request.method == "POST")) {
    req.set(http::field::content_length, "0");
  }
  return req;
}

}  // namespace

asio::awaitable<Response> Client::attempt(const Request& request, const std::string& payload_hash) {
  const Credentials creds = co_await credentials_->get();
  auto req = signed_request(request, path_for(request.key), host_header_, options_.region, creds, payload_hash);

  auto conn = take_idle();
  if (!conn) conn = co_await connect();
  const bool head = request.method == "HEAD";
  ExchangeResult result;
  if (conn->tls) {
    result = co_await exchange(*conn->tls, conn->lowest(), conn->buffer, req, request.expect_continue, head,
                               options_.timeout);
  } else {
    result = co_await exchange(*conn->plain, conn->lowest(), conn->buffer, req, request.expect_continue, head,
                               options_.timeout);
  }
  if (result.reusable) give_back(std::move(conn));
  co_return std::move(result.response);
}

namespace {

// What every attempt at an S3 request adds to the metrics.
struct RequestMetrics {
  metrics::Family<metrics::Counter>& requests = metrics::registry().counter(
      "s3uploader_s3_requests_total",
      "Requests sent to the object store (each attempt), by S3 operation and HTTP status (\"error\": no answer).",
      {"operation", "code"});
  metrics::Family<metrics::Histogram>& durations = metrics::registry().histogram(
      "s3uploader_s3_request_duration_seconds",
      "Time from sending an S3 request to its answer's headers (its body, for the operations read whole).",
      {"operation"});
  metrics::Family<metrics::Counter>& retries =
      metrics::registry().counter("s3uploader_s3_retries_total",
                                  "S3 requests sent again after an error or a retryable status, by operation.",
                                  {"operation"});
};

RequestMetrics& request_metrics() {
  static RequestMetrics m;
  return m;
}

unsigned status_of_answer(const Response& r) { return r.status; }
unsigned status_of_answer(const std::unique_ptr<ResponseStream>& r) { return r->status(); }

std::string operation_label(const Request& request) {
  return request.operation.empty() ? request.method : std::string(request.operation);
}

}  // namespace

// Runs `attempt` until it gives an answer not worth retrying, with backoff
// between tries; throws ConnectionFailure after the last, or at once while
// `breaker` is open. `status_of` reads an answer's HTTP status. Each attempt
// is counted and timed.
template <class Attempt, class StatusOf>
auto retried(const ClientOptions& options, const asio::any_io_executor& executor, Client::Breaker& breaker,
             const Request& request, Attempt attempt, StatusOf status_of) -> decltype(attempt()) {
  auto& counted = request_metrics();
  const std::string operation = operation_label(request);
  std::string last_problem;
  for (int attempt_no = 0; attempt_no < options.max_attempts; ++attempt_no) {
    if (breaker.open()) {
      counted.requests.with({operation, "error"}).add();
      throw ConnectionFailure(last_problem.empty() ? "the store has not been answering; not tried for a moment"
                                                   : last_problem);
    }
    if (attempt_no > 0) {
      counted.retries.with({operation}).add();
      asio::steady_timer timer(executor, backoff(attempt_no));
      co_await timer.async_wait(use_tuple);
    }
    std::optional<typename decltype(attempt())::value_type> answer;
    const auto started = std::chrono::steady_clock::now();
    const auto observe = [&](std::string code) {
      counted.requests.with({operation, std::move(code)}).add();
      counted.durations.with({operation})
          .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    };
    try {
      answer = co_await attempt();
    } catch (const ConnectionFailure& e) {
      observe("error");
      if (e.silent()) {
        breaker.no_answer();
      } else {
        breaker.answered();  // a broken connection: the store is there
      }
      last_problem = e.what();
      spdlog::warn("s3 {} {}: {} (attempt {} of {})", request.method, request.key.empty() ? "/" : request.key,
                   last_problem, attempt_no + 1, options.max_attempts);
      continue;
    }
    observe(std::to_string(status_of_answer(*answer)));
    breaker.answered();
    if (attempt_no + 1 == options.max_attempts) co_return std::move(*answer);
    const auto retry = co_await status_of(*answer);
    if (!retry) co_return std::move(*answer);
    last_problem = fmt::format("HTTP {}", *retry);
    spdlog::warn("s3 {} {}: {} (attempt {} of {})", request.method, request.key.empty() ? "/" : request.key,
                 last_problem, attempt_no + 1, options.max_attempts);
  }
  throw ConnectionFailure(last_problem);
}

bool Client::Breaker::open() const {
  return std::chrono::steady_clock::now().time_since_epoch().count() < open_until_.load();
}

void Client::Breaker::answered() {
  failures_in_a_row_ = 0;
  open_until_ = 0;
}

void Client::Breaker::no_answer() {
  if (++failures_in_a_row_ < kFailuresToOpen) return;
  const auto until = std::chrono::steady_clock::now() + kOpenFor;
  if (open_until_.exchange(until.time_since_epoch().count()) == 0) {
    spdlog::error("s3: the store has not answered {} attempts in a row; requests fail at once for {} s",
                  failures_in_a_row_.load(), kOpenFor.count());
  }
}

asio::awaitable<Response> Client::send(const Request& request) {
  const std::string payload_hash = request.payload_hash.empty()
                                       ? util::sha256_hex(std::string_view(request.body.data(), request.body.size()))
                                       : request.payload_hash;
  co_return co_await retried(
      options_, executor_, breaker_, request, [&] { return attempt(request, payload_hash); },
      [](const Response& r) -> asio::awaitable<std::optional<unsigned>> {
        co_return retryable(r) ? std::optional(r.status) : std::nullopt;
      });
}

struct ResponseStream::State {
  std::shared_ptr<Client> client;
  std::unique_ptr<Client::Connection> connection;
  http::response_parser<http::buffer_body> parser;
  std::chrono::milliseconds timeout{};
  std::vector<Header> headers;
  std::uint64_t remaining = 0;  // of the body (its Content-Length)
  bool chunked = false;
};

ResponseStream::ResponseStream(std::unique_ptr<State> state) : state_(std::move(state)) {}
ResponseStream::~ResponseStream() = default;  // a connection still held is closed with it

unsigned ResponseStream::status() const { return state_->parser.get().result_int(); }

std::string ResponseStream::header(std::string_view name) const {
  for (const auto& [k, v] : state_->headers) {
    if (k == name) return v;
  }
  return "";
}

asio::awaitable<std::size_t> ResponseStream::read_some(std::span<char> into) {
  auto& st = *state_;
  if (!st.connection || into.empty()) co_return 0;
  auto& c = *st.connection;
  std::size_t got = 0;
  if (st.chunked) {
    // Rare for GetObject: through the parser, which undoes the framing.
    auto& p = st.parser;
    while (got == 0 && !p.is_done()) {
      p.get().body().data = into.data();
      p.get().body().size = into.size();
      c.lowest().expires_after(st.timeout);
      boost::system::error_code ec;
      if (c.tls) {
        std::tie(ec, std::ignore) = co_await http::async_read_some(*c.tls, c.buffer, p, use_tuple);
      } else {
        std::tie(ec, std::ignore) = co_await http::async_read_some(*c.plain, c.buffer, p, use_tuple);
      }
      if (ec == http::error::need_buffer) ec = {};
      if (ec) throw ConnectionFailure("reading response body: " + ec.message(), silence(ec));
      got = into.size() - p.get().body().size;
    }
    if (p.is_done() && p.keep_alive()) st.client->give_back(std::move(st.connection));
    co_return got;
  }
  // Content-Length: what the header read buffered first, then straight from
  // the socket into the caller's buffer (no copy through Beast's).
  if (st.remaining == 0) {
    if (st.parser.keep_alive()) st.client->give_back(std::move(st.connection));
    co_return 0;
  }
  const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(into.size(), st.remaining));
  if (c.buffer.size() > 0) {
    got = asio::buffer_copy(asio::buffer(into.data(), want), c.buffer.data());
    c.buffer.consume(got);
  } else {
    c.lowest().expires_after(st.timeout);
    boost::system::error_code ec;
    if (c.tls) {
      std::tie(ec, got) = co_await c.tls->async_read_some(asio::buffer(into.data(), want), use_tuple);
    } else {
      std::tie(ec, got) = co_await c.plain->async_read_some(asio::buffer(into.data(), want), use_tuple);
    }
    if (ec) throw ConnectionFailure("reading response body: " + ec.message(), silence(ec));
  }
  st.remaining -= got;
  if (st.remaining == 0 && st.parser.keep_alive()) st.client->give_back(std::move(st.connection));
  co_return got;
}

asio::awaitable<std::string> ResponseStream::read_rest() {
  std::string out;
  std::array<char, 16 * 1024> piece{};
  for (;;) {
    const std::size_t n = co_await read_some(piece);
    if (n == 0) break;
    if (out.size() + n > kMaxResponseBody) throw ConnectionFailure("response body too large");
    out.append(piece.data(), n);
  }
  co_return out;
}

asio::awaitable<std::unique_ptr<ResponseStream>> Client::attempt_open(const Request& request) {
  const Credentials creds = co_await credentials_->get();
  auto req = signed_request(request, path_for(request.key), host_header_, options_.region, creds,
                            std::string(kEmptyPayloadHash));
  auto state = std::make_unique<ResponseStream::State>();
  state->client = shared_from_this();
  state->timeout = options_.timeout;
  state->connection = take_idle();
  if (!state->connection) state->connection = co_await connect();
  auto& c = *state->connection;
  auto& parser = state->parser;
  parser.body_limit(boost::none);
  c.lowest().expires_after(options_.timeout);
  boost::system::error_code ec;
  if (c.tls) {
    std::tie(ec, std::ignore) = co_await http::async_write(*c.tls, req, use_tuple);
  } else {
    std::tie(ec, std::ignore) = co_await http::async_write(*c.plain, req, use_tuple);
  }
  if (ec) throw ConnectionFailure("sending request: " + ec.message(), silence(ec));
  if (c.tls) {
    std::tie(ec, std::ignore) = co_await http::async_read_header(*c.tls, c.buffer, parser, use_tuple);
  } else {
    std::tie(ec, std::ignore) = co_await http::async_read_header(*c.plain, c.buffer, parser, use_tuple);
  }
  if (ec) throw ConnectionFailure("reading response headers: " + ec.message(), silence(ec));
  copy_headers(parser.get(), state->headers);
  state->chunked = parser.chunked();
  state->remaining = parser.content_length().value_or(0);
  if (!state->chunked && !parser.content_length() && !parser.is_done()) {
    throw ConnectionFailure("response without a length");  // a body up to the connection's end: not from S3
  }
  co_return std::make_unique<ResponseStream>(std::move(state));
}

asio::awaitable<std::unique_ptr<ResponseStream>> Client::open(const Request& request) {
  co_return co_await retried(
      options_, executor_, breaker_, request, [&] { return attempt_open(request); },
      [](std::unique_ptr<ResponseStream>& r) -> asio::awaitable<std::optional<unsigned>> {
        if (r->status() < 500) co_return std::nullopt;
        co_return r->status();
      });
}

asio::awaitable<std::string> Client::presign(std::string method, std::string key, std::chrono::seconds expires,
                                             std::vector<Header> query) {
  const std::string path = path_for(key);
  const Credentials creds = co_await credentials_->get();
  SignableRequest signable{method, path, std::move(query), {{"host", host_header_}}, ""};
  const auto signed_query =
      presign_query(signable, creds, SigningContext{options_.region, "s3", std::chrono::system_clock::now()}, expires);
  co_return fmt::format("{}://{}{}?{}", tls_ ? "https" : "http", host_header_, uri_encode(path, false), signed_query);
}

}  // namespace s3up::storage::s3
