#include "harness.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "util/crypto.hpp"

namespace s3up::test {

using namespace std::chrono_literals;

namespace {

std::filesystem::path make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "s3up-it-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// "NAME=value" entries for execve.
std::vector<std::string> as_environment(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// fork + exec with the given environment; stdout/stderr to files.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::filesystem::path& out,
            const std::filesystem::path& err) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    // Nothing else of the test's: a listening socket or a connection the
    // program kept open would outlive the test's own close of it.
    ::close_range(3, ~0U, 0);
    std::vector<char*> args, envp;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (auto& v : env) envp.push_back(const_cast<char*>(v.c_str()));
    envp.push_back(nullptr);
    ::execve(argv[0].c_str(), args.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

std::filesystem::path temporary_directory() { return make_temp_dir(); }

CommandResult run_program(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  const auto dir = make_temp_dir();
  const pid_t pid = spawn(argv, as_environment(env), dir / "out", dir / "err");
  int status = 0;
  ::waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(dir / "out");
  r.err = read_file(dir / "err");
  std::filesystem::remove_all(dir);
  return r;
}

BackgroundProgram::BackgroundProgram(const std::vector<std::string>& argv,
                                     const std::map<std::string, std::string>& env, const std::filesystem::path& log) {
  pid_ = spawn(argv, as_environment(env), log, log);
}

BackgroundProgram::~BackgroundProgram() {
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

unsigned short free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("no free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The binary under test: the one built beside these tests, or another given
// by S3UP_TEST_BINARY (to show which tests an older build fails).
namespace {
std::string binary() {
  const char* other = std::getenv("S3UP_TEST_BINARY");
  return other != nullptr && *other != '\0' ? other : S3UP_BINARY;
}
}  // namespace

std::string binary_path() { return binary(); }

ServerProcess::ServerProcess(std::map<std::string, std::string> env) : dir_(make_temp_dir()), env_(std::move(env)) {
  start();
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  // CI keeps only the test's output: on a failure, the server's side of it.
  if (::testing::Test::HasFailure()) print_log_tail(80);
  if (std::getenv("S3UP_TEST_KEEP_DIRS") == nullptr) std::filesystem::remove_all(dir_);
}

std::map<std::string, std::string> ServerProcess::environment_variables() const {
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"S3UP_LISTEN", "127.0.0.1:0"},
      {"S3UP_PORT_FILE", (dir_ / "port").string()},
      {"S3UP_STORAGE", "file://" + (dir_ / "objects").string()},
      {"S3UP_DATABASE", "sqlite://" + (dir_ / "s3uploader.db").string()},
      {"S3UP_THREADS", "2"},
      {"S3UP_SHUTDOWN_GRACE", "10s"},
  };
  for (const auto& [k, v] : env_) env[k] = v;
  return env;
}

void ServerProcess::start() {
  pid_ = spawn({binary(), "serve"}, as_environment(environment_variables()), dir_ / "server.out", dir_ / "server.log");
  const auto port_file = dir_ / "port";
  if (!eventually([&] { return std::filesystem::exists(port_file); }, 15s)) {
    throw std::runtime_error("server did not start; log:\n" + log());
  }
  port_ = static_cast<unsigned short>(std::stoi(read_file(port_file)));
}

std::string ServerProcess::log() const { return read_file(dir_ / "server.log"); }

void ServerProcess::print_log_tail(std::size_t lines) const {
  const std::string text = log();
  // The last `lines` lines (the text ends with a newline, which does not count).
  std::size_t from = text.size(), seen = 0;
  while (from > 0) {
    if (text[from - 1] == '\n' && ++seen > lines) break;
    --from;
  }
  std::fprintf(stderr, "--- the last %zu lines of the server's log (%s) ---\n%s--- end of the server's log ---\n",
               lines, (dir_ / "server.log").c_str(), text.c_str() + from);
}

CommandResult ServerProcess::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, environment_variables());
}

std::string ServerProcess::create_user_with_token(const std::string& name) {
  auto r = cli({"user", "add", name});
  if (r.exit_code != 0) throw std::runtime_error("user add failed: " + r.err);
  r = cli({"token", "create", name});
  if (r.exit_code != 0) throw std::runtime_error("token create failed: " + r.err);
  std::string token = r.out;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  return token;
}

namespace {
std::uint64_t proc_status_kib(pid_t pid, std::string_view field) {
  std::istringstream status(read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field)) return std::stoull(line.substr(field.size())) * 1024;
  }
  throw std::runtime_error("no " + std::string(field) + " in /proc/" + std::to_string(pid) + "/status");
}
}  // namespace

std::uint64_t ServerProcess::rss_bytes() const { return proc_status_kib(pid_, "VmRSS:"); }
std::uint64_t ServerProcess::peak_rss_bytes() const { return proc_status_kib(pid_, "VmHWM:"); }

void ServerProcess::signal(int signo) const { ::kill(pid_, signo); }

int ServerProcess::wait(std::chrono::milliseconds timeout) {
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

std::unique_ptr<db::MetadataStore> ServerProcess::database() const {
  if (const auto it = env_.find("S3UP_DATABASE"); it != env_.end()) return db::open_metadata_store(it->second, 1);
  return db::open_metadata_store("sqlite://" + (dir_ / "s3uploader.db").string(), 1);
}

std::vector<std::filesystem::path> ServerProcess::stored_files() const {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::exists(objects_dir())) return out;
  for (auto& e : std::filesystem::recursive_directory_iterator(objects_dir())) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  return out;
}

