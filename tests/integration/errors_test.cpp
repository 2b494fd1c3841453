// Every way a request can be refused: the right status, the JSON error shape,
// nothing left behind, and the server keeps serving.
#include <gtest/gtest.h>

#include <thread>

#include "harness.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;

void expect_error(const Response& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  ASSERT_EQ(r.header("content-type"), "application/json") << r.body;
  const auto j = r.json();
  EXPECT_EQ(j.at("error").at("code").as_string(), code) << r.body;
  EXPECT_FALSE(j.at("error").at("message").as_string().empty());
}

void expect_still_serving(const ServerProcess& s) {
  EXPECT_EQ(request(s.port(), "GET", "/healthz").status, 200) << "server stopped serving; log:\n" << s.log();
}

// No object (not even a temporary file) and no pending or complete row.
void expect_nothing_left(const ServerProcess& s) {
  EXPECT_TRUE(eventually([&] { return s.stored_files().empty(); }, 5s)) << s.stored_files().size() << " file(s) left";
  auto db = s.database();
  EXPECT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::pending) == 0; }, 5s));
  EXPECT_EQ(db->count_uploads(db::UploadStatus::complete), 0);
}

class Errors : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        std::map<std::string, std::string>{{"S3UP_MAX_UPLOAD_BYTES", "1MiB"}, {"S3UP_MAX_HEADER_BYTES", "8KiB"}});
    token_ = server_->create_user_with_token("bob");
  }
  std::map<std::string, std::string> form_headers() const {
    return {{"Authorization", "Bearer " + token_}, {"Content-Type", Multipart::content_type()}};
  }
  std::unique_ptr<ServerProcess> server_;
  std::string token_;
};

TEST_F(Errors, EveryAuthFailureIs401WithBearerChallenge) {
  // a revoked token
  const std::string revoked = server_->cli({"token", "create", "bob"}).out.substr(0, 47);
  const auto list = server_->cli({"token", "list", "bob"}).out;
  const auto tokens = server_->database()->list_tokens(std::nullopt);
  ASSERT_EQ(tokens.size(), 2u);
  ASSERT_EQ(server_->cli({"token", "revoke", tokens[1].id}).exit_code, 0);
  EXPECT_NE(server_->cli({"token", "list"}).out.find(tokens[1].id), std::string::npos);
  // an expired token
  const std::string expired = server_->cli({"token", "create", "bob", "--expires-in", "1ms"}).out.substr(0, 47);
  std::this_thread::sleep_for(20ms);

  const std::vector<std::pair<std::string, std::optional<std::string>>> cases = {
      {"missing header", std::nullopt},
      {"basic scheme", "Basic Ym9iOnNlY3JldA=="},
      {"empty bearer", "Bearer "},
      {"garbage token", "Bearer not-a-token"},
      {"unknown token", "Bearer s3u_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
      {"revoked token", "Bearer " + revoked},
      {"expired token", "Bearer " + expired},
  };
  for (const auto& [what, header] : cases) {
    SCOPED_TRACE(what);
    std::map<std::string, std::string> headers{{"Content-Type", Multipart::content_type()}};
    if (header) headers["Authorization"] = *header;
    auto r = request(server_->port(), "POST", "/upload", headers, Multipart::body("a.txt", "hello"));
    expect_error(r, 401, "unauthorized");
    EXPECT_TRUE(r.header("www-authenticate").starts_with("Bearer")) << r.header("www-authenticate");
    headers.erase("Content-Type");
    r = request(server_->port(), "PUT", "/upload/a.txt", headers, "hello");
    expect_error(r, 401, "unauthorized");
  }
  expect_nothing_left(*server_);
  expect_still_serving(*server_);
  EXPECT_EQ(server_->log().find(revoked), std::string::npos);
}

TEST_F(Errors, TooLargeByContentLengthIsRefusedBeforeTheBody) {
  Connection c(server_->port());
  c.send("PUT /upload/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
         "\r\nContent-Length: 2097152\r\nExpect: 100-continue\r\n\r\n");
  const auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->saw_100_continue) << "asked for the body it was going to refuse";
  expect_error(*r, 413, "file_too_large");

  const std::string big_form = Multipart::body("big.bin", std::string(3 * 1024 * 1024, 'x'));
  expect_error(request(server_->port(), "POST", "/upload", form_headers(), big_form), 413, "file_too_large");
  expect_nothing_left(*server_);
  EXPECT_EQ(server_->database()->count_uploads(db::UploadStatus::failed), 0)
      << "a row was written for a refused upload";
  expect_still_serving(*server_);
}

