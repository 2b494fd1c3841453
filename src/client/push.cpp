// `s3uploader push`: files up through the service's tus endpoint.
//
// Each file is created (POST /upload/resumable), then sent in chunks of
// --chunk-size, one PATCH each with its checksum in Upload-Checksum (CRC-32
// when the server offers it): the server keeps a chunk whole or not at all,
// so every byte range it holds was checked on arrival. While one chunk is on
// the wire the next one is hashed.
// The upload's URL is saved in the cache directory under a key made of the
// server, the file's absolute path, its size and its mtime; a later push of
// the same unchanged file asks the server for its offset (HEAD) and goes on
// from there. Failures that may pass (the network, 5xx, 423, 429) are retried
// with backoff, each retry starting from the offset the server reports.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "client/client.hpp"
#include "client/progress.hpp"
#include "client/state.hpp"
#include "client/transport.hpp"
#include "util/crypto.hpp"
#include "util/text.hpp"
#include "util/units.hpp"

namespace s3up::client {

namespace {

// The origin of the public_url the server says it has (GET /api/config),
// "" if it has none.
std::string public_origin(Http& http, Backoff& backoff) {
  Request request;
  request.url = http.url("/api/config");
  const Response r = perform_with_retries(http, request, backoff);
  if (r.status != 200) return "";
  boost::system::error_code ec;
  const auto value = boost::json::parse(r.body, ec);
  const auto* o = value.if_object();
  const auto* url = o != nullptr ? o->if_contains("public_url") : nullptr;
  return url != nullptr && url->is_string() ? origin_of(url->as_string()) : "";
}

constexpr std::string_view kTusVersion = "Tus-Resumable: 1.0.0";
constexpr std::string_view kUploadsPath = "/upload/resumable";
constexpr std::uint64_t kLargestBodyInCreation = 64ull << 20;

struct FileToPush {
  std::string argument;  // as the user typed it, for messages
  std::filesystem::path path;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::size_t line = 0;  // on the progress board
};

// An open file, read by offset from several threads.
class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw Failure(std::strerror(errno));
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~InputFile() { ::close(fd_); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  struct stat status() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw Failure(std::strerror(errno));
    return st;
  }

  // Up to `size` bytes at `offset`; fewer only at the end of the file.
  std::size_t read(char* out, std::size_t size, std::uint64_t offset) const {
    std::size_t got = 0;
    while (got < size) {
      const ssize_t n = ::pread(fd_, out + got, size - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Failure(std::string("reading the file failed: ") + std::strerror(errno));
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    return got;
  }

  // "<algorithm> <base64 digest>" of [offset, offset + length), for Upload-Checksum.
  std::string checksum(const std::string& algorithm, std::uint64_t offset, std::uint64_t length) const {
    const auto hash = util::NamedHash::make(algorithm);
    std::vector<char> buffer(1 << 20);
    while (length > 0) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(length, buffer.size()));
      const std::size_t got = read(buffer.data(), want, offset);
      if (got < want) throw Failure("the file got shorter while it was being sent");
      hash->update(std::string_view(buffer.data(), got));
      offset += got;
      length -= got;
    }
    const std::string digest = hash->finish();
    return algorithm + " " + util::base64(digest);
  }

 private:
  int fd_;
};

class Pusher {
 public:
  Pusher(const PushOptions& options, ProgressBoard& board)
      : options_(options), board_(board), state_(cache_dir() / "uploads") {}

