// What an adversary or a clumsy client does, and what the service must still
// guarantee: slow clients cannot hold memory or connections forever, memory
// stays within the one budget, a crash mid-delete never leaves a record
// without its bytes, names and types cannot disguise a file, and nothing
// secret is printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "../support/test_database.hpp"
#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
using Env = std::map<std::string, std::string>;
constexpr std::uint64_t MiB = 1024 * 1024;

std::string raw_put_head(const std::string& token, const std::string& name, std::uint64_t length) {
  return "PUT /upload/" + name + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
         "\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
}

void expect_error(const std::optional<Response>& r, int status, const std::string& code) {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->json().at("error").at("code").as_string(), code) << r->body;
}

// ---- slow clients ----------------------------------------------------------

// Sends a byte every `interval` (for 16 s at most) until the server answers.
std::optional<Response> drip_until_answered(Connection& c, std::chrono::milliseconds interval) {
  std::optional<Response> r;
  for (auto spent = 0ms; !r && spent < 16s; spent += interval) {
    if (!c.send("x")) break;
    r = c.read_response(interval);
  }
  return r ? r : c.read_response(5s);
}

TEST(SlowClients, ADripFasterThanTheIdleTimeoutIsCutOffByTheMinimumRate) {
  // 3 s idle timeout; the drip sends a byte every 400 ms, which the idle
  // timer alone would allow forever.
  ServerProcess s(
      Env{{"S3UP_IDLE_TIMEOUT", "3s"}, {"S3UP_MIN_BODY_RATE", "1KiB"}, {"S3UP_MIN_BODY_RATE_WINDOW", "2s"}});
  const auto token = s.create_user_with_token("drip");
  Connection c(s.port());
  c.send(raw_put_head(token, "drip.bin", 1000));
  const auto started = std::chrono::steady_clock::now();
  const auto r = drip_until_answered(c, 400ms);
  expect_error(r, 408, "request_timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 8s);
  EXPECT_TRUE(c.closed_by_peer(5s));
  auto db = s.database();
  EXPECT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::failed) == 1; }, 5s));
  EXPECT_EQ(db->count_uploads(db::UploadStatus::pending), 0);
  EXPECT_TRUE(s.stored_files().empty());
}

TEST(SlowClients, AFastStartDoesNotBuyALongDrip) {
  ServerProcess s(
      Env{{"S3UP_IDLE_TIMEOUT", "10s"}, {"S3UP_MIN_BODY_RATE", "1KiB"}, {"S3UP_MIN_BODY_RATE_WINDOW", "2s"}});
  const auto token = s.create_user_with_token("burst");
  Connection c(s.port());
  c.send(raw_put_head(token, "burst.bin", 8 * MiB) + ContentStream::make(2 * MiB, 3));
  const auto started = std::chrono::steady_clock::now();
  const auto r = drip_until_answered(c, 500ms);
  expect_error(r, 408, "request_timeout");
  // Credit lasts one window at most: cut off within ~2 s of the pause, not 2 MiB / 1 KiB/s later.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 6s);
  EXPECT_TRUE(eventually([&] { return s.stored_files().empty(); }, 5s));
}

