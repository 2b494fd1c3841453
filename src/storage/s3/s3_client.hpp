#pragma once
// A small S3 client: HTTP/1.1 over Beast (TLS through OpenSSL, verified
// against the system trust store), a keep-alive connection pool, SigV4 on
// every request, retries with exponential backoff and full jitter for what is
// worth retrying (connection failures, 5xx, SlowDown, RequestTimeout).
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "storage/s3/credentials.hpp"
#include "storage/s3/sigv4.hpp"

namespace s3up::storage::s3 {

struct ClientOptions {
  std::string endpoint;  // "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:7480"; empty: AWS for the region
  std::string region = "us-east-1";
  std::string bucket;
  // Path style (endpoint/bucket/key) instead of virtual-hosted (bucket.endpoint/key);
  // automatic for an IP address or localhost endpoint.
  bool force_path_style = false;
  std::string ca_file;  // extra CA bundle for private stores
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{120'000};
  int max_attempts = 5;
  std::size_t max_idle_connections = 64;
};

struct Response {
  unsigned status = 0;
  std::vector<Header> headers;  // names lower-cased
  std::string body;
  std::string header(std::string_view name) const;
};

struct Request {
  std::string method;           // GET PUT POST DELETE HEAD
  std::string key;              // object key; empty for the bucket
  std::vector<Header> query;    // decoded
  std::vector<Header> headers;  // besides host and the signing headers
  std::span<const char> body;   // must stay valid until send() returns (it is resent on retry)
  std::string payload_hash;     // hex SHA-256 of body; computed here if empty
  bool expect_continue = false; // send the headers, wait for 100 Continue, then the body
};

// Thrown when the store could not be reached (after retries).
class ConnectionFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Client;

// A response whose body is read as it arrives (GetObject), with backpressure:
// nothing more is read from the store until the caller asks. It holds its
// connection until the body is read (the connection then goes back to the
// pool) or it is dropped (then the connection is closed).
class ResponseStream {
 public:
  ~ResponseStream();
  unsigned status() const;
  std::string header(std::string_view name) const;  // lower-case name
  // Up to into.size() bytes of the body; 0 at its end. Throws ConnectionFailure.
  boost::asio::awaitable<std::size_t> read_some(std::span<char> into);
  // The rest of the body as a string, up to a small limit (error answers).
  boost::asio::awaitable<std::string> read_rest();

  struct State;
  explicit ResponseStream(std::unique_ptr<State> state);

 private:
  std::unique_ptr<State> state_;
};

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(boost::asio::any_io_executor executor, ClientOptions options, std::shared_ptr<CredentialsProvider> credentials);
  ~Client();

  // Sends with retries; returns the final response whatever its status (the
  // caller decides what a 404 means). Throws ConnectionFailure.
  boost::asio::awaitable<Response> send(const Request& request);
  // Sends a request without a body (a GET) with the same retries, and
  // returns once the response headers are in; the body is the caller's to
  // read. A 5xx is retried; any other status is returned.
  boost::asio::awaitable<std::unique_ptr<ResponseStream>> open(const Request& request);

  // A presigned URL for a GET (or other method) of `key`, valid for `expires`;
  // `query` (e.g. partNumber and uploadId) is signed with it.
  boost::asio::awaitable<std::string> presign(std::string method, std::string key, std::chrono::seconds expires,
                                              std::vector<Header> query = {});

  const ClientOptions& options() const { return options_; }
  const boost::asio::any_io_executor& executor() const { return executor_; }
  bool path_style() const { return path_style_; }
  std::string credentials_source() const { return credentials_->describe(); }

 private:
  struct Connection;
  std::string path_for(const std::string& key) const;  // raw (unencoded) request path
  boost::asio::awaitable<std::unique_ptr<Connection>> connect();
  std::unique_ptr<Connection> take_idle();
  void give_back(std::unique_ptr<Connection> c);
  boost::asio::awaitable<Response> attempt(const Request& request, const std::string& payload_hash);
  boost::asio::awaitable<std::unique_ptr<ResponseStream>> attempt_open(const Request& request);
  friend class ResponseStream;

  boost::asio::any_io_executor executor_;
  ClientOptions options_;
  std::shared_ptr<CredentialsProvider> credentials_;
  bool tls_ = false;
  std::string endpoint_host_;
  std::string endpoint_port_;
  bool path_style_ = false;
  std::string connect_host_;  // endpoint host, with the bucket in front when virtual-hosted
  std::string host_header_;   // connect_host_ plus a non-default port
  struct TlsContext;
  std::unique_ptr<TlsContext> tls_context_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace s3up::storage::s3
