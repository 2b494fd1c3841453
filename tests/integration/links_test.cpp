// Download links (POST /files/{id}/link) and GET /api/config over HTTP
// against the real binary: a link works without a token, for its file only,
// until it expires, on every instance of the database.
#include <gtest/gtest.h>

#include <thread>

#include "../support/test_database.hpp"
#include "harness.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;

std::string path_of(const std::string& url) {
  const auto scheme = url.find("://");
  return scheme == std::string::npos ? url : url.substr(url.find('/', scheme + 3));
}

std::string put(ServerProcess& server, const std::string& token, const std::string& name, const std::string& body) {
  const auto r = request(server.port(), "PUT", "/upload/" + name, {{"Authorization", "Bearer " + token}}, body);
  EXPECT_EQ(r.status, 201) << r.body;
  return std::string(r.json().at("file_id").as_string());
}

Response link(ServerProcess& server, const std::string& token, const std::string& id) {
  return request(server.port(), "POST", "/files/" + id + "/link", {{"Authorization", "Bearer " + token}});
}

TEST(DownloadLinks, ALinkDownloadsWithoutATokenForItsFileOnly) {
  ServerProcess server;
  const auto token = server.create_user_with_token("alice");
  const std::string content = ContentStream::make(300'000, 4);
  const auto id = put(server, token, "report.pdf", content);
  const auto other = put(server, token, "other.txt", "other");

  const auto made = link(server, token, id);
  ASSERT_EQ(made.status, 200) << made.body;
  const auto json = made.json().as_object();
  const std::string url(json.at("url").as_string());
  EXPECT_TRUE(url.starts_with("http://127.0.0.1/files/" + id + "/content?")) << url;
  EXPECT_EQ(json.at("expires_in").as_int64(), 300);
  EXPECT_FALSE(json.at("expires_at").as_string().empty());

  const auto got = request(server.port(), "GET", path_of(url));
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_TRUE(got.body == content);
  EXPECT_NE(got.header("content-disposition").find("report.pdf"), std::string::npos);
  const auto part = request(server.port(), "GET", path_of(url), {{"Range", "bytes=10-19"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, content.substr(10, 10));
  EXPECT_EQ(request(server.port(), "HEAD", path_of(url)).status, 200);

  // Another file's path with this file's signature, a forged signature, a
  // later expiry: all refused, and no token is asked for.
  auto for_other = path_of(url);
  for_other.replace(for_other.find(id), id.size(), other);
  EXPECT_EQ(request(server.port(), "GET", for_other).status, 403);
  auto forged = path_of(url);
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(request(server.port(), "GET", forged).status, 403);
  auto later = path_of(url);
  const auto at = later.find("expires=") + 8;
  later.replace(at, 10, "9999999999");
  EXPECT_EQ(request(server.port(), "GET", later).status, 403);
  // Without a link it is still the token's.
  EXPECT_EQ(request(server.port(), "GET", "/files/" + id + "/content").status, 401);
}

TEST(DownloadLinks, OnlyTheOwnersCompleteFilesAndOnlyUntilTheyExpire) {
  ServerProcess server(std::map<std::string, std::string>{{"S3UP_DOWNLOAD_URL_TTL", "1s"}});
  const auto alice = server.create_user_with_token("alice");
  const auto bob = server.create_user_with_token("bob");
  const auto id = put(server, alice, "a.txt", "alice's");
  EXPECT_EQ(link(server, bob, id).status, 404) << "another user's file";
  EXPECT_EQ(link(server, alice, "01234567-89ab-7def-8123-456789abcdef").status, 404);
  EXPECT_EQ(request(server.port(), "POST", "/files/" + id + "/link").status, 401);
  const auto made = link(server, alice, id);
  ASSERT_EQ(made.status, 200);
  const auto path = path_of(std::string(made.json().at("url").as_string()));
  std::this_thread::sleep_for(2100ms);
  const auto expired = request(server.port(), "GET", path);
  EXPECT_EQ(expired.status, 403) << expired.body;
  EXPECT_NE(expired.body.find("expired"), std::string::npos);
}

// A link speaks for its owner: disabling the owner stops their links at
// once, as it stops their tokens, and enabling them again brings them back.
// On both databases, one instance making the link and another serving it.
TEST(DownloadLinks, StopTheMomentTheirOwnerIsDisabled) {
  testing::TestDatabase db;
  for (const bool postgres : {false, true}) {
    SCOPED_TRACE(postgres ? "postgres" : "sqlite");
    ServerProcess a(postgres ? std::map<std::string, std::string>{{"S3UP_DATABASE", db.url()}}
                             : std::map<std::string, std::string>{});
    const std::map<std::string, std::string> shared{
        {"S3UP_DATABASE", postgres ? db.url() : "sqlite://" + (a.dir() / "s3uploader.db").string()},
        {"S3UP_STORAGE", "file://" + a.objects_dir().string()}};
    ServerProcess b(shared);
    const auto token = a.create_user_with_token(postgres ? "carol" : "alice");
    const auto id = put(a, token, "kept.txt", "the owner's");
    const auto made = link(a, token, id);
    ASSERT_EQ(made.status, 200);
    const auto path = path_of(std::string(made.json().at("url").as_string()));
    ASSERT_EQ(request(b.port(), "GET", path).status, 200);
    ASSERT_EQ(a.cli({"user", "disable", postgres ? "carol" : "alice"}).exit_code, 0);
    const auto refused = request(b.port(), "GET", path);
    EXPECT_EQ(refused.status, 403) << refused.body;
    EXPECT_EQ(request(a.port(), "HEAD", path).status, 403);
    ASSERT_EQ(a.cli({"user", "enable", postgres ? "carol" : "alice"}).exit_code, 0);
    EXPECT_EQ(request(b.port(), "GET", path).status, 200);
  }
}

TEST(DownloadLinks, EveryInstanceOnTheDatabaseAcceptsThem) {
  testing::TestDatabase db;
  const auto shared = std::filesystem::temp_directory_path() / ("s3up-links-" + std::to_string(::getpid()));
  const std::map<std::string, std::string> env{{"S3UP_DATABASE", db.url()},
                                               {"S3UP_STORAGE", "file://" + shared.string()}};
  ServerProcess a(env);
  ServerProcess b(env);
  const auto token = a.create_user_with_token("alice");
  const auto id = put(a, token, "shared.txt", "on both");
  const auto made = link(a, token, id);
  ASSERT_EQ(made.status, 200);
  const auto got = request(b.port(), "GET", path_of(std::string(made.json().at("url").as_string())));
  EXPECT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.body, "on both");
  std::filesystem::remove_all(shared);
}

TEST(ClientConfig, SaysWhatUploadsAreHeldTo) {
  ServerProcess server({{"S3UP_MAX_UPLOAD_BYTES", "10MiB"}, {"S3UP_ALLOWED_TYPES", "image/*,application/pdf"}});
  const auto token = server.create_user_with_token("alice");
  const auto r = request(server.port(), "GET", "/api/config", {{"Authorization", "Bearer " + token}});
  ASSERT_EQ(r.status, 200) << r.body;
  const auto json = r.json().as_object();
  EXPECT_EQ(json.at("max_upload_bytes").as_int64(), 10 * 1024 * 1024);
  EXPECT_EQ(json.at("allowed_types").as_array().size(), 2u);
  EXPECT_EQ(json.at("allowed_types").as_array()[0].as_string(), "image/*");
  EXPECT_TRUE(json.at("quota").is_null());
  EXPECT_EQ(json.at("tus_endpoint").as_string(), "/upload/resumable");
  EXPECT_EQ(request(server.port(), "GET", "/api/config").status, 401);

  ServerProcess quota(std::map<std::string, std::string>{{"S3UP_DEFAULT_QUOTA", "1MiB"}});
  const auto t = quota.create_user_with_token("bob");
  put(quota, t, "a.bin", std::string(1000, 'a'));
  const auto q = request(quota.port(), "GET", "/api/config", {{"Authorization", "Bearer " + t}}).json().as_object();
  EXPECT_EQ(q.at("quota").at("bytes").as_int64(), 1024 * 1024);
  EXPECT_EQ(q.at("quota").at("used").as_int64(), 1000);
}

}  // namespace
}  // namespace s3up::test
