// Uploads through the real binary into a real S3 server (radosgw): sizes
// around the part boundary, a large file, concurrency, and failures that must
// leave no multipart upload behind.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include <thread>

#include <boost/url/parse.hpp>

#include "../support/counting_proxy.hpp"
#include "../support/fake_metadata.hpp"
#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t MiB = 1024 * 1024;

class S3Uploads : public ::testing::Test {
 protected:
  void SetUp() override {
    peer_ = std::make_unique<S3Peer>();
    server_ = std::make_unique<ServerProcess>(env());
    token_ = server_->create_user_with_token("alice");
    user_id_ = server_->database()->find_user("alice")->id;
  }
  virtual std::map<std::string, std::string> env() { return peer_->server_env(); }

  void expect_stored(const Response& r, std::uint64_t size, const std::string& sha256) {
    ASSERT_EQ(r.status, 201) << r.body << "\n" << server_->log();
    const auto j = r.json();
    EXPECT_EQ(j.at("file_size").to_number<std::uint64_t>(), size);
    EXPECT_EQ(j.at("sha256").as_string(), sha256);
    const std::string key = "u/" + std::to_string(user_id_) + "/" + std::string(j.at("file_id").as_string());
    EXPECT_EQ(peer_->object_size(key), size);
    EXPECT_EQ(peer_->object_sha256(key), sha256) << "bytes read back from the store differ";
    const auto row = server_->database()->get_upload(std::string(j.at("file_id").as_string()));
    ASSERT_TRUE(row);
    EXPECT_EQ(row->status, db::UploadStatus::complete);
  }

  void expect_no_multipart_uploads() {
    EXPECT_TRUE(eventually([&] { return peer_->multipart_uploads().empty(); }, 30s))
        << peer_->multipart_uploads().size() << " multipart upload(s) left in the bucket";
  }

  std::unique_ptr<S3Peer> peer_;
  std::unique_ptr<ServerProcess> server_;
  std::string token_;
  std::int64_t user_id_ = 0;
};

TEST_F(S3Uploads, SizesAroundThePartBoundary) {
  // 0 B and 1 B (single PutObject), exactly one 5 MiB part (still a single
  // PutObject), one part + 1 byte (multipart: 5 MiB + 1 B), several parts.
  for (std::uint64_t size : std::vector<std::uint64_t>{0, 1, 5 * MiB, 5 * MiB + 1, 23 * MiB + 5}) {
    SCOPED_TRACE(size);
    expect_stored(upload_streamed(server_->port(), token_, "f.bin", size, size + 3), size,
                  ContentStream::sha256_of(size, size + 3));
  }
  // raw PUT too
  const auto content = ContentStream::make(6 * MiB, 9);
  expect_stored(request(server_->port(), "PUT", "/upload/raw.bin", {{"Authorization", "Bearer " + token_}}, content),
                content.size(), util::sha256_hex(content));
  EXPECT_TRUE(peer_->multipart_uploads().empty());
}

TEST_F(S3Uploads, OneGibibyte) {
  constexpr std::uint64_t size = 1024 * MiB + 12345;
  expect_stored(upload_streamed(server_->port(), token_, "big.bin", size, 4242), size,
                ContentStream::sha256_of(size, 4242));
}

TEST_F(S3Uploads, FiftyConcurrentUploads) {
  constexpr int kClients = 50;
  constexpr std::uint64_t kSize = 6 * MiB + 100;  // two parts each
  std::vector<Response> responses(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] { responses[i] = upload_streamed(server_->port(), token_, "c.bin", kSize, 500 + i); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    SCOPED_TRACE(i);
    expect_stored(responses[i], kSize, ContentStream::sha256_of(kSize, 500 + i));
  }
  EXPECT_TRUE(peer_->multipart_uploads().empty());
}

