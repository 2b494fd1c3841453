// Crash clean-up: the server is killed (SIGKILL) in the middle of an upload,
// leaving a pending row and an S3 multipart upload or a temporary file; the
// next server's janitor removes the leftovers and marks the row failed, and
// leaves uploads it is itself receiving alone however old they get.
#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include "harness.hpp"
#include "s3_peer.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t MiB = 1024 * 1024;

// Starts `PUT /upload/<name>` of `total` bytes and sends `sent` of them.
std::unique_ptr<Connection> start_upload(const ServerProcess& server, const std::string& token, const std::string& name,
                                         std::uint64_t total, std::uint64_t sent) {
  auto c = std::make_unique<Connection>(server.port());
  c->send("PUT /upload/" + name + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
          "\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n");
  c->send(ContentStream::make(sent, 1));
  return c;
}

std::optional<db::Upload> only_pending(db::MetadataStore& db) {
  const auto rows = db.stale_pending(util::now_micros() + 1'000'000, 10);
  if (rows.size() != 1) return std::nullopt;
  return rows.front();
}

TEST(Janitor, KilledMidUploadToS3ThenCleanedUpByTheNextServer) {
  S3Peer peer;
  auto env = peer.server_env();
  std::string db_url;
  std::string upload_id;
  {
    ServerProcess doomed(env);
    db_url = "sqlite://" + (doomed.dir() / "s3uploader.db").string();
    const auto token = doomed.create_user_with_token("alice");
    auto c = start_upload(doomed, token, "doomed.bin", 40 * MiB, 15 * MiB);
    auto db = doomed.database();
    ASSERT_TRUE(eventually(
        [&] {
          const auto row = only_pending(*db);
          return row && !row->store_upload_id.empty();
        },
        30s));
    upload_id = only_pending(*db)->id;
    doomed.signal(SIGKILL);
    ASSERT_EQ(doomed.wait(10s), 128 + SIGKILL);
    ASSERT_EQ(peer.multipart_uploads().size(), 1u) << "the crash should have left its multipart upload";

    // The next server, on the same database and bucket: its janitor runs at
    // start-up and finds the dead upload (older than the configured age).
    env["S3UP_DATABASE"] = db_url;
    env["S3UP_STALE_UPLOAD_AGE"] = "1s";
    std::this_thread::sleep_for(1100ms);
    ServerProcess next(env);
    EXPECT_TRUE(eventually([&] { return peer.multipart_uploads().empty(); }, 30s))
        << peer.multipart_uploads().size() << " multipart upload(s) left\n"
        << next.log();
    EXPECT_TRUE(eventually([&] { return db->get_upload(upload_id)->status == db::UploadStatus::failed; }, 30s));
    // The summary line follows the row's change (after the round's other
    // work): wait for it before reading the log.
    eventually([&] { return next.log().find("janitor: 1 stale upload(s) cleaned up") != std::string::npos; }, 10s);
    EXPECT_NE(next.log().find("janitor: 1 stale upload(s) cleaned up"), std::string::npos) << next.log();
    EXPECT_FALSE(peer.object_size(db->get_upload(upload_id)->storage_key));
  }
}

TEST(Janitor, KilledMidUploadToDiskAndLiveUploadsAreLeftAlone) {
  ServerProcess doomed;
  const auto token = doomed.create_user_with_token("alice");
  auto c = start_upload(doomed, token, "doomed.bin", 20 * MiB, 3 * MiB);
  auto db = doomed.database();
  ASSERT_TRUE(eventually([&] { return only_pending(*db).has_value(); }));
  ASSERT_TRUE(eventually([&] { return !doomed.stored_files().empty(); }));  // its temporary file
  const std::string dead_id = only_pending(*db)->id;
  doomed.signal(SIGKILL);
  ASSERT_EQ(doomed.wait(10s), 128 + SIGKILL);
  const auto leftovers = doomed.stored_files();
  ASSERT_EQ(leftovers.size(), 1u);
  EXPECT_TRUE(leftovers.front().filename().string().starts_with(".tmp-"));

  // The next server uses the same directory and database, and runs its
  // janitor every second with a one-second age: an upload it is receiving
  // itself, slowly, for longer than that must survive.
  std::map<std::string, std::string> env{{"S3UP_STORAGE", "file://" + doomed.objects_dir().string()},
                                         {"S3UP_DATABASE", "sqlite://" + (doomed.dir() / "s3uploader.db").string()},
                                         {"S3UP_STALE_UPLOAD_AGE", "1s"},
                                         {"S3UP_JANITOR_INTERVAL", "1s"}};
  ServerProcess next(env);
  EXPECT_TRUE(eventually([&] { return db->get_upload(dead_id)->status == db::UploadStatus::failed; }, 20s))
      << next.log();
  EXPECT_TRUE(eventually([&] { return doomed.stored_files().empty(); }));  // the directory both servers use
  for (const auto& f : doomed.stored_files()) ADD_FAILURE() << "left behind: " << f;

  auto slow = start_upload(next, token, "slow.bin", 2 * MiB, 1 * MiB);
  std::this_thread::sleep_for(3s);  // older than the age, across several janitor runs
  slow->send(ContentStream::make(1 * MiB, 2));
  const auto r = slow->read_response(30s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body << "\n" << next.log();
  EXPECT_EQ(db->count_uploads(db::UploadStatus::complete), 1);
  EXPECT_EQ(db->count_uploads(db::UploadStatus::failed), 1);
}

}  // namespace
}  // namespace s3up::test
