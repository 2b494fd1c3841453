// `s3uploader ls`, `get` and `rm`: the files API (GET /files, GET
// /files/{id}, GET /files/{id}/content, DELETE /files/{id}) from a terminal.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "client/client.hpp"
#include "client/progress.hpp"
#include "client/transport.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "util/units.hpp"

namespace s3up::client {

namespace {

namespace json = boost::json;

struct FileInfo {
  std::string id, name, type, sha256, uploaded;
  std::uint64_t size = 0;
};

FileInfo file_info(const json::value& value) {
  const auto& o = value.as_object();
  const auto text = [&](const char* key) -> std::string {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  FileInfo info{text("file_id"), text("file_name"), text("content_type"), text("sha256"), text("upload_time"), 0};
  if (const auto* size = o.if_contains("file_size"); size != nullptr) {
    // A size the service could have stored: a whole number, 0 up to 2^63.
    if (size->is_uint64()) {
      info.size = size->as_uint64();
    } else if (size->is_int64() && size->as_int64() >= 0) {
      info.size = static_cast<std::uint64_t>(size->as_int64());
    } else {
      throw Failure("the server sent an invalid file_size");
    }
    if (info.size > static_cast<std::uint64_t>(INT64_MAX)) throw Failure("the server sent an invalid file_size");
  }
  return info;
}

json::value parse_json(const Response& r) {
  boost::system::error_code ec;
  auto value = json::parse(r.body, ec);
  if (ec || !value.is_object()) throw Failure("the server answered something that is not JSON");
  return value;
}

void require_file_id(const std::string& id) {
  if (!util::is_uuid(id)) throw Failure("not a file id (ids look like 0192e4c5-7d1a-7c3e-9f10-2b6a4c8d9e01)");
}

FileInfo fetch_info(Http& http, const std::string& id, Backoff& backoff) {
  Request request;
  request.url = http.url("/files/" + id);
  const Response r = perform_with_retries(http, request, backoff);
  if (r.status != 200) throw Failure(describe(r));
  return file_info(parse_json(r));
}

// "2026-12-01T17:22:29.123456Z" -> "2026-12-01 17:22"
std::string short_time(const std::string& rfc3339) {
  if (rfc3339.size() < 16) return rfc3339;
  std::string t = rfc3339.substr(0, 16);
  t[10] = ' ';
  return t;
}

// A file name cut to what a file system takes (255 bytes, with ".part"
// while it downloads), keeping its extension and whole UTF-8 characters.
std::string fit_file_name(const std::string& name) {
  constexpr std::size_t kMaxName = 255 - std::string_view(".part").size();
  if (name.size() <= kMaxName) return name;
  const auto dot = name.find_last_of('.');
  std::string extension = dot != std::string::npos && dot > 0 && name.size() - dot <= 32 ? name.substr(dot) : "";
  std::size_t keep = kMaxName - extension.size();
  while (keep > 0 && (static_cast<unsigned char>(name[keep]) & 0xC0) == 0x80) --keep;  // not inside a character
  return name.substr(0, keep) + extension;
}

// Where `get` writes a file by default: its own name, in this directory,
// without any directory part the name might carry, cut to fit; never "-"
// (stdout) or a name that is not a file's.
std::string default_output(const FileInfo& info) {
  std::string name = info.name.substr(info.name.find_last_of('/') + 1);
  if (name.empty() || name == "." || name == ".." || name == "-") name = info.id;
  return fit_file_name(name);
}

// A download's destination: `<target>.part`, kept between attempts (and
// runs) and renamed over the target once its SHA-256 is checked; or stdout.
class Sink {
 public:
  explicit Sink(const std::string& target) : target_(target) {
    if (target == "-") {
      fd_ = STDOUT_FILENO;
      return;
    }
    part_ = target + ".part";
    // Never through a link someone left at the name: it would point our
    // bytes (and a later truncation) at another file.
    fd_ = ::open(part_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0 && errno == ELOOP) throw Failure(part_ + " is a symbolic link; not writing through it");
    if (fd_ < 0) throw Failure(fmt::format("cannot write {}: {}", part_, std::strerror(errno)));
    struct stat kind {};
    if (::fstat(fd_, &kind) != 0 || !S_ISREG(kind.st_mode)) {
      ::close(fd_);
      fd_ = -1;
      throw Failure(part_ + " is not a regular file");
    }
    struct stat st {};
    ::fstat(fd_, &st);
    // What an earlier run left is hashed again, so the check at the end covers the whole file.
    std::vector<char> buffer(1 << 20);
    for (off_t at = 0; at < st.st_size;) {
      const ssize_t n = ::pread(fd_, buffer.data(), buffer.size(), at);
      if (n <= 0) break;
      hash_.update(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
      at += n;
      size_ += static_cast<std::uint64_t>(n);
    }
    ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET);
  }
  ~Sink() {
    if (fd_ >= 0 && fd_ != STDOUT_FILENO) ::close(fd_);
  }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  std::uint64_t size() const { return size_; }
  bool resumable() const { return !part_.empty(); }

  void append(std::string_view piece) {
    for (std::size_t done = 0; done < piece.size();) {
      const ssize_t n = ::write(fd_, piece.data() + done, piece.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw Failure(fmt::format("cannot write {}: {}", resumable() ? part_ : "stdout", std::strerror(errno)));
      done += static_cast<std::size_t>(n);
    }
    hash_.update(piece);
    size_ += piece.size();
  }

  // Starts over (the server sent the whole file instead of the range asked for).
  void restart() {
    if (!resumable()) throw Failure("the server sent the file from the start; cannot rewind stdout");
    if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) throw Failure("cannot truncate " + part_);
    hash_ = util::ResumableSha256();
    size_ = 0;
  }

  std::string sha256() const { return util::to_hex(hash_.digest()); }

  // Durable, then in place.
  void publish() {
    if (!resumable()) return;
    if (::fsync(fd_) != 0 || ::rename(part_.c_str(), target_.c_str()) != 0) {
      throw Failure(fmt::format("cannot move {} to {}: {}", part_, target_, std::strerror(errno)));
    }
  }
  void discard() {
    if (resumable()) ::unlink(part_.c_str());
  }

 private:
  std::string target_, part_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  util::ResumableSha256 hash_;
};

// Downloads into `sink` until it holds `info.size` bytes, resuming with
// Range after each failure that may pass.
void download(Http& http, const FileInfo& info, Sink& sink, ProgressBoard& board, std::size_t line, Backoff& backoff) {
  if (sink.size() > info.size) sink.restart();
  board.start(line, sink.size());
  while (sink.size() < info.size) {
    const std::uint64_t from = sink.size();
    Request request;
    request.url = http.url("/files/" + info.id + "/content");
    request.follow_redirects = true;  // redirect mode: a presigned URL, reached without the token
    if (from > 0) {
      request.range = std::to_string(from) + "-";
      // Only the same bytes may be resumed: the file's ETag is its SHA-256.
      request.headers.push_back("If-Range: \"" + info.sha256 + "\"");
    }
    request.begin = [&](const Response& r) {
      if (r.status == 200 && from > 0) sink.restart();
      if (r.status == 206 && !r.header("content-range").starts_with(fmt::format("bytes {}-", from))) {
        throw Failure("the server sent a different range than the one asked for");
      }
    };
    request.write = [&](std::string_view piece) {
      if (sink.size() + piece.size() > info.size) throw Failure("the server sent more bytes than the file has");
      sink.append(piece);
      return true;
    };
    request.progress = [&](std::uint64_t, std::uint64_t) { board.set_done(line, sink.size()); };

    auto a = attempt(http, request);
    if (a.response && (a.response->status == 200 || a.response->status == 206)) {
      if (sink.size() == info.size) break;
      a.failure = "the download ended early";
      a.retry_after.reset();
    } else if (a.response && !retryable_status(a.response->status)) {
      throw Failure(a.failure);
    }
    if (sink.size() > from) backoff.progressed();
    board.set_note(line, "retrying: " + a.failure);
    if (!backoff.wait(a.retry_after)) throw backoff.gave_up(a.failure);
    board.set_note(line, "");
  }
}

// A command's one line per failure, and its exit status.
int report(const std::string& command, const std::string& subject, const std::exception& e) {
  fmt::print(stderr, "error: {} {}: {}\n", command, subject, e.what());
  return 1;
}

}  // namespace

// A listing is printed page by page as it arrives (memory stays at one
// page), and ends: a cursor that does not move on, or more pages than any
// real listing has, is the server's mistake.
int list(const Endpoint& endpoint, const TransferOptions& transfer) {
  constexpr int kMaxPages = 100'000;  // 50 million files
  Http http(endpoint);
  Backoff backoff(transfer.retries);
  std::size_t listed = 0;
  const bool terminal = ::isatty(STDOUT_FILENO) != 0;
  const auto shown = [&](const std::string& text) { return terminal ? printable(text) : text; };
  try {
    std::string cursor;
    for (int page = 0;; ++page) {
      if (page == kMaxPages) throw Failure("the listing did not end after " + std::to_string(kMaxPages) + " pages");
      Request request;
      request.url = http.url("/files?limit=500" + (cursor.empty() ? "" : "&cursor=" + util::percent_encode(cursor)));
      const Response r = perform_with_retries(http, request, backoff);
      if (r.status != 200) throw Failure(describe(r));
      const auto body = parse_json(r);
      const auto* files = body.as_object().if_contains("files");
      if (files == nullptr || !files->is_array()) throw Failure("the server's listing has no files");
      for (const auto& value : files->as_array()) {
        const auto f = file_info(value);
        if (listed++ == 0) fmt::print("{:<36}  {:>10}  {:<16}  {:<24}  {}\n", "ID", "SIZE", "UPLOADED", "TYPE", "NAME");
        fmt::print("{:<36}  {:>10}  {:<16}  {:<24}  {}\n", shown(f.id), util::format_size(f.size),
                   shown(short_time(f.uploaded)), shown(f.type), shown(f.name));
      }
      const auto* next = body.as_object().if_contains("next_cursor");
      const std::string next_cursor = next != nullptr && next->is_string() ? std::string(next->as_string()) : "";
      if (next_cursor.empty()) break;
      if (next_cursor == cursor) throw Failure("the server's listing does not move on (the same cursor again)");
      cursor = next_cursor;
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    return report("ls", endpoint.server, e);
  }
  if (listed == 0) fmt::print(stderr, "no files\n");
  return 0;
}

int get(const Endpoint& endpoint, const GetOptions& options) {
  try {
    require_file_id(options.id);
    Http http(endpoint);
    Backoff backoff(options.transfer.retries);
    const FileInfo info = fetch_info(http, options.id, backoff);
    const std::string target = options.output.empty() ? default_output(info) : options.output;
    if (target != "-" && !options.force && std::filesystem::exists(target)) {
      throw Failure(target + " exists already (pass --force to replace it)");
    }
    Sink sink(target);
    const bool live = ProgressBoard::stderr_is_terminal();
    ProgressBoard board(live && target != "-");
    const auto line = board.add(printable(target), info.size);
    try {
      download(http, info, sink, board, line, backoff);
      if (sink.sha256() != info.sha256) {
        sink.discard();
        throw Failure("the downloaded bytes do not match the file's SHA-256; the partial file was removed");
      }
      sink.publish();
    } catch (const std::exception& e) {
      board.fail(line, fmt::format("error: get {}: {}", options.id, e.what()));
      return 1;
    }
    if (target != "-") {
      board.finish(line, fmt::format("{}  {}  ({})", options.id, printable(target), util::format_size(info.size)));
    }
    return 0;
  } catch (const std::exception& e) {
    return report("get", options.id, e);
  }
}

int remove(const Endpoint& endpoint, const std::vector<std::string>& ids, const TransferOptions& transfer) {
  Http http(endpoint);
  int failures = 0;
  for (const auto& id : ids) {
    try {
      require_file_id(id);
      Backoff backoff(transfer.retries);
      Request request;
      request.method = "DELETE";
      request.url = http.url("/files/" + id);
      const Response r = perform_with_retries(http, request, backoff);
      if (r.status != 204 && r.status != 200) throw Failure(describe(r));
      fmt::print("removed {}\n", id);
    } catch (const std::exception& e) {
      failures += report("rm", id, e);
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace s3up::client