TEST(SlowClients, ASlowButSteadyUploadAboveTheRateSucceeds) {
  ServerProcess s(Env{{"S3UP_MIN_BODY_RATE", "1KiB"}, {"S3UP_MIN_BODY_RATE_WINDOW", "1s"}});
  const auto token = s.create_user_with_token("steady");
  const std::string content = ContentStream::make(24 * 1024, 5);
  Connection c(s.port());
  c.send(raw_put_head(token, "steady.bin", content.size()));
  for (std::size_t at = 0; at < content.size(); at += 2048) {  // 2 KiB every 250 ms: 8 KiB/s
    c.send(content.substr(at, 2048));
    std::this_thread::sleep_for(250ms);
  }
  const auto r = c.read_response(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(r->json().at("sha256").as_string(), util::sha256_hex(content));
}

// The attack that found it: 150 uploads each declaring 8 MiB, sending 2 MiB
// and pausing. Every byte they hold comes out of buffer_budget, so the
// server's memory stays under the budget plus its own fixed costs; when the
// clients go on, every upload completes (waiting for budget never deadlocks).
TEST(SlowClients, StalledUploadsToLocalDiskStayWithinTheBufferBudget) {
  constexpr std::uint64_t kBudget = 32 * MiB;
  ServerProcess s(Env{{"S3UP_BUFFER_BUDGET", "32MiB"}, {"S3UP_MIN_BODY_RATE", "0"}});
  const auto token = s.create_user_with_token("hoarder");
  const auto before = s.rss_bytes();
  constexpr int kUploads = 150;
  constexpr std::uint64_t kSize = 8 * MiB, kFirst = 2 * MiB;
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < kUploads; ++i) {
    conns.push_back(std::make_unique<Connection>(s.port()));
    conns.back()->send(raw_put_head(token, "stall" + std::to_string(i), kSize));
  }
  // The first 2 MiB of each, each from its own thread (a send blocks while
  // the server applies backpressure).
  std::vector<std::thread> senders;
  for (int i = 0; i < kUploads; ++i) {
    senders.emplace_back([&, i] {
      ContentStream content(kSize, 100 + i);
      conns[i]->send(content.next(kFirst));
    });
  }
  // Backpressure may keep some sends from finishing: give them time, then measure.
  std::this_thread::sleep_for(5s);
  const auto stalled = s.peak_rss_bytes();
  std::cout << fmt::format("RSS: {:.1f} MiB idle, peak {:.1f} MiB with {} stalled uploads (budget {} MiB)\n",
                           before / double(MiB), stalled / double(MiB), kUploads, kBudget / MiB);
  if (kMemoryIsMeasurable) EXPECT_LT(stalled, kBudget + 64 * MiB);
  for (auto& t : senders) t.join();

  // Now every client sends the rest, each on its own (as 150 browsers would:
  // one client feeding many uploads in turn could wait on an upload that
  // waits for budget held by the ones it is not feeding). All complete.
  std::vector<std::thread> finishers;
  std::atomic<int> created{0};
  for (int i = 0; i < kUploads; ++i) {
    finishers.emplace_back([&, i] {
      ContentStream content(kSize, 100 + i);
      content.next(kFirst);
      for (auto piece = content.next(256 * 1024); !piece.empty(); piece = content.next(256 * 1024)) {
        if (!conns[i]->send(piece)) return;
      }
    });
  }
  for (auto& t : finishers) t.join();
  for (int i = 0; i < kUploads; ++i) {
    const auto r = conns[i]->read_response(60s);
    ASSERT_TRUE(r) << "upload " << i << " got no answer";
    EXPECT_EQ(r->status, 201) << r->body;
    if (r->status == 201) {
      EXPECT_EQ(r->json().at("sha256").as_string(), ContentStream::sha256_of(kSize, 100 + i));
      ++created;
    }
  }
  EXPECT_EQ(created, kUploads);
  if (kMemoryIsMeasurable) EXPECT_LT(s.peak_rss_bytes(), kBudget + 64 * MiB);
}

