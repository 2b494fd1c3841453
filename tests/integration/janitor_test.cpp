// Crash clean-up: the server is killed (SIGKILL) in the middle of an upload,
// leaving a pending row and an S3 multipart upload or a temporary file; the
// next server's janitor removes the leftovers and marks the row failed, and
// leaves uploads it is itself receiving alone however old they get.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <csignal>
#include <thread>

#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"

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

// A resumable upload's commit sweeps what other writers left beside its
// object (tail objects); when the store fails it then, the row is marked
// complete with leftovers, and the janitor sweeps them later: the tails
// go, the file stays.
TEST(Janitor, RemovesWhatOtherWritersLeftBesideACompleteFile) {
  S3Peer peer;
  auto env = peer.server_env();
  env["S3UP_JANITOR_INTERVAL"] = "1s";
  ServerProcess server(env);
  const auto token = server.create_user_with_token("alice");
  const std::string content = ContentStream::make(3 * MiB, 5);
  const auto put = request(server.port(), "PUT", "/upload/kept.bin", {{"Authorization", "Bearer " + token}}, content);
  ASSERT_EQ(put.status, 201) << put.body;
  const std::string id(put.json().at("file_id").as_string());
  auto db = server.database();
  const auto row = db->get_upload(id);
  ASSERT_TRUE(row);
  // What a commit whose sweep failed leaves: a stale writer's tail, and the
  // row's flag (set here as the service's completeUpload sets it).
  const std::string tail = peer.bucket_key(row->storage_key) + ".tail.00112233deadbeef";
  const std::string stale_bytes = "a stale writer's tail";
  peer.run(peer.client().put_object(tail, {}, std::span<const char>(stale_bytes), util::sha256_hex(stale_bytes)));
  const auto stored = peer.keys();
  ASSERT_EQ(std::count(stored.begin(), stored.end(), tail), 1);
  sqlite3* sql = nullptr;
  ASSERT_EQ(sqlite3_open((server.dir() / "s3uploader.db").c_str(), &sql), SQLITE_OK);
  sqlite3_busy_timeout(sql, 5000);
  const std::string flag = "UPDATE uploads SET store_leftovers = 1 WHERE id = '" + id + "'";
  EXPECT_EQ(sqlite3_exec(sql, flag.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(sql);
  sqlite3_close(sql);
  ASSERT_EQ(db->uploads_with_leftovers(10).size(), 1u);

  EXPECT_TRUE(eventually([&] { return db->uploads_with_leftovers(10).empty(); }, 15s)) << server.log();
  const auto keys = peer.keys();
  EXPECT_EQ(std::count(keys.begin(), keys.end(), tail), 0) << "the tail is still there";
  EXPECT_EQ(peer.object_sha256(row->storage_key), util::sha256_hex(content)) << "the file must stay whole";
  EXPECT_EQ(db->get_upload(id)->status, db::UploadStatus::complete);
  const auto got = request(server.port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token}});
  EXPECT_EQ(got.status, 200);
  EXPECT_TRUE(got.body == content);
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
