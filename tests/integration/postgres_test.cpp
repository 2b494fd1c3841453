// The service on PostgreSQL: hostile file names through the API, and scale-out
// (two instances, one database, one bucket, started at the same moment; every
// file listed and readable through either).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "../support/test_database.hpp"
#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;

std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

TEST(Postgres, HostileFileNamesRoundTripOrAreRefusedClearly) {
  testing::TestDatabase db;
  ServerProcess server({{"S3UP_DATABASE", db.url()}});
  const auto token = server.create_user_with_token("alice");
  const auto put = [&](const std::string& name) {
    return request(server.port(), "PUT", "/upload/" + percent_encode(name),
                   {{"Authorization", "Bearer " + token}, {"Content-Length", "5"}}, "hello");
  };
  for (const std::string& name : std::vector<std::string>{
           "it's \"quoted\".txt", "back\\slash\\name.txt", "'; DROP TABLE uploads; --", "$1 $2 ?1 %s {}.txt",
           "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89 emoji.png", std::string(1000, 'n')}) {
    SCOPED_TRACE(name.substr(0, 40));
    const auto r = put(name);
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(r.json().at("file_name").as_string(), name);
    const auto row = server.database()->get_upload(std::string(r.json().at("file_id").as_string()));
    ASSERT_TRUE(row);
    EXPECT_EQ(row->file_name, name);
  }
  for (const std::string& bad : {std::string("nul\0byte.txt", 12), std::string(1025, 'n'), std::string("\xC3\x28")}) {
    const auto r = put(bad);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.json().at("error").at("code").as_string(), "invalid_file_name");
  }
  EXPECT_EQ(server.database()->count_uploads(db::UploadStatus::complete), 6);
  EXPECT_EQ(server.database()->count_uploads(db::UploadStatus::pending), 0);
}

// Two stateless instances on one PostgreSQL and one bucket, started together
// (their migrations race), 100 uploads spread over both.
TEST(ScaleOut, TwoInstancesOneDatabaseOneBucket) {
  S3Peer peer;
  testing::TestDatabase db;
  auto env = peer.server_env();
  env["S3UP_DATABASE"] = db.url();
  std::unique_ptr<ServerProcess> a, b;
  std::thread start_b([&] { b = std::make_unique<ServerProcess>(env); });
  a = std::make_unique<ServerProcess>(env);
  start_b.join();
  ASSERT_TRUE(a && b);

  // One user made through one instance, used through both.
  const auto token = a->create_user_with_token("alice");
  const auto user_id = b->database()->find_user("alice")->id;
  constexpr int kUploads = 100, kClients = 4;
  std::vector<std::string> ids(kUploads);
  std::atomic<int> next{0}, created{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      for (int i = next++; i < kUploads; i = next++) {
        auto& server = i % 2 ? *a : *b;
        const std::uint64_t size = 1000 + static_cast<std::uint64_t>(i) * 997;
        const auto r = upload_streamed(server.port(), token, "f" + std::to_string(i), size, i);
        if (r.status != 201) {
          ADD_FAILURE() << "upload " << i << ": " << r.status << " " << r.body;
          continue;
        }
        ids[i] = std::string(r.json().at("file_id").as_string());
        ++created;
      }
    });
  }
  for (auto& t : clients) t.join();
  ASSERT_EQ(created, kUploads);

  // Both instances see every record; every object is in the bucket, intact.
  auto via_a = a->database(), via_b = b->database();
  EXPECT_EQ(via_a->count_uploads(db::UploadStatus::complete), kUploads);
  for (int i = 0; i < kUploads; ++i) {
    const auto row = (i % 2 ? via_b : via_a)->get_upload(ids[i]);
    ASSERT_TRUE(row) << ids[i];
    EXPECT_EQ(row->status, db::UploadStatus::complete);
    EXPECT_EQ(row->user_id, user_id);
    const std::uint64_t size = 1000 + static_cast<std::uint64_t>(i) * 997;
    EXPECT_EQ(row->file_size, size);
    EXPECT_EQ(row->sha256, ContentStream::sha256_of(size, i));
    EXPECT_EQ(peer.object_sha256(row->storage_key), row->sha256) << row->storage_key;
  }
  // Through the API: both instances list all 100, and each file reads back
  // intact through the instance it was not uploaded to.
  for (auto* server : {a.get(), b.get()}) {
    const auto listed = request(server->port(), "GET", "/files?limit=1000", {{"Authorization", "Bearer " + token}});
    ASSERT_EQ(listed.status, 200) << listed.body;
    std::set<std::string> listed_ids;
    const auto listed_json = listed.json();
    for (const auto& f : listed_json.at("files").as_array()) listed_ids.emplace(f.at("file_id").as_string());
    EXPECT_EQ(listed_ids, std::set<std::string>(ids.begin(), ids.end()));
  }
  for (int i = 0; i < kUploads; ++i) {
    auto& other = i % 2 ? *b : *a;
    const auto content =
        request(other.port(), "GET", "/files/" + ids[i] + "/content", {{"Authorization", "Bearer " + token}});
    ASSERT_EQ(content.status, 200) << content.body;
    EXPECT_EQ(util::sha256_hex(content.body), ContentStream::sha256_of(1000 + static_cast<std::uint64_t>(i) * 997, i));
  }
  // The raced migrations left one schema: each step recorded once.
  const auto log_a = a->log(), log_b = b->log();
  int applied = 0;
  for (const auto* log : {&log_a, &log_b}) {
    for (auto pos = log->find("applied migration"); pos != std::string::npos;
         pos = log->find("applied migration", pos + 1)) {
      ++applied;
    }
  }
  EXPECT_EQ(applied, static_cast<int>(db::migrations_for("postgres").size())) << log_a << log_b;
}

}  // namespace
}  // namespace s3up::test
