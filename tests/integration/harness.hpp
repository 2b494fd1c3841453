#pragma once
// Test harness: starts the real binary, talks raw HTTP/1.1 to it over
// loopback, and looks at what it left on disk and in its database.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "db/metadata_store.hpp"

namespace s3up::test {

// Under AddressSanitizer the server's memory is its shadow and quarantine
// more than its own: memory bounds are checked in the plain build only.
// And it runs several times slower: a bound that means "at once" (not a
// speed: those are measured in bench/) is stretched by kSlowdown.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMemoryIsMeasurable = false;
constexpr int kSlowdown = 5;
#else
constexpr bool kMemoryIsMeasurable = true;
constexpr int kSlowdown = 1;
#endif

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The s3uploader binary under test.
std::string binary_path();
// A new empty directory under the system's temporary directory.
std::filesystem::path temporary_directory();
// Runs a program to its end with exactly the environment `env`; its stdout
// and stderr captured.
CommandResult run_program(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);

// A program running in the background (output to `log`) until destroyed.
class BackgroundProgram {
 public:
  BackgroundProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                    const std::filesystem::path& log);
  ~BackgroundProgram();
  BackgroundProgram(const BackgroundProgram&) = delete;
  BackgroundProgram& operator=(const BackgroundProgram&) = delete;

 private:
  pid_t pid_;
};

// A loopback port nobody listens on now (bound, then released).
unsigned short free_port();

// A running `s3uploader serve` with its own temporary data directory.
class ServerProcess {
 public:
  // Extra environment, e.g. {"S3UP_MAX_UPLOAD_BYTES", "1MiB"}.
  explicit ServerProcess(std::map<std::string, std::string> env = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  unsigned short port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path objects_dir() const { return dir_ / "objects"; }
  std::string log() const;                       // everything the server printed so far
  void print_log_tail(std::size_t lines) const;  // to stderr

  // Runs a CLI subcommand against the same database.
  CommandResult cli(const std::vector<std::string>& args) const;
  // Creates a user and returns a fresh token for it.
  std::string create_user_with_token(const std::string& name);

  // The server's resident memory now and at its peak (VmRSS, VmHWM), bytes.
  std::uint64_t rss_bytes() const;
  std::uint64_t peak_rss_bytes() const;

  // Sends a signal; wait() returns the exit status (or -1 on timeout).
  void signal(int signo) const;
  int wait(std::chrono::milliseconds timeout);

  // Opens the server's database directly (read-your-own checks; SQLite WAL
  // handles the two processes): its own SQLite file, or S3UP_DATABASE if the
  // test set one.
  std::unique_ptr<db::MetadataStore> database() const;

  // Regular files under objects/ (temporary ones included).
  std::vector<std::filesystem::path> stored_files() const;

 private:
  void start();
  std::map<std::string, std::string> environment_variables() const;

  std::filesystem::path dir_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
  unsigned short port_ = 0;
};

struct Response {
  int status = 0;
  std::string reason;                          // the status line's reason phrase
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool saw_100_continue = false;
  boost::json::value json() const { return boost::json::parse(body); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A blocking HTTP/1.1 client on one loopback TCP connection.
class Connection {
 public:
  // `receive_buffer` > 0: the socket's receive buffer (SO_RCVBUF), so a
  // client that reads nothing stops the server's writes soon.
  explicit Connection(unsigned short port, int receive_buffer = 0);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Returns false once the peer has closed or reset the connection.
  bool send(std::string_view data);
  // Reads one final response (skipping 1xx ones, which it records). A
  // response to HEAD has no body whatever its Content-Length: `to_head`.
  std::optional<Response> read_response(std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                        bool to_head = false);
  // Whatever the server sent that no response read has taken (yet).
  const std::string& unread() const { return buffer_; }
  // Waits for an interim or final status line; true if it is "100 Continue".
  bool read_100_continue(std::chrono::milliseconds timeout);
  // True if the server closed the connection within the timeout.
  bool closed_by_peer(std::chrono::milliseconds timeout);
  // Ends what this side sends (the server reads the end of the stream) and
  // keeps reading: the way to see how a server answers a body cut short.
  void finish_sending();
  void close();

 private:
  bool fill(std::chrono::milliseconds timeout);
  int fd_ = -1;
  std::string buffer_;
};

// Deterministic pseudo-random content, produced in pieces, with its SHA-256.
class ContentStream {
 public:
  ContentStream(std::uint64_t size, std::uint64_t seed);
  // The next up-to-`max` bytes; empty at the end.
  std::string next(std::size_t max);
  std::uint64_t size() const { return size_; }
  static std::string make(std::uint64_t size, std::uint64_t seed);  // whole, for small sizes
  static std::string sha256_of(std::uint64_t size, std::uint64_t seed);

 private:
  std::uint64_t size_, produced_ = 0, state_;
};

std::string file_sha256(const std::filesystem::path& path);

// multipart/form-data framing around one file field.
struct Multipart {
  static constexpr const char* boundary = "s3up-test-boundary-7MA4YWxkTrZu0gW";
  static std::string content_type() { return std::string("multipart/form-data; boundary=") + boundary; }
  static std::string head(const std::string& file_name, const std::string& part_type = "application/octet-stream",
                          const std::string& field = "file");
  static std::string tail();
  static std::string body(const std::string& file_name, const std::string& content,
                          const std::string& part_type = "application/octet-stream");
};

// One request, whole body in memory.
Response request(unsigned short port, const std::string& method, const std::string& target,
                 const std::map<std::string, std::string>& headers = {}, const std::string& body = "");

// POST /upload of `size` bytes of ContentStream(seed), streamed in pieces.
Response upload_streamed(unsigned short port, const std::string& token, const std::string& file_name,
                         std::uint64_t size, std::uint64_t seed);

// The value of the sample `series` (its name and labels, as rendered) in a
// Prometheus scrape; -1 when absent.
double metric_sample(const std::string& scrape, const std::string& series);
// A CA and a certificate for localhost and 127.0.0.1 that it signed, made
// with openssl in `dir`: <name>-ca.pem, <name>.crt, <name>.key.
void make_test_certificate(const std::filesystem::path& dir, const std::string& name);

// Polls `condition` until it holds or the timeout passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace s3up::test