// Clients that wait for 100 Continue send no body with their headers, so each
// connection takes a receive buffer before its upload has a block. With more
// of them than the budget has buffers, receive buffers must not take it all:
// every upload still completes.
TEST(SlowClients, UploadsWaitingForTheirFirstBlockDoNotDeadlockTheBudget) {
  ServerProcess s(Env{{"S3UP_BUFFER_BUDGET", "2MiB"}});
  const auto token = s.create_user_with_token("crowd");
  constexpr int kUploads = 40;
  constexpr std::uint64_t kSize = 3 * MiB;
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < kUploads; ++i) {
    conns.push_back(std::make_unique<Connection>(s.port()));
    conns.back()->send("PUT /upload/crowd" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                       token + "\r\nContent-Length: " + std::to_string(kSize) + "\r\nExpect: 100-continue\r\n\r\n");
  }
  for (auto& c : conns) ASSERT_TRUE(c->read_100_continue(10s));
  std::vector<std::thread> senders;
  for (int t = 0; t < 8; ++t) {
    senders.emplace_back([&, t] {
      for (int i = t; i < kUploads; i += 8) {
        ContentStream content(kSize, 200 + i);
        for (auto piece = content.next(64 * 1024); !piece.empty(); piece = content.next(64 * 1024)) {
          conns[i]->send(piece);
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  for (int i = 0; i < kUploads; ++i) {
    const auto r = conns[i]->read_response(60s);
    ASSERT_TRUE(r) << "upload " << i << " never finished";
    EXPECT_EQ(r->status, 201) << r->body;
  }
}

// ---- crash-safe deletion ---------------------------------------------------

// `files` uploads of 2 KB, 8 clients deleting them, kill -9 30-60 ms in; the
// next server (same database, same store) must list and serve only files
// whose bytes exist, and the store must hold exactly those.
void kill_while_deleting(const Env& env, int files, const std::function<bool(const std::string& key)>& object_exists) {
  std::string token;
  std::vector<std::string> ids;
  {
    ServerProcess doomed(env);
    token = doomed.create_user_with_token("deleter");
    std::vector<std::thread> uploaders;
    std::mutex mutex;
    for (int t = 0; t < 8; ++t) {
      uploaders.emplace_back([&, t] {
        for (int i = t; i < files; i += 8) {
          const auto r = request(doomed.port(), "PUT", "/upload/f" + std::to_string(i),
                                 {{"Authorization", "Bearer " + token}}, ContentStream::make(2000, i));
          if (r.status != 201) continue;
          std::lock_guard lock(mutex);
          ids.emplace_back(r.json().at("file_id").as_string());
        }
      });
    }
    for (auto& t : uploaders) t.join();
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(files));
    std::vector<std::thread> deleters;
    for (int t = 0; t < 8; ++t) {
      deleters.emplace_back([&, t] {
        for (std::size_t i = t; i < ids.size(); i += 8) {
          try {
            request(doomed.port(), "DELETE", "/files/" + ids[i], {{"Authorization", "Bearer " + token}});
          } catch (const std::exception&) {
            return;  // the server is gone
          }
        }
      });
    }
    std::mt19937 rng(std::random_device{}());
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 31));
    doomed.signal(SIGKILL);
    doomed.wait(10s);
    for (auto& t : deleters) t.join();
  }
  // Whatever the crash interrupted, the next server's janitor finishes at start-up.
  ServerProcess next(env);
  auto db = next.database();
  EXPECT_TRUE(eventually([&] { return db->deleting_uploads(10).empty(); }, 10s));
  const auto complete = db->count_uploads(db::UploadStatus::complete);
  EXPECT_LT(complete, files) << "the kill came before any delete";
  // Every file still listed downloads whole.
  std::int64_t listed = 0;
  std::string cursor;
  do {
    const auto page = request(next.port(), "GET", "/files?limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor),
                              {{"Authorization", "Bearer " + token}})
                          .json();
    for (const auto& f : page.at("files").as_array()) {
      ++listed;
      const std::string id(f.at("file_id").as_string());
      const auto r = request(next.port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token}});
      ASSERT_EQ(r.status, 200) << id;
      EXPECT_EQ(r.body.size(), 2000u) << id;
    }
    cursor = page.at("next_cursor").is_null() ? "" : std::string(page.at("next_cursor").as_string());
  } while (!cursor.empty());
  EXPECT_EQ(listed, complete);
  // An object exists exactly where a complete row does, and usage is theirs.
  for (const auto& id : ids) {
    const auto row = db->get_upload(id);
    const bool kept = row && row->status == db::UploadStatus::complete;
    EXPECT_FALSE(row && !kept) << id << " is " << db::to_string(row->status);
    const std::string key = "u/" + std::to_string(db->find_user("deleter")->id) + "/" + id;
    EXPECT_EQ(object_exists(key), kept) << id;
  }
  EXPECT_EQ(db->find_user("deleter")->used_bytes, complete * 2000);
}

