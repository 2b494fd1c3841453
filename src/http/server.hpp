#pragma once
// The HTTP/1.1 server: one coroutine per connection on its own strand,
// keep-alive, header and idle-body timeouts, 100-continue, the framing checks
// of RFC 9112, graceful shutdown, and the one path that writes a response
// (its string, its stream, or nothing; never a body for HEAD).
//
// Handlers see the request headers first and pull the body through a
// BodyReader when (and if) they want it, so an upload can be refused before
// a byte of it is read, and the body is streamed, never held whole.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "http/message.hpp"
#include "http/router.hpp"
#include "util/buffer_pool.hpp"

namespace boost::asio::ssl {
class context;
}

namespace s3up::http {

// The certificate chain and key the listener presents (PEM files), for
// TLS 1.2 and 1.3 with Mozilla's "intermediate" ciphers and ALPN http/1.1.
// reload() reads the files again (a rotated certificate): connections
// already open keep the pair they began with, new ones get the new pair.
class TlsCertificate {
 public:
  // Throws std::runtime_error saying which file is wrong and how.
  TlsCertificate(std::string cert_file, std::string key_file);
  ~TlsCertificate();
  // False (the error logged, the old pair kept) if the files do not load now.
  bool reload();
  std::shared_ptr<boost::asio::ssl::context> current() const;

 private:
  std::string cert_file_, key_file_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> current_;
};

// One answered request, as the access log (and later metrics) see it.
struct Exchange {
  std::string_view peer;
  std::string_view method;
  std::string_view target;  // the route's name, or what of the path may be shown
  std::string_view route;   // the route's name; empty when none matched
  unsigned status = 0;      // 499: the client went away
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  double milliseconds = 0;
  std::optional<std::int64_t> user_id;
  std::string_view request_id;
};
using ExchangeObserver = std::function<void(const Exchange&)>;

// The access log line of an exchange, on the "access" logger.
ExchangeObserver access_log();

// What a connection may take from its client: the settings of the server.
struct Limits {
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
};

struct ServerOptions : Limits {
  boost::asio::ip::tcp::endpoint endpoint;
  std::uint64_t max_body_bytes = 0;  // beast's body_limit; handlers enforce their own limits below it
  // The process's memory budget (required): receive buffers for bodies come
  // from it when it has room (else a connection reads through its small
  // header buffer).
  std::shared_ptr<util::BufferPool> buffers;
  // Called once per answered (or refused) request; access_log() if unset.
  ExchangeObserver on_exchange;
  // HTTPS with this certificate; plain HTTP when null.
  std::shared_ptr<TlsCertificate> tls;
};

class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options, Handler handler);
  ~Server();

  // Binds and listens (throws on failure) and starts accepting.
  void start();
  boost::asio::ip::tcp::endpoint local_endpoint() const;

  // Open connections: handling a request, or waiting for the next.
  struct Connections {
    std::size_t busy = 0;
    std::size_t idle = 0;
  };
  Connections connections() const;

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