  // The new file's id; throws Failure.
  std::string push(Http& http, const FileToPush& file) {
    InputFile input(file.path);
    const auto st = input.status();
    if (static_cast<std::uint64_t>(st.st_size) != file.size || mtime_ns(st) != file.mtime_ns) {
      throw Failure("the file changed since the push started");
    }
    const std::string key = UploadState::key(http.server(), file.path, file.size, file.mtime_ns);
    Backoff backoff(options_.transfer.retries);

    std::string url;
    std::uint64_t offset = 0;
    if (auto saved = state_.load(key)) {
      if (auto resumed = server_offset(http, *saved, file.size, backoff)) {
        url = *saved;
        offset = *resumed;
      } else {
        state_.remove(key);
      }
    }
    const std::string algorithm = checksum_algorithm(http, backoff);
    board_.start(file.line, offset);
    if (url.empty()) {
      auto created = create(http, input, file, algorithm, backoff);
      if (created.complete) return id_of(created.url);
      url = created.url;
      offset = created.offset;
      state_.save(key, url);
      board_.set_done(file.line, offset);
    }
    send_chunks(http, input, file, algorithm, url, offset, backoff);
    state_.remove(key);
    return id_of(url);
  }

  static std::int64_t mtime_ns(const struct stat& st) {
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  }

 private:
  struct Created {
    std::string url;
    std::uint64_t offset = 0;
    bool complete = false;
  };

  // The Upload-Checksum algorithm, "" for none. "auto" asks the server
  // once (OPTIONS) which it takes and picks the cheapest.
  std::string checksum_algorithm(Http& http, Backoff& backoff) {
    if (options_.checksum == "none") return "";
    if (options_.checksum != "auto") return options_.checksum;
    std::lock_guard lock(algorithm_mutex_);
    if (!chosen_algorithm_) {
      Request options;
      options.method = "OPTIONS";
      options.url = http.url(kUploadsPath);
      const Response r = perform_with_retries(http, options, backoff);
      if (r.status != 200 && r.status != 204) throw Failure(describe(r));
      const std::string offered = "," + r.header("tus-checksum-algorithm") + ",";
      chosen_algorithm_ = "";
      for (const char* preferred : {"crc32", "sha256", "sha1", "md5"}) {
        if (offered.find(std::string(",") + preferred + ",") != std::string::npos) {
          chosen_algorithm_ = preferred;
          break;
        }
      }
    }
    return *chosen_algorithm_;
  }

  static std::string id_of(const std::string& url) { return url.substr(url.find_last_of('/') + 1); }

  // The offset the server holds for a saved upload, or nullopt if it is
  // gone (expired, deleted, another user's) or is not this file's.
  std::optional<std::uint64_t> server_offset(Http& http, const std::string& url, std::uint64_t size, Backoff& backoff) {
    Request head;
    head.method = "HEAD";
    head.url = url;
    head.headers = {std::string(kTusVersion)};
    const Response r = perform_with_retries(http, head, backoff);
    if (r.status == 404 || r.status == 410 || r.status == 403) return std::nullopt;
    if (r.status != 200) throw Failure(describe(r));
    const auto length = util::parse_integer<std::uint64_t>(r.header("upload-length"));
    const auto offset = util::parse_integer<std::uint64_t>(r.header("upload-offset"));
    if (!length || *length != size || !offset || *offset > size) return std::nullopt;
    return offset;
  }