TEST_F(Errors, TooLargeMidBodyWhenTheLengthIsUnknown) {
  Connection c(server_->port());
  c.send("PUT /upload/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token_ +
         "\r\nTransfer-Encoding: chunked\r\n\r\n");
  const std::string piece(64 * 1024, 'z');
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
  for (int i = 0; i < 40; ++i) {  // 2.5 MiB, well past the 1 MiB limit
    if (!c.send(std::string(size_line) + piece + "\r\n")) break;
  }
  const auto r = c.read_response(10s);
  ASSERT_TRUE(r) << "no 413 response";
  expect_error(*r, 413, "file_too_large");
  expect_nothing_left(*server_);
  EXPECT_EQ(server_->database()->count_uploads(db::UploadStatus::failed), 1);
  expect_still_serving(*server_);
}

TEST_F(Errors, TooLargeMidBodyForAFormJustOverTheLimit) {
  // Content-Length is within the framing allowance, so the count decides.
  const std::string body = Multipart::body("edge.bin", std::string(1024 * 1024 + 1, 'e'));
  expect_error(request(server_->port(), "POST", "/upload", form_headers(), body), 413, "file_too_large");
  expect_nothing_left(*server_);
  // exactly at the limit is fine
  const std::string ok = Multipart::body("edge.bin", std::string(1024 * 1024, 'e'));
  EXPECT_EQ(request(server_->port(), "POST", "/upload", form_headers(), ok).status, 201);
}

TEST_F(Errors, MalformedRequestsAre400Or415) {
  auto headers = form_headers();
  // not multipart at all
  auto h = headers;
  h["Content-Type"] = "application/json";
  expect_error(request(server_->port(), "POST", "/upload", h, "{}"), 415, "unsupported_media_type");
  // multipart without a boundary
  h["Content-Type"] = "multipart/form-data";
  expect_error(request(server_->port(), "POST", "/upload", h, "x"), 400, "invalid_multipart");
  // truncated multipart (no closing boundary)
  expect_error(request(server_->port(), "POST", "/upload", headers, Multipart::head("t.bin") + "abc"), 400,
               "invalid_multipart");
  // garbage in place of multipart
  expect_error(request(server_->port(), "POST", "/upload", headers, "this is not multipart"), 400, "invalid_multipart");
  // a form without a file field
  const std::string b = Multipart::boundary;
  expect_error(request(server_->port(), "POST", "/upload", headers,
                       "--" + b + "\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx\r\n--" + b + "--\r\n"),
               400, "missing_file");
  // a file field under another name
  expect_error(request(server_->port(), "POST", "/upload", headers,
                       "--" + b + "\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a\"\r\n\r\nx\r\n--" +
                           b + "--\r\n"),
               400, "missing_file");
  // file names with control characters or invalid UTF-8
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer " + token_}};
  expect_error(request(server_->port(), "PUT", "/upload/a%00b", auth, "x"), 400, "invalid_file_name");
  expect_error(request(server_->port(), "PUT", "/upload/a%0Ab", auth, "x"), 400, "invalid_file_name");
  expect_error(request(server_->port(), "PUT", "/upload/%FF%FE", auth, "x"), 400, "invalid_file_name");
  expect_error(request(server_->port(), "PUT", "/upload/" + std::string(1100, 'n'), auth, "x"), 400,
               "invalid_file_name");
  expect_nothing_left(*server_);
  expect_still_serving(*server_);
}

TEST_F(Errors, UnknownRoutesAndMethods) {
  expect_error(request(server_->port(), "GET", "/nope"), 404, "not_found");
  auto r = request(server_->port(), "GET", "/upload", {{"Authorization", "Bearer " + token_}});
  expect_error(r, 405, "method_not_allowed");
  EXPECT_EQ(r.header("allow"), "POST");
  expect_still_serving(*server_);
}

TEST_F(Errors, OversizedHeadersAre431) {
  const auto r = request(server_->port(), "GET", "/healthz", {{"X-Padding", std::string(10 * 1024, 'p')}});
  expect_error(r, 431, "headers_too_large");
  expect_still_serving(*server_);
}

TEST_F(Errors, ClientDisconnectMidBodyLeavesNothing) {
  for (bool form : {true, false}) {
    SCOPED_TRACE(form ? "form" : "raw");
    {
      Connection c(server_->port());
      const std::string head = form ? Multipart::head("gone.bin") : "";
      c.send(std::string(form ? "POST /upload" : "PUT /upload/gone.bin") + " HTTP/1.1\r\nHost: x\r\n" +
             "Authorization: Bearer " + token_ +
             "\r\nContent-Type: " + (form ? Multipart::content_type() : "application/octet-stream") +
             "\r\nContent-Length: 900000\r\n\r\n" + head);
      c.send(std::string(600 * 1024, 'd'));
      // wait until the server has the row, then vanish
      auto db = server_->database();
      ASSERT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::pending) == 1; }, 5s));
    }
    auto db = server_->database();
    EXPECT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::pending) == 0; }, 10s));
    expect_nothing_left(*server_);
  }
  EXPECT_EQ(server_->database()->count_uploads(db::UploadStatus::failed), 2);
  expect_still_serving(*server_);
}

}  // namespace
}  // namespace s3up::test
