// Limits through the real binary: the rate limit per token (429 with
// Retry-After), concurrent uploads per user (429), allowed content types
// decided by sniffing the bytes (415), and storage quotas (413); refused
// uploads leave nothing behind.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "harness.hpp"
#include "util/text.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t MiB = 1024 * 1024;

Response list(const ServerProcess& s, const std::string& token) {
  return request(s.port(), "GET", "/files", {{"Authorization", "Bearer " + token}});
}

TEST(Limits, RateLimitPerTokenWithRetryAfter) {
  ServerProcess server({{"S3UP_RATE_LIMIT", "2"}, {"S3UP_RATE_LIMIT_BURST", "3"}});
  const auto alice = server.create_user_with_token("alice");
  const auto bob = server.create_user_with_token("bob");
  int ok = 0;
  Response limited;
  for (int i = 0; i < 6; ++i) {
    const auto r = list(server, alice);
    if (r.status == 200) {
      ++ok;
    } else {
      limited = r;
    }
  }
  EXPECT_GE(ok, 3);  // the burst (plus what refilled meanwhile)
  EXPECT_LE(ok, 4);
  ASSERT_EQ(limited.status, 429);
  EXPECT_EQ(limited.json().at("error").at("code").as_string(), "too_many_requests");
  EXPECT_GE(std::stoi(limited.header("retry-after")), 1);
  EXPECT_EQ(list(server, bob).status, 200) << "another token has its own bucket";
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(list(server, alice).status, 200) << "the bucket refills";
  // Unauthenticated requests are refused as before, not counted against anyone.
  EXPECT_EQ(request(server.port(), "GET", "/files").status, 401);
}

TEST(Limits, ConcurrentUploadsPerUser) {
  ServerProcess server(std::map<std::string, std::string>{{"S3UP_MAX_CONCURRENT_UPLOADS", "1"}});
  const auto alice = server.create_user_with_token("alice");
  const auto bob = server.create_user_with_token("bob");
  Connection first(server.port());
  first.send("PUT /upload/first.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + alice +
             "\r\nContent-Length: " + std::to_string(2 * MiB) + "\r\n\r\n");
  first.send(ContentStream::make(MiB, 1));
  auto db = server.database();
  ASSERT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::pending) == 1; }));
  const auto second = upload_streamed(server.port(), alice, "second.bin", 1000, 2);
  EXPECT_EQ(second.status, 429) << second.body;
  EXPECT_EQ(second.json().at("error").at("code").as_string(), "too_many_requests");
  EXPECT_FALSE(second.header("retry-after").empty());
  EXPECT_EQ(upload_streamed(server.port(), bob, "bobs.bin", 1000, 3).status, 201) << "bob is not alice";
  first.send(ContentStream::make(MiB, 4));
  const auto done = first.read_response();
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, 201);
  EXPECT_EQ(upload_streamed(server.port(), alice, "third.bin", 1000, 5).status, 201) << "the slot is free again";
  EXPECT_EQ(db->count_uploads(db::UploadStatus::pending), 0);
}

// A minimal PNG: the signature and an IHDR chunk are what libmagic reads.
std::string png_bytes(std::size_t total) {
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0\x1f\xf3\xff\x61", 33);
  png.resize(std::max(total, png.size()), '\0');
  return png;
}

TEST(Limits, AllowedTypesAreSniffedNotTrusted) {
  ServerProcess server(std::map<std::string, std::string>{{"S3UP_ALLOWED_TYPES", "image/*, application/pdf"}});
  const auto alice = server.create_user_with_token("alice");
  const auto put = [&](const std::string& name, const std::string& type, const std::string& body) {
    return request(server.port(), "PUT", "/upload/" + name,
                   {{"Authorization", "Bearer " + alice}, {"Content-Type", type}}, body);
  };
  // A PNG named and declared as text: accepted, stored and served as image/png.
  auto r = put("notes.txt", "text/plain", png_bytes(2000));
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.json().at("content_type").as_string(), "image/png");
  const std::string id(r.json().at("file_id").as_string());
  EXPECT_EQ(request(server.port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + alice}})
                .header("content-type"),
            "image/png");
  // Text dressed up as an image: refused, small or large (decided after the first 4 KiB).
  for (std::size_t size : {std::size_t{100}, std::size_t{3 * MiB}}) {
    r = put("photo.png", "image/png", std::string(size, 'a'));
    EXPECT_EQ(r.status, 415) << size << " " << r.body;
    EXPECT_EQ(r.json().at("error").at("code").as_string(), "unsupported_media_type");
  }
  // Nothing of the refused ones is left: one file, one complete row, two failed.
  EXPECT_TRUE(eventually([&] { return server.stored_files().size() == 1; })) << server.stored_files().size();
  auto db = server.database();
  EXPECT_EQ(db->count_uploads(db::UploadStatus::complete), 1);
  EXPECT_EQ(db->count_uploads(db::UploadStatus::failed), 2);
  EXPECT_EQ(db->count_uploads(db::UploadStatus::pending), 0);
}

}  // namespace
}  // namespace s3up::test

