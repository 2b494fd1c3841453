// The S3 server goes away in the middle of an upload: the client gets a clean
// 503, the row is failed with its multipart upload noted as left over, the
// janitor removes that once the server is back (the database, not the
// failing process's memory, remembers it), and uploads work again. Runs
// alone (RUN_SERIAL): it stops the shared radosgw.
#include <gtest/gtest.h>

#include <thread>
#include <utility>

#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t MiB = 1024 * 1024;

// Stops radosgw until end(), or until destroyed: a failed assertion must not
// leave it down for the tests after this one.
class GatewayOutage {
 public:
  explicit GatewayOutage(S3Peer& peer) : peer_(peer) { peer_.stop_gateway(); }
  ~GatewayOutage() {
    try {
      end();
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
  void end() {
    if (std::exchange(down_, false)) peer_.start_gateway();
  }

 private:
  S3Peer& peer_;
  bool down_ = true;
};

TEST(S3Outage, ReadinessFollowsTheStore) {
  S3Peer peer;
  ServerProcess server(peer.server_env());
  const auto ready = request(server.port(), "GET", "/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body << server.log();
  EXPECT_EQ(ready.json().at("checks").at("storage").as_string(), "ok");
  {
    GatewayOutage outage(peer);
    ASSERT_TRUE(eventually([&] { return request(server.port(), "GET", "/readyz").status == 503; }, 30s));
    const auto down = request(server.port(), "GET", "/readyz");
    EXPECT_TRUE(down.json().at("checks").at("storage").as_string().starts_with("error: ")) << down.body;
    EXPECT_EQ(down.json().at("checks").at("database").as_string(), "ok");
    EXPECT_EQ(request(server.port(), "GET", "/healthz").status, 200);
  }
  EXPECT_TRUE(eventually([&] { return request(server.port(), "GET", "/readyz").status == 200; }, 30s))
      << server.log();
}

TEST(S3Outage, StoreStoppedMidUploadThenBack) {
  S3Peer peer;
  auto env = peer.server_env();
  env["S3UP_JANITOR_INTERVAL"] = "1s";
  ServerProcess server(env);
  const auto token = server.create_user_with_token("alice");

  Connection c(server.port());
  c.send("PUT /upload/outage.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
         "\r\nContent-Length: " + std::to_string(40 * MiB) + "\r\n\r\n");
  c.send(ContentStream::make(12 * MiB, 3));
  ASSERT_TRUE(eventually([&] { return peer.multipart_uploads().size() == 1; }, 20s));

  GatewayOutage outage(peer);
  // The rest of the body: the next parts cannot be stored.
  for (int i = 0; i < 28; ++i) {
    if (!c.send(ContentStream::make(MiB, 100 + i))) break;
  }
  const auto r = c.read_response(60s);
  ASSERT_TRUE(r) << "no answer while the store was down";
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->json().at("error").at("code").as_string(), "storage_unavailable");
  auto db = server.database();
  EXPECT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::failed) == 1; }));
  EXPECT_EQ(db->count_uploads(db::UploadStatus::complete), 0);
  const auto left = db->uploads_with_leftovers(10);
  ASSERT_EQ(left.size(), 1u) << "the abort could not reach the store: the row says what is left";
  // (The row has the multipart upload's id unless the store went down with
  // CreateMultipartUpload's answer on the way: then the janitor finds the
  // upload by its key.)
  std::this_thread::sleep_for(1500ms);  // a janitor round while the store is still down keeps the row
  EXPECT_EQ(db->uploads_with_leftovers(10).size(), 1u);

  outage.end();
  EXPECT_TRUE(eventually([&] { return peer.multipart_uploads().empty(); }, 60s))
      << peer.multipart_uploads().size() << " multipart upload(s) left";
  EXPECT_TRUE(eventually([&] { return db->uploads_with_leftovers(10).empty(); }, 30s));
  EXPECT_NE(server.log().find("had leftovers the store was down to take; removed"), std::string::npos);
  EXPECT_EQ(db->get_upload(left[0].id)->status, db::UploadStatus::failed);

  const auto content = ContentStream::make(7 * MiB, 8);
  const auto ok = request(server.port(), "PUT", "/upload/after.bin", {{"Authorization", "Bearer " + token}}, content);
  EXPECT_EQ(ok.status, 201) << ok.body;
  EXPECT_EQ(ok.json().at("sha256").as_string(), util::sha256_hex(content));
}

}  // namespace
}  // namespace s3up::test