// The attack that found it: 2,000 downloads through one download link (no
// token needed) that read nothing each held a piece of memory no budget
// counted. Now a download reads into download_budget and waits for it like
// an upload waits for buffer_budget: stalled downloads hold the budget and
// no more, a new one waits, and once they go it completes.
TEST(SlowReaders, StalledDownloadsStayWithinTheDownloadBudget) {
  constexpr std::uint64_t kBudget = 16 * MiB;
  ServerProcess s(Env{{"S3UP_DOWNLOAD_BUDGET", "16MiB"}, {"S3UP_MIN_BODY_RATE", "0"}});
  const auto token = s.create_user_with_token("reader");
  const std::string content = ContentStream::make(32 * MiB, 71);
  const auto put = request(s.port(), "PUT", "/upload/big.bin", {{"Authorization", "Bearer " + token}}, content);
  ASSERT_EQ(put.status, 201) << put.body;
  const std::string id(put.json().at("file_id").as_string());
  const auto made = request(s.port(), "POST", "/files/" + id + "/link", {{"Authorization", "Bearer " + token}});
  ASSERT_EQ(made.status, 200);
  const std::string url(made.json().at("url").as_string());
  const std::string target = url.substr(url.find("/files/"));
  const auto before = s.rss_bytes();
  constexpr int kDownloads = 300;  // 300 x 256 KiB pieces would be 75 MiB
  std::vector<std::unique_ptr<Connection>> stalled;
  for (int i = 0; i < kDownloads; ++i) {
    stalled.push_back(std::make_unique<Connection>(s.port(), 4096));
    stalled.back()->send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  std::this_thread::sleep_for(3s);
  const auto peak = s.peak_rss_bytes();
  std::cout << fmt::format("RSS: {:.1f} MiB idle, peak {:.1f} MiB with {} stalled downloads (budget {} MiB)\n",
                           before / double(MiB), peak / double(MiB), kDownloads, kBudget / MiB);
  if (kMemoryIsMeasurable) EXPECT_LT(peak, before + kBudget + 32 * MiB);
  // A download now waits for the budget, and gets it once the others go.
  std::optional<Response> later;
  std::thread reader([&] {
    later = request(s.port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token}});
  });
  std::this_thread::sleep_for(500ms);
  stalled.clear();
  reader.join();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->status, 200);
  EXPECT_TRUE(later->body == content);
}

// A client that takes the body slower than min_body_rate is cut off as a
// slow uploader is, with the connection's memory freed; one that keeps up
// gets it all.
TEST(SlowReaders, AReaderUnderTheMinimumRateIsCutOff) {
  ServerProcess s(Env{{"S3UP_MIN_BODY_RATE", "256KiB"}, {"S3UP_MIN_BODY_RATE_WINDOW", "2s"}});
  const auto token = s.create_user_with_token("reader");
  const std::string content = ContentStream::make(48 * MiB, 72);
  const auto put = request(s.port(), "PUT", "/upload/big.bin", {{"Authorization", "Bearer " + token}}, content);
  ASSERT_EQ(put.status, 201) << put.body;
  const std::string id(put.json().at("file_id").as_string());
  Connection slow(s.port(), 4096);
  slow.send("GET /files/" + id + "/content HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\n\r\n");
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return s.log().find("read too slowly") != std::string::npos; }, 20s))
      << "a reader taking nothing was never cut off";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);
  // What the kernel had queued arrives, then the end: the body stops short.
  EXPECT_TRUE(slow.closed_by_peer(10s));
  const auto fast = request(s.port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token}});
  EXPECT_EQ(fast.status, 200);
  EXPECT_TRUE(fast.body == content);
}

