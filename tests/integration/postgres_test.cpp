// The service on PostgreSQL: hostile file names through the API, and scale-out
// (two instances, one database, one bucket, started at the same moment).
#include <gtest/gtest.h>

#include <atomic>
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
  // The raced migrations left one schema: each step recorded once.
  const auto log_a = a->log(), log_b = b->log();
  int applied = 0;
  for (const auto* log : {&log_a, &log_b}) {
    for (auto pos = log->find("applied migration"); pos != std::string::npos; pos = log->find("applied migration", pos + 1)) {
      ++applied;
    }
  }
  EXPECT_EQ(applied, static_cast<int>(db::migrations_for("postgres").size())) << log_a << log_b;
}

}  // namespace
}  // namespace s3up::test