namespace s3up::test {
namespace {

TEST(Limits, StorageQuotaUpFrontMidBodyAndUnderConcurrency) {
  ServerProcess server(std::map<std::string, std::string>{{"S3UP_DEFAULT_QUOTA", "1MiB"}});
  const auto alice = server.create_user_with_token("alice");
  ASSERT_EQ(server.cli({"user", "add", "bob", "--quota", "3MiB"}).exit_code, 0);
  const auto bob = std::string(util::trim(server.cli({"token", "create", "bob"}).out));
  const auto put = [&](const std::string& token, const std::string& name, std::size_t size) {
    return request(server.port(), "PUT", "/upload/" + name, {{"Authorization", "Bearer " + token}},
                   ContentStream::make(size, size));
  };
  ASSERT_EQ(put(alice, "a", 600 * 1024).status, 201);
  // Up front: Content-Length says it will not fit; not a byte is read.
  auto r = put(alice, "b", 600 * 1024);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.json().at("error").at("code").as_string(), "quota_exceeded");
  // Mid-body: a chunked upload of unknown length, refused when it passes the quota.
  Connection c(server.port());
  c.send("PUT /upload/chunked HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + alice +
         "\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 8; ++i) {
    const std::string piece = ContentStream::make(100 * 1024, 40 + i);
    if (!c.send(fmt::format("{:x}\r\n", piece.size()) + piece + "\r\n")) break;
  }
  c.send("0\r\n\r\n");
  const auto mid = c.read_response();
  ASSERT_TRUE(mid);
  EXPECT_EQ(mid->status, 413);
  EXPECT_EQ(mid->json().at("error").at("code").as_string(), "quota_exceeded");
  // A user's own quota beats the default.
  EXPECT_EQ(put(bob, "big", 2 * 1024 * 1024).status, 201);

  // Nothing of the refused uploads stays, and usage is what is stored.
  EXPECT_TRUE(eventually([&] { return server.stored_files().size() == 2; })) << server.stored_files().size();
  auto db = server.database();
  EXPECT_EQ(db->find_user("alice")->used_bytes, 600 * 1024);
  EXPECT_EQ(db->count_uploads(db::UploadStatus::pending), 0);

  // Deleting frees the room.
  const auto listed = request(server.port(), "GET", "/files", {{"Authorization", "Bearer " + alice}}).json();
  const std::string first(listed.at("files").as_array().at(0).at("file_id").as_string());
  EXPECT_EQ(request(server.port(), "DELETE", "/files/" + first, {{"Authorization", "Bearer " + alice}}).status, 204);
  EXPECT_EQ(db->find_user("alice")->used_bytes, 0);

  // Concurrent uploads cannot overshoot together: 6 x 300 KiB against 1 MiB.
  std::atomic<int> created{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      const auto res = upload_streamed(server.port(), alice, "c" + std::to_string(i), 300 * 1024, 60 + i);
      (res.status == 201 ? created : refused)++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created, 3);
  EXPECT_EQ(refused, 3);
  EXPECT_LE(db->find_user("alice")->used_bytes, 1024 * 1024);
  ASSERT_EQ(server.cli({"user", "quota", "alice", "none"}).exit_code, 0);
  EXPECT_NE(server.cli({"user", "list"}).out.find("default"), std::string::npos);
}

}  // namespace
}  // namespace s3up::test