TEST_F(S3Uploads, ClientDisconnectAbortsTheMultipartUpload) {
  {
    Connection c(server_->port());
    const std::string head = Multipart::head("gone.bin");
    c.send("POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ + "\r\nContent-Type: " +
           Multipart::content_type() + "\r\nContent-Length: " + std::to_string(30 * MiB) + "\r\n\r\n" + head);
    c.send(ContentStream::make(14 * MiB, 1));
    // the multipart upload exists once a part has gone out
    ASSERT_TRUE(eventually([&] { return !peer_->multipart_uploads().empty(); }, 20s));
    auto db = server_->database();
    ASSERT_TRUE(eventually([&] {
      auto rows = db->count_uploads(db::UploadStatus::pending);
      return rows == 1;
    }));
  }
  expect_no_multipart_uploads();
  auto db = server_->database();
  EXPECT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::failed) == 1; }));
  EXPECT_EQ(db->count_uploads(db::UploadStatus::complete), 0);
}

class S3UploadsWithLimit : public S3Uploads {
  std::map<std::string, std::string> env() override {
    auto e = peer_->server_env();
    e["S3UP_MAX_UPLOAD_BYTES"] = "12MiB";
    return e;
  }
};

// metrics_listen: /metrics moves to a listener of its own, and the metrics
// name every S3 operation an upload sent.
class S3UploadsWithMetricsListener : public S3Uploads {
 protected:
  std::map<std::string, std::string> env() override {
    auto e = peer_->server_env();
    metrics_port_ = free_port();
    e["S3UP_METRICS_LISTEN"] = "127.0.0.1:" + std::to_string(metrics_port_);
    e["S3UP_PART_SIZE"] = "5MiB";
    return e;
  }
  unsigned short metrics_port_ = 0;
};

TEST_F(S3UploadsWithMetricsListener, CountsEachS3OperationOnItsOwnListener) {
  const std::uint64_t size = 11 * MiB;  // three parts
  expect_stored(upload_streamed(server_->port(), token_, "big.bin", size, 77), size, ContentStream::sha256_of(size, 77));
  const std::string small = "small";
  expect_stored(request(server_->port(), "PUT", "/upload/s.txt", {{"Authorization", "Bearer " + token_}}, small),
                small.size(), util::sha256_hex(small));
  EXPECT_EQ(request(server_->port(), "GET", "/metrics").status, 404) << "metrics left on the main listener";
  const auto r = request(metrics_port_, "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  const auto& m = r.body;
  const auto count = [&](const std::string& operation, const std::string& code) {
    return metric_sample(m, "s3uploader_s3_requests_total{operation=\"" + operation + "\",code=\"" + code + "\"}");
  };
  EXPECT_EQ(count("CreateMultipartUpload", "200"), 1) << m;
  EXPECT_EQ(count("UploadPart", "200"), 3) << m;
  EXPECT_EQ(count("CompleteMultipartUpload", "200"), 1) << m;
  EXPECT_EQ(count("PutObject", "200"), 1) << m;
  EXPECT_EQ(metric_sample(m, R"(s3uploader_s3_request_duration_seconds_count{operation="UploadPart"})"), 3) << m;
  EXPECT_EQ(metric_sample(m, R"(s3uploader_upload_bytes_total{store="s3"})"), size + small.size()) << m;
  EXPECT_EQ(metric_sample(m, R"(s3uploader_uploads_total{kind="form",outcome="complete"})"), 1) << m;
  EXPECT_EQ(metric_sample(m, R"(s3uploader_uploads_total{kind="put",outcome="complete"})"), 1) << m;
  // Every operation named is one the S3 client knows by its API name.
  std::istringstream lines(m);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.starts_with("s3uploader_s3_requests_total{")) continue;
    EXPECT_TRUE(std::regex_search(line, std::regex(R"(operation="[A-Z][A-Za-z0-9]+")"))) << line;
  }
}

TEST_F(S3UploadsWithLimit, TooLargeMidBodyAbortsTheMultipartUpload) {
  Connection c(server_->port());
  c.send("PUT /upload/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
         "\r\nTransfer-Encoding: chunked\r\n\r\n");
  const std::string piece(1024 * 1024, 'z');
  for (int i = 0; i < 20; ++i) {
    if (!c.send("100000\r\n" + piece + "\r\n")) break;
  }
  const auto r = c.read_response(30s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413) << r->body;
  expect_no_multipart_uploads();
  auto db = server_->database();
  EXPECT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::failed) == 1; }));
  EXPECT_EQ(db->count_uploads(db::UploadStatus::complete), 0);
}