  // POST /upload/resumable. A file no larger than a chunk goes in the same
  // request (creation-with-upload), which saves a round trip per small file.
  Created create(Http& http, const InputFile& input, const FileToPush& file, const std::string& algorithm,
                 Backoff& backoff) {
    // (Larger files are created first: until the answer brings the URL there is nothing to resume.)
    const bool with_body = file.size <= std::min(options_.chunk_size, kLargestBodyInCreation);
    Request post;
    post.method = "POST";
    post.url = http.url(kUploadsPath);
    const std::string name = file.path.filename().string();
    post.headers = {std::string(kTusVersion), "Upload-Length: " + std::to_string(file.size),
                    "Upload-Metadata: filename " + util::base64(name)};
    if (with_body && file.size > 0) {
      post.headers.push_back("Content-Type: application/offset+octet-stream");
      if (!algorithm.empty()) post.headers.push_back("Upload-Checksum: " + input.checksum(algorithm, 0, file.size));
      post.body_length = file.size;
      post.read = [&](char* out, std::size_t max, std::uint64_t at) {
        return input.read(out, static_cast<std::size_t>(std::min<std::uint64_t>(max, file.size - at)), at);
      };
      post.progress = [&](std::uint64_t sent, std::uint64_t) { board_.set_done(file.line, sent); };
    }
    const Response r = perform_with_retries(http, post, backoff);
    if (r.status != 201) throw Failure(describe(r));
    const std::string location = r.header("location");
    if (location.empty()) throw Failure("the server created the upload but sent no Location");
    Created created{http.resolve(location), 0, false};
    // The token goes with every PATCH: only to the server itself, or to the
    // public URL it says it has (behind a proxy).
    if (origin_of(created.url) != origin_of(http.server()) && origin_of(created.url) != public_origin(http, backoff)) {
      throw Failure("the server's upload URL " + printable(created.url) +
                    " is on another host than the server and its public_url; not sending the token there");
    }
    // The token goes with every PATCH: never in clear text when the server was reached over TLS.
    if (http.server().starts_with("https://") && !created.url.starts_with("https://")) {
      throw Failure("the server's upload URL " + created.url +
                    " is not https:// although the server is (its public_url setting may be missing)");
    }
    // A chunk that failed its checksum leaves the offset at 0, to be sent again by PATCH.
    created.offset = util::parse_integer<std::uint64_t>(r.header("upload-offset")).value_or(0);
    created.complete = created.offset == file.size;
    return created;
  }

  void send_chunks(Http& http, const InputFile& input, const FileToPush& file, const std::string& algorithm,
                   const std::string& url, std::uint64_t offset, Backoff& backoff) {
    const std::uint64_t chunk = options_.chunk_size;
    auto checksum_of = [&](std::uint64_t from) {
      return std::async(std::launch::async, [&input, &algorithm, from, len = std::min(chunk, file.size - from)] {
        return input.checksum(algorithm, from, len);
      });
    };
    std::string checksum;  // of the chunk at checksum_from
    std::uint64_t checksum_from = std::numeric_limits<std::uint64_t>::max();
    std::future<std::string> next_checksum;  // of the chunk at next_from
    std::uint64_t next_from = 0;
    while (offset < file.size) {
      const std::uint64_t length = std::min(chunk, file.size - offset);
      if (!algorithm.empty() && checksum_from != offset) {
        checksum = next_checksum.valid() && next_from == offset ? next_checksum.get()
                                                                : input.checksum(algorithm, offset, length);
        checksum_from = offset;
      }
      // The next chunk is hashed while this one is on the wire.
      if (!algorithm.empty() && offset + length < file.size &&
          !(next_checksum.valid() && next_from == offset + length)) {
        next_from = offset + length;
        next_checksum = checksum_of(next_from);
      }

      const std::uint64_t end = offset + length;
      Request patch;
      patch.method = "PATCH";
      patch.url = url;
      patch.headers = {std::string(kTusVersion), "Content-Type: application/offset+octet-stream",
                       "Upload-Offset: " + std::to_string(offset)};
      if (!algorithm.empty()) patch.headers.push_back("Upload-Checksum: " + checksum);
      patch.body_length = length;
      patch.read = [&, start = offset](char* out, std::size_t max, std::uint64_t at) {
        return input.read(out, static_cast<std::size_t>(std::min<std::uint64_t>(max, length - at)), start + at);
      };
      patch.progress = [&, start = offset](std::uint64_t sent, std::uint64_t) {
        board_.set_done(file.line, start + sent);
      };

      const auto a = attempt(http, patch);
      const auto& r = a.response;
      if (r && r->status == 204) {
        const auto now_at = util::parse_integer<std::uint64_t>(r->header("upload-offset"));
        if (!now_at || *now_at != end) throw Failure("the server answered an unexpected Upload-Offset");
        offset = end;
        board_.set_done(file.line, offset);
        board_.set_note(file.line, "");
        backoff.progressed();
        continue;
      }
      // The chunk did not land whole. 409: the server holds another offset;
      // 460: the bytes changed on the way (or in the file) and are hashed
      // again; the rest may pass with time.
      if (r && r->status != 409 && r->status != 460 && !retryable_status(r->status)) throw Failure(a.failure);
      board_.set_note(file.line, "retrying: " + a.failure);
      if (!backoff.wait(a.retry_after)) throw backoff.gave_up(a.failure);
      board_.set_note(file.line, "");
      // Refused before a byte was taken (locked, rate limited, checksum
      // mismatch): the offset is where it was. Otherwise some of the chunk
      // may have landed, and the server says how much.
      const bool offset_unchanged = r && (r->status == 423 || r->status == 429 || r->status == 460);
      if (!offset_unchanged) {
        const auto resumed = server_offset(http, url, file.size, backoff);
        if (!resumed) throw Failure("the server no longer has the upload (it expired or was deleted)");
        offset = *resumed;
      }
      if (r && r->status == 460) checksum_from = std::numeric_limits<std::uint64_t>::max();  // read and hash it again
      board_.set_done(file.line, offset);
    }
  }