TEST(Deletion, KilledWhileDeletingOnDiskAndSqlite) {
  const auto dir = std::filesystem::temp_directory_path() / ("s3up-delete-" + util::uuid_v7());
  std::filesystem::create_directories(dir);
  const Env env{{"S3UP_STORAGE", "file://" + (dir / "objects").string()},
                {"S3UP_DATABASE", "sqlite://" + (dir / "s3uploader.db").string()}};
  kill_while_deleting(env, 1000,
                      [&](const std::string& key) { return std::filesystem::exists(dir / "objects" / key); });
  std::filesystem::remove_all(dir);
}

TEST(Deletion, KilledWhileDeletingOnS3AndPostgres) {
  S3Peer peer;
  testing::TestDatabase database;
  auto env = peer.server_env();
  env["S3UP_DATABASE"] = database.url();
  kill_while_deleting(env, 400, [&](const std::string& key) { return peer.object_size(key).has_value(); });
}

TEST(Deletion, ADownloadWhoseObjectIsMissingIsAnErrorNotAShortBody) {
  ServerProcess s;
  const auto token = s.create_user_with_token("lost");
  const auto r = request(s.port(), "PUT", "/upload/lost.bin", {{"Authorization", "Bearer " + token}},
                         ContentStream::make(2000, 9));
  ASSERT_EQ(r.status, 201);
  const std::string id(r.json().at("file_id").as_string());
  for (const auto& f : s.stored_files()) std::filesystem::remove(f);  // the bytes vanish behind the record
  Connection c(s.port());
  c.send("GET /files/" + id + "/content HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\n\r\n");
  const auto got = c.read_response(5s);
  expect_error(got, 500, "internal");
  EXPECT_NE(s.log().find("the store has no object"), std::string::npos);
}

TEST(Deletion, ADeletedFileIsGoneAndItsSpaceFreed) {
  ServerProcess s(Env{{"S3UP_DEFAULT_QUOTA", "10KiB"}});
  const auto token = s.create_user_with_token("tidy");
  const auto up =
      request(s.port(), "PUT", "/upload/a.bin", {{"Authorization", "Bearer " + token}}, ContentStream::make(4000, 1));
  ASSERT_EQ(up.status, 201);
  const std::string id(up.json().at("file_id").as_string());
  EXPECT_EQ(request(s.port(), "DELETE", "/files/" + id, {{"Authorization", "Bearer " + token}}).status, 204);
  EXPECT_EQ(request(s.port(), "DELETE", "/files/" + id, {{"Authorization", "Bearer " + token}}).status, 404);
  EXPECT_EQ(request(s.port(), "GET", "/files/" + id, {{"Authorization", "Bearer " + token}}).status, 404);
  auto db = s.database();
  EXPECT_EQ(db->find_user("tidy")->used_bytes, 0);
  EXPECT_FALSE(db->get_upload(id));
  EXPECT_TRUE(s.stored_files().empty());
}

// ---- names, types, quotas, ranges --------------------------------------------

TEST(Hostile, NamesWithC1OrBidiControlsAreRefused) {
  ServerProcess s;
  const auto token = s.create_user_with_token("namer");
  const std::vector<std::string> names = {
      "evil\xE2\x80\xAEgpj.exe",  // U+202E right-to-left override
      "a\xE2\x81\xA6"
      "b.txt",  // U+2066 left-to-right isolate
      "a\xE2\x80\xAA"
      "b.txt",  // U+202A
      "a\xE2\x81\xA9"
      "b.txt",                 // U+2069 pop directional isolate
      "next\xC2\x85line.txt",  // U+0085 NEL, a C1 control
      "csi\xC2\x9B"
      "31m.txt",               // U+009B CSI
      "mark\xE2\x80\x8F.txt",  // U+200F right-to-left mark
  };
  for (const auto& name : names) {
    SCOPED_TRACE(util::to_hex(name));
    const auto form = request(s.port(), "POST", "/upload",
                              {{"Authorization", "Bearer " + token}, {"Content-Type", Multipart::content_type()}},
                              Multipart::body(name, "data"));
    EXPECT_EQ(form.status, 400) << form.body;
    EXPECT_EQ(form.json().at("error").at("code").as_string(), "invalid_file_name");
    std::string encoded;
    for (unsigned char ch : name) encoded += fmt::format("%{:02X}", ch);
    const auto put = request(s.port(), "PUT", "/upload/" + encoded, {{"Authorization", "Bearer " + token}}, "data");
    EXPECT_EQ(put.status, 400) << put.body;
    EXPECT_EQ(put.json().at("error").at("code").as_string(), "invalid_file_name");
  }
  // Still fine: non-Latin scripts, emoji, a right-to-left script itself.
  for (const std::string ok : {"résumé.pdf", "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D.txt", "\xF0\x9F\x98\x80.png"}) {
    EXPECT_EQ(
        request(s.port(), "PUT", "/upload/" + util::percent_encode(ok), {{"Authorization", "Bearer " + token}}, "data")
            .status,
        201)
        << ok;
  }
  EXPECT_TRUE(s.stored_files().size() == 3u);
}