// No keys in the environment: the service gets temporary credentials from
// EC2 instance metadata (IMDSv2, a fake on loopback handing out the peer's
// keys) and fetches new ones when they near expiry, mid-upload included.
class S3UploadsWithInstanceRole : public S3Uploads {
 protected:
  std::map<std::string, std::string> env() override {
    imds_.fixed_key = peer_->access_key();
    imds_.fixed_secret = peer_->secret_key();
    imds_.lifetime = 4 * testing::kMinute;  // inside the refresh window: fetched again on each use
    auto e = peer_->server_env();
    e.erase("AWS_ACCESS_KEY_ID");
    e.erase("AWS_SECRET_ACCESS_KEY");
    e["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent";
    e["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds_.server.url();
    return e;
  }
  testing::FakeImds imds_;
};

TEST_F(S3UploadsWithInstanceRole, UploadsWithRefreshedTemporaryCredentials) {
  const std::uint64_t size = 12 * MiB;  // three parts: several signed requests
  expect_stored(upload_streamed(server_->port(), token_, "role.bin", size, 7), size, ContentStream::sha256_of(size, 7));
  EXPECT_GE(imds_.fetches.load(), 2) << "credentials were not refreshed";
  EXPECT_EQ(server_->log().find(peer_->secret_key()), std::string::npos) << "a secret in the log";
  imds_.broken = true;  // still valid for minutes: uploads go on
  expect_stored(upload_streamed(server_->port(), token_, "role2.bin", 1 * MiB, 8), 1 * MiB,
                ContentStream::sha256_of(1 * MiB, 8));
}

TEST_F(S3Uploads, TheUploadIdIsOnThePendingRow) {
  Connection c(server_->port());
  c.send("PUT /upload/slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
         "\r\nContent-Length: " + std::to_string(20 * MiB) + "\r\n\r\n");
  c.send(ContentStream::make(11 * MiB, 2));
  ASSERT_TRUE(eventually([&] { return peer_->multipart_uploads().size() == 1; }, 20s));
  const auto in_store = peer_->multipart_uploads().front();
  auto db = server_->database();
  // A crash now would leave this row for the janitor, who needs the store's id.
  ASSERT_TRUE(eventually([&] {
    const auto rows = db->stale_pending(util::now_micros() + 1'000'000, 10);
    return rows.size() == 1 && rows[0].store_upload_id == in_store.upload_id;
  })) << "pending row does not carry the multipart upload id "
      << in_store.upload_id;
  EXPECT_EQ("objects/" + db->stale_pending(util::now_micros() + 1'000'000, 10)[0].storage_key, in_store.key);
  c.close();
  expect_no_multipart_uploads();
}

// The store acts on a request and its answer never arrives: the service
// cannot know whether the object exists. Whatever it answers its client, the
// record and the bucket must agree afterwards: a 201 with the object stored,
// or an error with no object, no multipart upload and a failed row.
class S3UploadsWithLostAnswers : public S3Uploads {
 protected:
  std::map<std::string, std::string> env() override {
    auto env = peer_->server_env();
    const auto endpoint = boost::urls::parse_uri(env.at("S3UP_S3_ENDPOINT")).value();
    proxy_ = std::make_unique<testing::CountingProxy>(std::string(endpoint.host()),
                                                      static_cast<unsigned short>(endpoint.port_number()));
    env["S3UP_S3_ENDPOINT"] = proxy_->url();
    return env;
  }

  void expect_failed_and_nothing_stored(const Response& r) {
    EXPECT_EQ(r.status, 503) << r.body;
    auto db = server_->database();
    EXPECT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::failed) == 1; })) << server_->log();
    EXPECT_EQ(db->count_uploads(db::UploadStatus::pending), 0);
    EXPECT_TRUE(db->uploads_with_leftovers(10).empty());
    EXPECT_TRUE(peer_->keys().empty()) << "an object is stored for a failed upload\n" << server_->log();
    expect_no_multipart_uploads();
  }

  std::unique_ptr<testing::CountingProxy> proxy_;
};

constexpr int kEveryAttempt = 100;  // more than the S3 client's attempts at one request