  const PushOptions& options_;
  ProgressBoard& board_;
  UploadState state_;
  std::mutex algorithm_mutex_;
  std::optional<std::string> chosen_algorithm_;
};

std::string rate_text(std::uint64_t bytes, double seconds) {
  if (seconds < 0.2) return "";  // too short to say anything
  return fmt::format(", {}/s", util::format_size(static_cast<std::uint64_t>(static_cast<double>(bytes) / seconds)));
}

}  // namespace

int push(const Endpoint& endpoint, const PushOptions& options) {
  // The server forgets unfinished uploads after a day (resumable_expiry); a
  // week-old entry here points at nothing.
  UploadState(cache_dir() / "uploads").prune(std::chrono::hours(24 * 7));
  ProgressBoard board(ProgressBoard::stderr_is_terminal());
  std::vector<FileToPush> files;
  int failures = 0;
  // Files that cannot be opened fail at once, each with its own line; the rest go.
  std::set<std::filesystem::path> seen;  // a file named twice is pushed once
  for (const auto& argument : options.files) {
    std::error_code ec;
    const auto path = std::filesystem::absolute(argument, ec).lexically_normal();
    if (!ec && !seen.insert(path).second) continue;
    struct stat st {};
    if (ec || ::stat(path.c_str(), &st) != 0) {
      board.fail(board.add(argument, 0), fmt::format("error: push {}: {}", argument, std::strerror(errno)));
      ++failures;
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      board.fail(board.add(argument, 0), fmt::format("error: push {}: not a regular file", argument));
      ++failures;
      continue;
    }
    FileToPush file{argument, path, static_cast<std::uint64_t>(st.st_size), Pusher::mtime_ns(st), 0};
    file.line = board.add(argument, file.size);
    files.push_back(std::move(file));
  }

  Pusher pusher(options, board);
  std::atomic<std::size_t> next{0};
  std::atomic<int> failed{0};
  const unsigned workers = std::max(1u, std::min<unsigned>(options.jobs, static_cast<unsigned>(files.size())));
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < workers && !files.empty(); ++w) {
    threads.emplace_back([&] {
      Http http(endpoint, options.transfer.max_send_rate);
      for (std::size_t i = next++; i < files.size(); i = next++) {
        const auto& file = files[i];
        try {
          const std::string id = pusher.push(http, file);
          const double seconds = board.seconds(file.line);
          board.finish(file.line, fmt::format("{}  {}  ({}{})", id, file.argument, util::format_size(file.size),
                                              rate_text(board.moved(file.line), seconds)));
        } catch (const std::exception& e) {
          board.fail(file.line, fmt::format("error: push {}: {}", file.argument, e.what()));
          ++failed;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return failures + failed.load() == 0 ? 0 : 1;
}

}  // namespace s3up::client
