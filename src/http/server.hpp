#pragma once
// The HTTP/1.1 server: one coroutine per connection on its own strand,
// keep-alive, header and idle-body timeouts, 100-continue, graceful shutdown,
// an access log line per request, and the one net around each request that
// turns errors into the JSON error shape.
//
// Handlers see the request headers first and pull the body through a
// BodyReader when (and if) they want it, so an upload can be refused before
// a byte of it is read, and the body is streamed, never held whole.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>

#include "util/api_error.hpp"
#include "util/buffer_pool.hpp"

namespace s3up::http {

namespace beast_http = boost::beast::http;
using RequestHeader = beast_http::request_header<>;
using Response = beast_http::response<beast_http::string_body>;

// The request body, read on demand in chunks.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  // The next chunk of the body (valid until the next call); empty at its end.
  // Throws ApiError: bad_request (malformed framing), client_disconnected,
  // timeout (a pause longer than the idle timeout, or a body slower than the
  // minimum rate), file_too_large (over the server's body limit), shutting_down.
  virtual boost::asio::awaitable<std::span<const char>> read_some() = 0;
  virtual std::optional<std::uint64_t> content_length() const = 0;
};

// A response body produced piece by piece after the headers (downloads), so
// it is never held whole. The handler sets Content-Length on the response and
// leaves the response's own body empty.
struct BodyStream {
  // The next piece; empty once `Content-Length` bytes were given. If it
  // throws, the headers are already out: the connection is closed, and the
  // client sees a short body.
  std::function<boost::asio::awaitable<std::string>()> next;
};

struct RequestContext {
  std::string request_id;
  // The route that took the request ("PUT /upload/{name}"), set by the
  // handler: the access log shows it instead of a path that may carry
  // something a log should not (a file name, a pasted token).
  std::string route;
  std::optional<std::int64_t> user_id;  // set by the handler once the caller is known, for the access log
  std::optional<BodyStream> response_stream;  // set by a handler that streams its response body
};

struct Request {
  const RequestHeader& header;
  BodyReader& body;
  RequestContext& context;
};

using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;

// Responses in the API's shapes.
Response json_response(unsigned status, const boost::json::value& body);
Response error_response(errc code, std::string_view message);

struct ServerOptions {
  boost::asio::ip::tcp::endpoint endpoint;
  std::chrono::milliseconds header_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  // A body must arrive at min_body_rate bytes/s or faster, measured over the
  // last min_body_rate_window of time spent waiting for the client (the first
  // window is grace; time the server spends elsewhere, e.g. waiting for
  // buffer budget, does not count). Slower: 408. 0 turns the check off.
  std::uint64_t min_body_rate = 0;
  std::chrono::milliseconds min_body_rate_window{30'000};
  std::chrono::milliseconds shutdown_grace{30'000};
  std::size_t max_header_bytes = 16 * 1024;
  std::uint64_t max_body_bytes = 0;  // beast's body_limit; handlers enforce their own limits below it
  // The process's memory budget (required): receive buffers for bodies come
  // from it when it has room (else a connection reads through its small
  // header buffer).
  std::shared_ptr<util::BufferPool> buffers;
};

class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options, Handler handler);
  ~Server();

  // Binds and listens (throws on failure) and starts accepting.
  void start();
  boost::asio::ip::tcp::endpoint local_endpoint() const;

  // Graceful shutdown: stop accepting, close idle connections, let requests in
  // progress finish for up to the grace period, then cut the rest off (their
  // uploads are aborted and cleaned up by their handlers). `on_done` runs once
  // every connection is gone.
  void shutdown(std::function<void()> on_done);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace s3up::http
