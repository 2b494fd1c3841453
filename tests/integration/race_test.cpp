// The race harness for what a tus upload promises under races: an answered
// offset is durable, and a writer that lost its lease writes nothing more.
// Two instances share one store and one database (local disk + SQLite, and
// radosgw + PostgreSQL); workers run trials side by side, each on an upload
// of its own, with random sizes and timings, and count the trials whose
// outcome breaks a promise.
//
//   takeover: a PATCH stalls holding the lease, which lapses behind its back
//     (so its own clock says it still holds it); the other instance takes
//     the upload over and completes it; then the old request sends more and
//     ends. Broken if the object or its record differ from what the second
//     writer was acknowledged for, the old request is acknowledged, or
//     anything of it is left in the store.
//   same offset: two PATCHes at one Upload-Offset, one per instance, with
//     different bytes. Broken if both are acknowledged, if the offset is not
//     what the acknowledged one made it, or if the finished object does not
//     hold the acknowledged bytes.
//
// S3UP_RACE_TRIALS trials per race and stack (default 100: about a minute),
// S3UP_RACE_WORKERS at once (default 4). The run was 10,000 each.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <sqlite3.h>

#include "../support/test_database.hpp"
#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
using Headers = std::map<std::string, std::string>;
constexpr std::uint64_t MiB = 1024 * 1024;

int from_environment(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::max(1, std::atoi(v)) : fallback;
}