Connection::Connection(unsigned short port, int receive_buffer) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // Before connect, so the window the server sees is small from the start.
  if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Connection::~Connection() { close(); }

void Connection::finish_sending() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Connection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool Connection::send(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool Connection::fill(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char buf[65536];
  const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) return false;
  buffer_.append(buf, static_cast<std::size_t>(n));
  return true;
}

bool Connection::read_100_continue(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buffer_.find("\r\n\r\n") == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !fill(left)) return false;
  }
  if (buffer_.starts_with("HTTP/1.1 100")) {
    buffer_.erase(0, buffer_.find("\r\n\r\n") + 4);
    return true;
  }
  return false;
}

std::optional<Response> Connection::read_response(std::chrono::milliseconds timeout, bool to_head) {
  Response r;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto left = [&] {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
  };
  for (;;) {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= deadline || !fill(left())) return std::nullopt;
    }
    std::istringstream head(buffer_.substr(0, end));
    buffer_.erase(0, end + 4);
    std::string line;
    std::getline(head, line);
    if (line.size() < 12) return std::nullopt;
    r.status = std::stoi(line.substr(9, 3));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    r.reason = line.size() > 13 ? line.substr(13) : "";
    if (r.status == 100) {
      r.saw_100_continue = true;
      continue;
    }
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
    }
    break;
  }
  const std::size_t length =
      !to_head && r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
  while (buffer_.size() < length) {
    if (std::chrono::steady_clock::now() >= deadline || !fill(left())) return std::nullopt;
  }
  r.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  return r;
}

bool Connection::closed_by_peer(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
  }
  return false;
}

ContentStream::ContentStream(std::uint64_t size, std::uint64_t seed) : size_(size), state_(seed * 2654435761u + 1) {}

std::string ContentStream::next(std::size_t max) {
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(max, size_ - produced_));
  std::string out(n, '\0');
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    std::memcpy(out.data() + i, &state_, 8);
  }
  for (; i < n; ++i) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    out[i] = static_cast<char>(state_);
  }
  produced_ += n;
  return out;
}

std::string ContentStream::make(std::uint64_t size, std::uint64_t seed) {
  ContentStream s(size, seed);
  return s.next(static_cast<std::size_t>(size));
}

std::string ContentStream::sha256_of(std::uint64_t size, std::uint64_t seed) {
  ContentStream s(size, seed);
  util::Sha256 h;
  for (;;) {
    auto piece = s.next(1 << 20);
    if (piece.empty()) break;
    h.update(piece);
  }
  return util::to_hex(h.finish());
}

std::string file_sha256(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  util::Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(std::span<const char>(buf.data(), static_cast<std::size_t>(in.gcount())));
  }
  return util::to_hex(h.finish());
}

std::string Multipart::head(const std::string& file_name, const std::string& part_type, const std::string& field) {
  return std::string("--") + boundary + "\r\nContent-Disposition: form-data; name=\"" + field + "\"; filename=\"" +
         file_name + "\"\r\nContent-Type: " + part_type + "\r\n\r\n";
}

std::string Multipart::tail() { return std::string("\r\n--") + boundary + "--\r\n"; }

std::string Multipart::body(const std::string& file_name, const std::string& content, const std::string& part_type) {
  return head(file_name, part_type) + content + tail();
}

Response request(unsigned short port, const std::string& method, const std::string& target,
                 const std::map<std::string, std::string>& headers, const std::string& body) {
  Connection c(port);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  c.send(req);
  c.send(body);
  // An answer to HEAD has a Content-Length but no body.
  auto r = c.read_response(std::chrono::seconds(60), method == "HEAD");
  if (!r) throw std::runtime_error("no response to " + method + " " + target);
  return *r;
}

Response upload_streamed(unsigned short port, const std::string& token, const std::string& file_name,
                         std::uint64_t size, std::uint64_t seed) {
  Connection c(port);
  const std::string head = Multipart::head(file_name);
  const std::string tail = Multipart::tail();
  std::string req = "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
                    "\r\nContent-Type: " + Multipart::content_type() +
                    "\r\nContent-Length: " + std::to_string(head.size() + size + tail.size()) + "\r\n\r\n";
  c.send(req + head);
  ContentStream content(size, seed);
  for (;;) {
    auto piece = content.next(256 * 1024);
    if (piece.empty()) break;
    if (!c.send(piece)) break;
  }
  c.send(tail);
  auto r = c.read_response(std::chrono::minutes(5));
  if (!r) throw std::runtime_error("no response to streamed upload");
  return *r;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

double metric_sample(const std::string& scrape, const std::string& series) {
  const auto at = scrape.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(scrape.substr(at + series.size() + 2));
}

void make_test_certificate(const std::filesystem::path& dir, const std::string& name) {
  const auto openssl = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv{"/usr/bin/openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = run_program(argv, {{"PATH", "/usr/bin:/bin"}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  };
  const std::string d = dir.string() + "/" + name;
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
           d + "-ca.key", "-out", d + "-ca.pem", "-days", "2", "-subj", "/CN=s3uploader test CA " + name});
  openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + ".key", "-out",
           d + ".csr", "-subj", "/CN=localhost"});
  std::ofstream(d + ".ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  openssl({"x509", "-req", "-in", d + ".csr", "-CA", d + "-ca.pem", "-CAkey", d + "-ca.key", "-CAcreateserial",
           "-out", d + ".crt", "-days", "2", "-extfile", d + ".ext"});
}

}  // namespace s3up::test