TEST(Hostile, TheAccessLogShowsTheUploadRouteNotTheName) {
  ServerProcess s;
  const auto token = s.create_user_with_token("paster");
  // Someone pastes a token where the file name goes.
  const auto r = request(s.port(), "PUT", "/upload/" + token, {{"Authorization", "Bearer " + token}}, "oops");
  ASSERT_EQ(r.status, 201);
  EXPECT_TRUE(eventually([&] { return s.log().find("PUT /upload/{name} 201") != std::string::npos; }, 5s)) << s.log();
  EXPECT_EQ(s.log().find(token), std::string::npos) << "the token is in the log";
}

TEST(Hostile, DeclaredTypesAreStoredNormalisedOrSniffed) {
  ServerProcess s;
  const auto token = s.create_user_with_token("typist");
  struct Case {
    std::string declared, stored;
  };
  const std::vector<Case> cases = {
      {"a/b, text/html", "text/plain"},             // a list: the bytes decide
      {"text/html;", "text/html"},                  // an empty parameter
      {"text/plain; charset=utf-7", "text/plain"},  // a charset not on the list
      {"TEXT/Plain; Charset=\"UTF-8\"", "text/plain; charset=utf-8"},
      {"image/png; x=\"a\\\"b\"", "image/png"},       // a parameter kept out
      {"text/plain; charset=\"utf-8", "text/plain"},  // an unterminated quote
      {"nonsense", "text/plain"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.declared);
    const auto r = request(s.port(), "PUT", "/upload/t.txt",
                           {{"Authorization", "Bearer " + token}, {"Content-Type", c.declared}}, "just some words\n");
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(r.json().at("content_type").as_string(), c.stored);
    const std::string id(r.json().at("file_id").as_string());
    const auto got = request(s.port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token}});
    EXPECT_EQ(got.header("content-type"), c.stored);
  }
}

TEST(Hostile, AFormIsChargedItsFileBytesNotItsFraming) {
  ServerProcess s(Env{{"S3UP_DEFAULT_QUOTA", "1000"}});
  const auto token = s.create_user_with_token("frugal");
  // 900 bytes of file in a form of about 1,100 bytes.
  const auto r = request(s.port(), "POST", "/upload",
                         {{"Authorization", "Bearer " + token}, {"Content-Type", Multipart::content_type()}},
                         Multipart::body("nine-hundred.bin", ContentStream::make(900, 2)));
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(s.database()->find_user("frugal")->used_bytes, 900);
  // The next 200 bytes do not fit, as a form or raw.
  const auto more = request(s.port(), "POST", "/upload",
                            {{"Authorization", "Bearer " + token}, {"Content-Type", Multipart::content_type()}},
                            Multipart::body("two-hundred.bin", ContentStream::make(200, 3)));
  EXPECT_EQ(more.status, 413);
  EXPECT_EQ(more.json().at("error").at("code").as_string(), "quota_exceeded");
  EXPECT_EQ(s.database()->find_user("frugal")->used_bytes, 900);
}