// One answer lost: the retry finds the upload completed, and the upload is stored.
TEST_F(S3UploadsWithLostAnswers, OneToCompleteMultipartUpload) {
  proxy_->lose_answers_to("POST", "uploadId=");
  const std::uint64_t size = 12 * MiB + 3;
  expect_stored(upload_streamed(server_->port(), token_, "lost.bin", size, 21), size,
                ContentStream::sha256_of(size, 21));
  EXPECT_EQ(proxy_->answers_lost(), 1);
  expect_no_multipart_uploads();
}

// Every answer lost: the store holds the object the service gave up on.
// The abort then removes it, or the failed record would have an orphan.
TEST_F(S3UploadsWithLostAnswers, EveryOneToCompleteMultipartUpload) {
  proxy_->lose_answers_to("POST", "uploadId=", kEveryAttempt);
  expect_failed_and_nothing_stored(upload_streamed(server_->port(), token_, "lost.bin", 12 * MiB + 3, 21));
  EXPECT_GT(proxy_->answers_lost(), 1);
}

// Every answer to CreateMultipartUpload lost: the store made an upload for
// each attempt, and the service never learned one id. Its abort finds them
// by the key (the key is the upload's alone) and aborts every one: none is
// orphaned.
TEST_F(S3UploadsWithLostAnswers, EveryOneToCreateMultipartUpload) {
  proxy_->lose_answers_to("POST", "?uploads", kEveryAttempt);
  expect_failed_and_nothing_stored(upload_streamed(server_->port(), token_, "lost.bin", 12 * MiB + 3, 24));
  EXPECT_GT(proxy_->answers_lost(), 1);
}

TEST_F(S3UploadsWithLostAnswers, EveryOneToPutObject) {
  proxy_->lose_answers_to("PUT", "/u/", kEveryAttempt);  // a small file is one PutObject
  expect_failed_and_nothing_stored(upload_streamed(server_->port(), token_, "lost.bin", 1 * MiB, 22));
  EXPECT_GT(proxy_->answers_lost(), 1);
}

// A tus upload whose every byte is stored but whose completion failed: the
// offset a HEAD reports is the length only once the upload is complete,
// since a client that sees it (tus-js-client, push) stops there.
TEST_F(S3UploadsWithLostAnswers, EveryOneToCompleteATusUpload) {
  const std::uint64_t size = 12 * MiB + 5;
  const std::map<std::string, std::string> tus = {{"Authorization", "Bearer " + token_}, {"Tus-Resumable", "1.0.0"}};
  auto headers = tus;
  headers["Upload-Length"] = std::to_string(size);
  const auto created = request(server_->port(), "POST", "/upload/resumable", headers);
  ASSERT_EQ(created.status, 201) << created.body;
  const auto location = created.header("location");
  const std::string path = location.substr(location.find("/upload/resumable/"));
  const std::string id = path.substr(path.rfind('/') + 1);

  proxy_->lose_answers_to("POST", "uploadId=", kEveryAttempt);
  headers = tus;
  headers["Upload-Offset"] = "0";
  headers["Content-Type"] = "application/offset+octet-stream";
  const auto content = ContentStream::make(size, 23);
  const auto patched = request(server_->port(), "PATCH", path, headers, content);
  EXPECT_EQ(patched.status, 503) << patched.body;
  EXPECT_GT(proxy_->answers_lost(), 1);
  auto db = server_->database();
  EXPECT_EQ(db->get_upload(id)->status, db::UploadStatus::pending);

  proxy_->stop_losing_answers();  // the store answers again
  const auto head = request(server_->port(), "HEAD", path, tus);
  ASSERT_EQ(head.status, 200) << server_->log();
  EXPECT_EQ(head.header("upload-offset"), std::to_string(size));
  EXPECT_EQ(db->get_upload(id)->status, db::UploadStatus::complete) << "the offset says done, the record does not";
  const auto key = "u/" + std::to_string(user_id_) + "/" + id;
  EXPECT_EQ(peer_->object_sha256(key), util::sha256_hex(content));
  EXPECT_EQ(db->get_upload(id)->sha256, util::sha256_hex(content));
  expect_no_multipart_uploads();
}

}  // namespace
}  // namespace s3up::test
