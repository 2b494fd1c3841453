// The S3 server goes away in the middle of an upload: the client gets a clean
// 503, nothing is left in the bucket once the server is back, and uploads
// work again. Runs alone (RUN_SERIAL): it stops the shared radosgw.
#include <gtest/gtest.h>

#include <thread>

#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t MiB = 1024 * 1024;

TEST(S3Outage, StoreStoppedMidUploadThenBack) {
  S3Peer peer;
  ServerProcess server(peer.server_env());
  const auto token = server.create_user_with_token("alice");

  Connection c(server.port());
  c.send("PUT /upload/outage.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
         "\r\nContent-Length: " + std::to_string(40 * MiB) + "\r\n\r\n");
  c.send(ContentStream::make(12 * MiB, 3));
  ASSERT_TRUE(eventually([&] { return peer.multipart_uploads().size() == 1; }, 20s));

  peer.stop_gateway();
  bool gateway_stopped = true;
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

  if (gateway_stopped) peer.start_gateway();
  // The abort that failed while the store was down is retried in the background.
  EXPECT_TRUE(eventually([&] { return peer.multipart_uploads().empty(); }, 90s))
      << peer.multipart_uploads().size() << " multipart upload(s) left";

  const auto content = ContentStream::make(7 * MiB, 8);
  const auto ok = request(server.port(), "PUT", "/upload/after.bin", {{"Authorization", "Bearer " + token}}, content);
  EXPECT_EQ(ok.status, 201) << ok.body;
  EXPECT_EQ(ok.json().at("sha256").as_string(), util::sha256_hex(content));
}

}  // namespace
}  // namespace s3up::test