TEST(Hostile, AnUnterminatedBoundaryQuoteIsAMalformedForm) {
  ServerProcess s;
  const auto token = s.create_user_with_token("quoter");
  const auto r =
      request(s.port(), "POST", "/upload",
              {{"Authorization", "Bearer " + token}, {"Content-Type", "multipart/form-data; boundary=\"abc"}},
              "--abc\r\n\r\n--abc--\r\n");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json().at("error").at("code").as_string(), "invalid_multipart");
  const auto other =
      request(s.port(), "POST", "/upload",
              {{"Authorization", "Bearer " + token}, {"Content-Type", "text/plain; boundary=\"abc"}}, "hello");
  EXPECT_EQ(other.status, 415);
}

TEST(Hostile, RangeNumbersTooLargeForSixtyFourBitsAreStillNumbers) {
  ServerProcess s;
  const auto token = s.create_user_with_token("ranger");
  const std::string content = ContentStream::make(1000, 4);
  const auto up = request(s.port(), "PUT", "/upload/r.bin", {{"Authorization", "Bearer " + token}}, content);
  ASSERT_EQ(up.status, 201);
  const std::string target = "/files/" + std::string(up.json().at("file_id").as_string()) + "/content";
  const auto clamped = request(s.port(), "GET", target,
                               {{"Authorization", "Bearer " + token}, {"Range", "bytes=10-99999999999999999999999"}});
  EXPECT_EQ(clamped.status, 206);
  EXPECT_EQ(clamped.header("content-range"), "bytes 10-999/1000");
  EXPECT_EQ(clamped.body, content.substr(10));
  const auto past = request(s.port(), "GET", target,
                            {{"Authorization", "Bearer " + token}, {"Range", "bytes=99999999999999999999-"}});
  EXPECT_EQ(past.status, 416);
  EXPECT_EQ(past.header("content-range"), "bytes */1000");
  const auto suffix = request(s.port(), "GET", target,
                              {{"Authorization", "Bearer " + token}, {"Range", "bytes=-99999999999999999999"}});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.body, content);
}

// ---- configuration ---------------------------------------------------------

TEST(Hostile, ConfigNeverPrintsTheDatabasePassword) {
  ServerProcess s;
  for (const std::string url : {"postgres://app:Sup3r%2Fsecret@db.internal:5432/uploads?sslmode=require",
                                "postgresql://app:plainpw@db/x?password=querypw",
                                "host=db dbname=uploads user=app password=kwsecret sslmode=require",
                                "host=db password = 'quoted secret\\' pw' dbname=x"}) {
    SCOPED_TRACE(url);
    const auto printed = s.cli({"config", "--database", url});
    ASSERT_EQ(printed.exit_code, 0) << printed.err;
    // (Not "secret" alone: the jwt_secret setting is printed, empty.)
    for (const std::string secret : {"Sup3r", "plainpw", "querypw", "kwsecret", "quoted"}) {
      EXPECT_EQ(printed.out.find(secret), std::string::npos) << secret << " in:\n" << printed.out;
    }
    EXPECT_NE(printed.out.find("REDACTED"), std::string::npos) << printed.out;
  }
}

TEST(Hostile, TimeoutsTooShortToServeAreRefusedAtStartUp) {
  ServerProcess s;
  for (const std::string var : {"S3UP_HEADER_TIMEOUT", "S3UP_IDLE_TIMEOUT", "S3UP_MIN_BODY_RATE_WINDOW"}) {
    for (const std::string value : {"0s", "10ms", "999ms"}) {
      SCOPED_TRACE(var + "=" + value);
      std::string flag = util::ascii_lower(var.substr(5));
      std::replace(flag.begin(), flag.end(), '_', '-');
      const auto r = s.cli({"config", "--" + flag, value});
      EXPECT_NE(r.exit_code, 0);
      EXPECT_NE(r.err.find("at least 1s"), std::string::npos) << r.err;
    }
  }
}

}  // namespace
}  // namespace s3up::test
