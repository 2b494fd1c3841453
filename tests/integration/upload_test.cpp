// Uploads through the real binary: both forms, sizes from 0 B to 256 MiB,
// hostile names, concurrency, and curl as the README uses it.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <thread>

#include "harness.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;

class Uploads : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess();
    token_ = server_->create_user_with_token("alice");
    user_id_ = server_->database()->find_user("alice")->id;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static std::map<std::string, std::string> auth() { return {{"Authorization", "Bearer " + token_}}; }

  static Response post_form(const std::string& file_name, const std::string& content,
                            const std::string& part_type = "application/octet-stream") {
    auto headers = auth();
    headers["Content-Type"] = Multipart::content_type();
    return request(server_->port(), "POST", "/upload", headers, Multipart::body(file_name, content, part_type));
  }

  // Checks the response fields, the stored bytes and the database row.
  static void expect_stored(const Response& r, const std::string& file_name, std::uint64_t size,
                            const std::string& sha256) {
    ASSERT_EQ(r.status, 201) << r.body;
    const auto j = r.json().as_object();
    const std::string id(j.at("file_id").as_string());
    EXPECT_TRUE(util::is_uuid(id)) << id;
    EXPECT_EQ(id[14], '7') << "not a UUIDv7: " << id;
    EXPECT_EQ(std::string(j.at("file_name").as_string()), file_name);
    EXPECT_EQ(j.at("file_size").to_number<std::uint64_t>(), size);
    EXPECT_EQ(std::string(j.at("sha256").as_string()), sha256);
    EXPECT_FALSE(j.at("content_type").as_string().empty());
    EXPECT_TRUE(std::regex_match(std::string(j.at("upload_time").as_string()),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
        << j.at("upload_time");
    EXPECT_EQ(r.header("location"), "/files/" + id);

    const auto path = server_->objects_dir() / "u" / std::to_string(user_id_) / id;
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
    EXPECT_EQ(std::filesystem::file_size(path), size);
    EXPECT_EQ(file_sha256(path), sha256);

    const auto row = server_->database()->get_upload(id);
    ASSERT_TRUE(row);
    EXPECT_EQ(row->status, db::UploadStatus::complete);
    EXPECT_EQ(row->file_size, size);
    EXPECT_EQ(row->sha256, sha256);
    EXPECT_EQ(row->file_name, file_name);
    EXPECT_EQ(row->user_id, user_id_);
  }

  static ServerProcess* server_;
  static std::string token_;
  static std::int64_t user_id_;
};

ServerProcess* Uploads::server_ = nullptr;
std::string Uploads::token_;
std::int64_t Uploads::user_id_ = 0;

TEST_F(Uploads, MultipartSmallSizes) {
  for (std::uint64_t size : {0ull, 1ull, 1024ull * 1024}) {
    SCOPED_TRACE(size);
    const auto content = ContentStream::make(size, size + 1);
    expect_stored(post_form("data.bin", content), "data.bin", size, util::sha256_hex(content));
  }
}

TEST_F(Uploads, MultipartStreamed256MiB) {
  constexpr std::uint64_t size = 256ull * 1024 * 1024 + 3;
  const auto r = upload_streamed(server_->port(), token_, "big.bin", size, 99);
  expect_stored(r, "big.bin", size, ContentStream::sha256_of(size, 99));
}

TEST_F(Uploads, RawPutWithNameInPath) {
  const auto content = ContentStream::make(300'000, 5);
  auto r = request(server_->port(), "PUT", "/upload/report%20final.pdf", auth(), content);
  expect_stored(r, "report final.pdf", content.size(), util::sha256_hex(content));
  r = request(server_->port(), "PUT", "/upload/empty.txt", auth(), "");
  expect_stored(r, "empty.txt", 0, util::sha256_hex(""));
}

TEST_F(Uploads, RawPutChunkedBody) {
  Connection c(server_->port());
  c.send("PUT /upload/chunked.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
         "\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string all;
  for (int i = 0; i < 20; ++i) {
    const auto piece = ContentStream::make(10'000 + i, i);
    all += piece;
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
    c.send(std::string(size_line) + piece + "\r\n");
  }
  c.send("0\r\n\r\n");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_stored(*r, "chunked.bin", all.size(), util::sha256_hex(all));
}

TEST_F(Uploads, ExpectContinueIsAnsweredBeforeTheBody) {
  const auto content = ContentStream::make(100'000, 7);
  const auto body = Multipart::body("c.bin", content);
  Connection c(server_->port());
  c.send("POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
         "\r\nContent-Type: " + Multipart::content_type() + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_TRUE(c.read_100_continue(5s)) << "no 100 Continue before the body was sent";
  c.send(body);
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_stored(*r, "c.bin", content.size(), util::sha256_hex(content));
}

TEST_F(Uploads, KeepAliveConnectionServesSeveralUploads) {
  Connection c(server_->port());
  for (int i = 0; i < 3; ++i) {
    const auto content = ContentStream::make(1000 * (i + 1), 100 + i);
    c.send("PUT /upload/ka" + std::to_string(i) + ".bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
           "\r\nContent-Length: " + std::to_string(content.size()) + "\r\n\r\n" + content);
    const auto r = c.read_response();
    ASSERT_TRUE(r) << "no response to request " << i;
    expect_stored(*r, "ka" + std::to_string(i) + ".bin", content.size(), util::sha256_hex(content));
  }
}

TEST_F(Uploads, PipelinedRequestsOnOneConnection) {
  // Two uploads and a health check sent back to back before reading anything:
  // each body must end exactly where the next request begins.
  const auto a = ContentStream::make(70'000, 1), b = ContentStream::make(300'000, 2);
  const std::string auth_line = "Authorization: Bearer " + token_ + "\r\n";
  Connection c(server_->port());
  c.send("PUT /upload/a.bin HTTP/1.1\r\nHost: x\r\n" + auth_line + "Content-Length: " + std::to_string(a.size()) +
         "\r\n\r\n" + a + "PUT /upload/b.bin HTTP/1.1\r\nHost: x\r\n" + auth_line +
         "Content-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_stored(*r, "a.bin", a.size(), util::sha256_hex(a));
  r = c.read_response();
  ASSERT_TRUE(r);
  expect_stored(*r, "b.bin", b.size(), util::sha256_hex(b));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(Uploads, ExtraFormFieldsAreIgnored) {
  const auto content = ContentStream::make(5000, 8);
  const std::string b = Multipart::boundary;
  const std::string body = "--" + b + "\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nmy title\r\n" +
                           Multipart::head("x.bin") + content + "\r\n--" + b +
                           "\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nmore\r\n--" + b + "--\r\n";
  auto headers = auth();
  headers["Content-Type"] = Multipart::content_type();
  expect_stored(request(server_->port(), "POST", "/upload", headers, body), "x.bin", content.size(),
                util::sha256_hex(content));
}

TEST_F(Uploads, UnicodeAndTraversalNamesAreMetadataOnly) {
  const auto before = server_->stored_files().size();
  for (const std::string name : {"\xD1\x84\xD0\xBE\xD1\x82\xD0\xBE \xF0\x9F\x98\x80.jpg", "../../etc/passwd",
                                 "..\\..\\windows\\win.ini", "/absolute/path.txt", ".hidden"}) {
    SCOPED_TRACE(name);
    const auto content = ContentStream::make(64, name.size());
    expect_stored(post_form(name, content), name, content.size(), util::sha256_hex(content));
  }
  // Every object lives at objects/u/<user>/<uuid>, whatever the client called it.
  const auto files = server_->stored_files();
  EXPECT_EQ(files.size(), before + 5);
  for (const auto& f : files) {
    EXPECT_EQ(f.parent_path(), server_->objects_dir() / "u" / std::to_string(user_id_));
    EXPECT_TRUE(util::is_uuid(f.filename().string())) << f;
  }
  EXPECT_FALSE(std::filesystem::exists(server_->dir() / "etc"));
  EXPECT_FALSE(std::filesystem::exists(server_->objects_dir() / "etc"));
}

TEST_F(Uploads, ContentTypeIsTheClientsOrSniffed) {
  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89", 33);
  auto r = post_form("pixel", png, "application/octet-stream");
  ASSERT_EQ(r.status, 201);
  EXPECT_EQ(r.json().at("content_type").as_string(), "image/png");
  r = post_form("table.csv", "a,b\n1,2\n", "text/csv");
  ASSERT_EQ(r.status, 201);
  EXPECT_EQ(r.json().at("content_type").as_string(), "text/csv");
  r = request(server_->port(), "PUT", "/upload/doc", auth(), "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n");
  ASSERT_EQ(r.status, 201);
  EXPECT_EQ(r.json().at("content_type").as_string(), "application/pdf");
}

TEST_F(Uploads, FiftyConcurrentUploads) {
  const auto complete_before = server_->database()->count_uploads(db::UploadStatus::complete);
  constexpr int kClients = 50;
  constexpr std::uint64_t kSize = 1024 * 1024 + 17;
  std::vector<Response> responses(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back(
        [&, i] { responses[i] = upload_streamed(server_->port(), token_, "c" + std::to_string(i), kSize, 1000 + i); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    SCOPED_TRACE(i);
    expect_stored(responses[i], "c" + std::to_string(i), kSize, ContentStream::sha256_of(kSize, 1000 + i));
  }
  EXPECT_EQ(server_->database()->count_uploads(db::UploadStatus::complete), complete_before + kClients);
}

TEST_F(Uploads, CurlFormAndPutAsInTheReadme) {
  const auto file = server_->dir() / "photo.jpg";
  const auto content = ContentStream::make(2 * 1024 * 1024 + 5, 77);
  { std::ofstream(file, std::ios::binary) << content; }
  const auto out = server_->dir() / "curl.json";
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port());
  const std::string auth_header = "-H 'Authorization: Bearer " + token_ + "'";

  std::string cmd =
      "curl -sS -o " + out.string() + " -F file=@" + file.string() + " " + auth_header + " " + url + "/upload";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out);
  Response r;
  r.status = 201;
  r.body.assign(std::istreambuf_iterator<char>(in), {});
  const auto j = r.json();
  EXPECT_EQ(j.at("file_name").as_string(), "photo.jpg");
  EXPECT_EQ(j.at("sha256").as_string(), util::sha256_hex(content));
  EXPECT_EQ(j.at("file_size").to_number<std::uint64_t>(), content.size());

  cmd = "curl -sS -o " + out.string() + " -T " + file.string() + " " + auth_header + " " + url + "/upload/";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in2(out);
  r.body.assign(std::istreambuf_iterator<char>(in2), {});
  const auto j2 = r.json();
  EXPECT_EQ(j2.at("file_name").as_string(), "photo.jpg");
  EXPECT_EQ(j2.at("sha256").as_string(), util::sha256_hex(content));
}

TEST_F(Uploads, HealthzNeedsNoToken) {
  const auto r = request(server_->port(), "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json().at("status").as_string(), "ok");
}

TEST_F(Uploads, AccessLogHasRequestsButNeverTheToken) {
  ASSERT_EQ(post_form("logged.txt", "hello").status, 201);
  request(server_->port(), "GET", "/healthz", {{"X-Request-Id", "trace-me-123"}});
  // A request's access line is written after its response, so wait for both.
  EXPECT_TRUE(eventually([&] { return server_->log().find("req=trace-me-123") != std::string::npos; }, 5s));
  EXPECT_TRUE(eventually([&] { return server_->log().find("POST /upload 201") != std::string::npos; }, 5s));
  const auto log = server_->log();
  EXPECT_EQ(log.find(token_), std::string::npos) << "the token appears in the server log";
  EXPECT_EQ(log.find(token_.substr(4, 20)), std::string::npos);
}

}  // namespace
}  // namespace s3up::test
