// PostgreSQL restarts and outages under a running service (local-disk store):
// a restart between requests is invisible, requests while it is down get a
// clean 503, an upload caught in flight never leaves a half-written record,
// and the service recovers without a restart of its own. Runs alone
// (RUN_SERIAL): it stops the shared PostgreSQL.
#include <gtest/gtest.h>

#include <cstdlib>

#include "../support/test_database.hpp"
#include "harness.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t MiB = 1024 * 1024;

void peer(const std::string& action) {
  const std::string cmd = std::string(S3UP_SOURCE_DIR) + "/scripts/peers/postgres " + action + " " +
                          testing::required_env("S3UP_TEST_PG_DIR");
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}

class DatabaseOutage : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::make_unique<testing::TestDatabase>();
    server_ = std::make_unique<ServerProcess>(std::map<std::string, std::string>{{"S3UP_DATABASE", db_->url()}});
    token_ = server_->create_user_with_token("alice");
  }
  void TearDown() override {
    if (stopped_) resume();
    server_.reset();
    db_.reset();
  }
  void stop() {
    peer("stop");
    stopped_ = true;
  }
  void resume() {
    peer("resume");
    stopped_ = false;
  }
  Response upload(const std::string& name, std::uint64_t size = 64 * 1024) {
    return upload_streamed(server_->port(), token_, name, size, size);
  }

  std::unique_ptr<testing::TestDatabase> db_;
  std::unique_ptr<ServerProcess> server_;
  std::string token_;
  bool stopped_ = false;
};

TEST_F(DatabaseOutage, RestartBetweenRequestsIsInvisible) {
  // Warm several pooled connections, so that all of them go stale at once.
  std::vector<std::thread> warm;
  for (int i = 0; i < 4; ++i) {
    warm.emplace_back([&, i] { EXPECT_EQ(upload("warm" + std::to_string(i)).status, 201); });
  }
  for (auto& t : warm) t.join();
  stop();
  resume();
  for (int i = 0; i < 6; ++i) {
    const auto r = upload("after-restart" + std::to_string(i));
    EXPECT_EQ(r.status, 201) << r.body << "\n" << server_->log();
  }
  EXPECT_EQ(server_->database()->count_uploads(db::UploadStatus::complete), 10);
}

TEST_F(DatabaseOutage, DownMeansA503ThenRecoversByItself) {
  ASSERT_EQ(upload("before").status, 201);
  stop();
  const auto r = upload("while-down");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.json().at("error").at("code").as_string(), "database_unavailable");
  EXPECT_EQ(server_->log().find(token_), std::string::npos) << "a token in the log";
  EXPECT_EQ(server_->stored_files().size(), 1u) << "an object without a record";
  resume();
  const auto after = upload("after");
  EXPECT_EQ(after.status, 201) << after.body << "\n" << server_->log();
  EXPECT_EQ(server_->database()->count_uploads(db::UploadStatus::complete), 2);
}

TEST_F(DatabaseOutage, ReadinessFollowsTheDatabaseWhileLivenessStays) {
  const auto ready = request(server_->port(), "GET", "/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(ready.json().at("status").as_string(), "ready");
  EXPECT_EQ(ready.json().at("checks").at("database").as_string(), "ok");
  stop();
  // A kept answer lasts 2 s: then the database is asked again.
  ASSERT_TRUE(eventually([&] { return request(server_->port(), "GET", "/readyz").status == 503; }, 10s));
  const auto down = request(server_->port(), "GET", "/readyz");
  EXPECT_EQ(down.json().at("status").as_string(), "unavailable");
  EXPECT_TRUE(down.json().at("checks").at("database").as_string().starts_with("error: ")) << down.body;
  EXPECT_EQ(down.json().at("checks").at("storage").as_string(), "ok");
  EXPECT_EQ(request(server_->port(), "GET", "/healthz").status, 200) << "alive, only not ready";
  resume();
  EXPECT_TRUE(eventually([&] { return request(server_->port(), "GET", "/readyz").status == 200; }, 10s))
      << server_->log();
}

TEST_F(DatabaseOutage, UploadInFlightFailsCleanlyWithNoHalfWrittenRecord) {
  Connection c(server_->port());
  c.send("PUT /upload/in-flight.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
         "\r\nContent-Length: " + std::to_string(8 * MiB) + "\r\n\r\n");
  c.send(ContentStream::make(4 * MiB, 9));
  {
    auto db = server_->database();
    ASSERT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::pending) == 1; }));
  }
  stop();
  c.send(ContentStream::make(4 * MiB, 10));
  const auto r = c.read_response(60s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->json().at("error").at("code").as_string(), "database_unavailable");
  resume();
  auto db = server_->database();
  // Not complete: still pending, for the janitor (the commit never reached
  // the database), with no temporary file left beside it.
  EXPECT_EQ(db->count_uploads(db::UploadStatus::complete), 0);
  EXPECT_EQ(db->count_uploads(db::UploadStatus::pending), 1);
  for (const auto& f : server_->stored_files()) {
    EXPECT_EQ(f.filename().string().find(".tmp"), std::string::npos) << f;
  }
  const auto after = upload("after");
  EXPECT_EQ(after.status, 201) << after.body;
}

}  // namespace
}  // namespace s3up::test