std::string random_text(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

struct Stack {
  std::string name;
};
void PrintTo(const Stack& s, std::ostream* os) { *os << s.name; }

// What the trials saw, and the first few broken promises in words.
struct Tally {
  std::atomic<int> trials{0}, violations{0}, errors{0};
  std::map<std::string, int> outcomes;
  std::vector<std::string> notes;
  std::mutex mutex;

  void saw(const std::string& outcome) {
    std::lock_guard lock(mutex);
    ++outcomes[outcome];
  }
  void broken(const std::string& what) {
    ++violations;
    note("VIOLATION " + what);
  }
  void error(const std::string& what) {
    ++errors;
    note("error " + what);
  }
  void note(const std::string& what) {
    std::lock_guard lock(mutex);
    if (notes.size() < 20) notes.push_back(what);
  }
  // What the servers logged about one upload, for the first few notes.
  void context(const std::string& lines) {
    std::lock_guard lock(mutex);
    if (notes.size() < 20 && !lines.empty()) notes.push_back(lines);
  }
  std::string summary(const std::string& race) {
    std::lock_guard lock(mutex);
    std::string out =
        fmt::format("{}: {} trials, {} violations, {} errors;", race, trials.load(), violations.load(), errors.load());
    for (const auto& [outcome, n] : outcomes) out += fmt::format(" {} {}", outcome, n);
    for (const auto& n : notes) out += "\n  " + n;
    return out;
  }
};

class Race : public ::testing::TestWithParam<Stack> {
 public:
  void SetUp() override {
    Headers env{{"S3UP_DEFAULT_QUOTA", "1GiB"}};
    if (on_s3()) {
      peer_ = std::make_unique<S3Peer>();
      database_ = std::make_unique<testing::TestDatabase>();
      env = peer_->server_env();
      env.emplace("S3UP_DATABASE", database_->url());
    }
    a_ = std::make_unique<ServerProcess>(env);
    if (!on_s3()) {
      env.emplace("S3UP_STORAGE", "file://" + a_->objects_dir().string());
      env.emplace("S3UP_DATABASE", "sqlite://" + (a_->dir() / "s3uploader.db").string());
    }
    b_ = std::make_unique<ServerProcess>(env);
    token_ = a_->create_user_with_token("racer");
  }

  bool on_s3() const { return GetParam().name == "s3_postgres"; }

  Headers tus_headers(Headers extra = {}) const {
    extra.emplace("Tus-Resumable", "1.0.0");
    extra.emplace("Authorization", "Bearer " + token_);
    return extra;
  }
  Response patch(const ServerProcess& to, const std::string& path, std::uint64_t offset, const std::string& body) {
    return request(
        to.port(), "PATCH", path,
        tus_headers({{"Content-Type", "application/offset+octet-stream"}, {"Upload-Offset", std::to_string(offset)}}),
        body);
  }
  std::optional<std::string> create(std::uint64_t length) {
    const auto r =
        request(a_->port(), "POST", "/upload/resumable", tus_headers({{"Upload-Length", std::to_string(length)}}));
    if (r.status != 201) return std::nullopt;
    const auto location = r.header("location");
    return location.substr(location.find("/upload/resumable/"));
  }
  static std::string id_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }
  std::uint64_t offset_of(const std::string& path) {
    const auto r = request(a_->port(), "HEAD", path, tus_headers());
    return r.status == 200 ? std::stoull(r.header("upload-offset")) : UINT64_MAX;
  }

  void lapse_lease(const std::string& id) {
    if (on_s3()) {
      database_->run("UPDATE resumable_uploads SET lease_expires_at = now() - interval '1 hour' WHERE upload_id = '" +
                     id + "'");
      return;
    }
    sqlite3* db = nullptr;
    const auto path = a_->dir() / "s3uploader.db";
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open the database");
    sqlite3_busy_timeout(db, 10'000);
    const std::string sql = "UPDATE resumable_uploads SET lease_expires_at = 1 WHERE upload_id = '" + id + "'";
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
    if (rc != SQLITE_OK) throw std::runtime_error("lapsing the lease failed");
  }

  // What the store holds of upload `id` besides its object: temporary files,
  // multipart uploads, tail objects.
  std::vector<std::string> leftovers_of(const std::string& id) {
    std::vector<std::string> out;
    if (on_s3()) {
      std::lock_guard lock(peer_mutex_);
      for (const auto& u : peer_->multipart_uploads()) {
        if (u.key.find(id) != std::string::npos) out.push_back("multipart upload " + u.key);
      }
      for (const auto& key : peer_->keys()) {
        if (key.find(id) != std::string::npos && key.find(".tail") != std::string::npos) out.push_back(key);
      }
      return out;
    }
    // Other workers' uploads come and go meanwhile: walk again if one vanished under the walk.
    std::vector<std::filesystem::path> files;
    for (int i = 0; i < 10; ++i) {
      try {
        files = a_->stored_files();
        break;
      } catch (const std::filesystem::filesystem_error&) {
      }
    }
    for (const auto& f : files) {
      const auto path = f.string();
      if (path.find(id) != std::string::npos && path.find("/.tmp") != std::string::npos) out.push_back(path);
    }
    return out;
  }

  // The servers' log lines that name upload `id` (its paths, its keys).
  std::string log_lines_of(const std::string& id) const {
    std::string out;
    for (const auto* server : {a_.get(), b_.get()}) {
      std::istringstream log(server->log());
      for (std::string line; std::getline(log, line);) {
        if (line.find(id) != std::string::npos) out += "    " + line + "\n";
      }
    }
    return out;
  }

  // The finished upload holds `content`, and its record says so; then it goes.
  void check_and_delete(const std::string& id, const std::string& content, Tally& tally, const std::string& trial) {
    const Headers auth{{"Authorization", "Bearer " + token_}};
    const auto record = request(b_->port(), "GET", "/files/" + id, auth);
    if (record.status != 200) {
      tally.broken(trial + ": no record of an acknowledged upload (" + std::to_string(record.status) + ")");
      return;
    }
    const auto json = record.json().as_object();
    if (json.at("sha256").as_string() != util::sha256_hex(content) ||
        json.at("file_size").to_number<std::uint64_t>() != content.size()) {
      tally.broken(trial + ": the record is not of the acknowledged bytes");
    }
    const auto bytes = request(a_->port(), "GET", "/files/" + id + "/content", auth);
    if (bytes.status != 200 || bytes.body != content)
      tally.broken(trial + ": the object is not the acknowledged bytes");
    for (const auto& left : leftovers_of(id)) tally.broken(trial + ": left in the store: " + left);
    request(a_->port(), "DELETE", "/files/" + id, auth);
  }

  void takeover_trial(std::mt19937_64& rng, Tally& tally, std::string& id) {
    const bool parts = on_s3() && rng() % 25 == 0;  // now and then a recorded part to move
    const std::uint64_t first = (parts ? 5 * MiB : 0) + 1 + rng() % 100'000;
    const std::uint64_t rest = 2 + rng() % 200'000;
    const std::string content = random_text(rng, first + rest);
    const std::string garbage = random_text(rng, rest);
    const auto path = create(first + rest);
    if (!path) return tally.error("create failed");
    id = id_of(*path);
    const std::string trial = "takeover " + id;
    if (patch(*a_, *path, 0, content.substr(0, first)).status != 204) return tally.error(trial + ": first PATCH");

    Connection stale(a_->port());
    const std::size_t early = rng() % (rest / 2 + 1);
    stale.send(fmt::format("PATCH {} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer {}"
                           "\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {}\r\n"
                           "Content-Length: {}\r\n\r\n",
                           *path, token_, first, rest) +
               garbage.substr(0, early));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
    std::optional<Response> taken;
    for (int i = 0; i < 200 && !taken; ++i) {
      lapse_lease(id);
      auto r = patch(*b_, *path, first, content.substr(first));
      if (r.status == 204) {
        taken = r;
      } else if (r.status == 423) {
        std::this_thread::sleep_for(5ms);
      } else {
        return tally.error(trial + ": the takeover got " + std::to_string(r.status) + " " + r.body);
      }
    }
    if (!taken) return tally.error(trial + ": never taken over");
    // The old request's client wakes up: more bytes, perhaps all, and an end.
    const std::size_t late = rng() % (rest - early + 1);
    stale.send(garbage.substr(early, late));
    if (early + late < rest) stale.finish_sending();
    const auto old = stale.read_response(30s);
    const int old_status = old ? old->status : 0;
    tally.saw("old request " + (old ? std::to_string(old_status) : std::string("closed")));
    if (old_status >= 200 && old_status < 300) tally.broken(trial + ": the old request was acknowledged");
    check_and_delete(id, content, tally, trial);
    ++tally.trials;
  }

  void same_offset_trial(std::mt19937_64& rng, Tally& tally, std::string& id) {
    const std::uint64_t k = rng() % 3 == 0 ? 0 : rng() % 100'000;
    const std::uint64_t n = 1 + rng() % 100'000;
    const std::uint64_t m = 1 + rng() % 50'000;
    const std::string prefix = random_text(rng, k), x = random_text(rng, n), y = random_text(rng, n),
                      rest = random_text(rng, m);
    const auto path = create(k + n + m);
    if (!path) return tally.error("create failed");
    id = id_of(*path);
    const std::string trial = "same offset " + id;
    if (k > 0 && patch(*a_, *path, 0, prefix).status != 204) return tally.error(trial + ": first PATCH");

    // The second request arrives anywhere within the first one's time (a
    // PATCH to radosgw takes longer), so it reads the row while the first
    // one writes, just before or after it gives the lease up.
    const auto jitter = std::chrono::microseconds(rng() % (on_s3() ? 60'000 : 8'000));
    Response ra, rb;
    std::thread other([&] {
      std::this_thread::sleep_for(jitter);
      rb = patch(*b_, *path, k, y);
    });
    ra = patch(*a_, *path, k, x);
    other.join();
    tally.saw(fmt::format("{}+{}", std::min(ra.status, rb.status), std::max(ra.status, rb.status)));
    for (const auto* r : {&ra, &rb}) {
      if (r->status != 204 && r->status != 409 && r->status != 423) {
        return tally.error(trial + ": answered " + std::to_string(r->status) + " " + r->body);
      }
    }
    if (ra.status == 204 && rb.status == 204) return tally.broken(trial + ": both PATCHes at one offset acknowledged");
    const std::string* winner = ra.status == 204 ? &x : rb.status == 204 ? &y : nullptr;
    const std::uint64_t expected = k + (winner ? n : 0);
    const std::uint64_t offset = offset_of(*path);
    if (offset != expected) {
      return tally.broken(trial + fmt::format(": offset {} after the race, acknowledged {}", offset, expected));
    }
    if (!winner) {
      if (patch(*a_, *path, k, x).status != 204) return tally.error(trial + ": the retry failed");
      winner = &x;
    }
    if (patch(*b_, *path, k + n, rest).status != 204) return tally.error(trial + ": the last PATCH failed");
    check_and_delete(id, prefix + *winner + rest, tally, trial);
    ++tally.trials;
  }

  void run_trials(const std::string& race, void (Race::*trial)(std::mt19937_64&, Tally&, std::string&)) {
    const int trials = from_environment("S3UP_RACE_TRIALS", 100);
    const int workers = from_environment("S3UP_RACE_WORKERS", 4);
    Tally tally;
    std::atomic<int> next{0};
    std::vector<std::thread> threads;
    const auto seed = std::random_device{}();
    for (int w = 0; w < workers; ++w) {
      threads.emplace_back([&, w] {
        std::mt19937_64 rng(seed + static_cast<unsigned>(w));
        while (next++ < trials) {
          const int bad_before = tally.violations + tally.errors;
          std::string id;
          try {
            (this->*trial)(rng, tally, id);
          } catch (const std::exception& e) {
            tally.error(e.what());
          }
          if (tally.violations + tally.errors > bad_before && !id.empty()) tally.context(log_lines_of(id));
        }
      });
    }
    for (auto& t : threads) t.join();
    const auto summary = tally.summary(GetParam().name + " " + race + " (seed " + std::to_string(seed) + ")");
    std::printf("%s\n", summary.c_str());
    RecordProperty("summary", summary);
    EXPECT_EQ(tally.violations.load(), 0) << summary;
    EXPECT_EQ(tally.errors.load(), 0) << summary;
    EXPECT_EQ(tally.trials.load(), trials) << summary;
  }

  std::unique_ptr<S3Peer> peer_;
  std::mutex peer_mutex_;
  std::unique_ptr<testing::TestDatabase> database_;
  std::unique_ptr<ServerProcess> a_, b_;
  std::string token_;
};

TEST_P(Race, AWriterTakenOverWritesNothingMore) { run_trials("takeover", &Race::takeover_trial); }

TEST_P(Race, TwoPatchesAtOneOffsetAreNeverBothAcknowledged) { run_trials("same offset", &Race::same_offset_trial); }

INSTANTIATE_TEST_SUITE_P(Stacks, Race, ::testing::Values(Stack{"local_sqlite"}, Stack{"s3_postgres"}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace s3up::test
