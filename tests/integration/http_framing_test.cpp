// HTTP/1.1 framing and conformance on the wire (RFC 9112, RFC 9110), with raw
// sockets against the real binary: where a body ends, which headers may
// appear once only, what HEAD and 304 carry, which request targets parse.
// A mistake here is request smuggling or a desynchronised connection, so
// each case also checks what the connection does next.
#include <gtest/gtest.h>

#include <cstdio>

#include <fmt/format.h>

#include "harness.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;

// The connection still parses requests where they begin: one more works.
void expect_in_step(Connection& conn) {
  conn.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto next = conn.read_response(5s);
  ASSERT_TRUE(next) << "no answer to the next request";
  EXPECT_EQ(next->status, 200);
}

class HttpFraming : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(std::map<std::string, std::string>{{"S3UP_MAX_HEADER_BYTES", "4KiB"}});
    token_ = server_->create_user_with_token("mallory");
  }
  std::string auth() const { return "Authorization: Bearer " + token_ + "\r\n"; }
  // `request` gets a 400, the connection closes, and nothing is stored.
  void expect_refused_and_closed(const std::string& request) {
    Connection conn(server_->port());
    conn.send(request);
    const auto r = conn.read_response(5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_TRUE(conn.closed_by_peer(5s));
    EXPECT_EQ(stored_uploads(), 0u);
  }
  std::size_t stored_uploads() const {
    return static_cast<std::size_t>(server_->database()->count_uploads(db::UploadStatus::complete));
  }
  std::unique_ptr<ServerProcess> server_;
  std::string token_;
};

// The attack as found: a Transfer-Encoding we do not take as chunked used to
// mean "no body", and the body was then read as the next request.
TEST_F(HttpFraming, TransferEncodingThatIsNotFinalChunkedIsRefusedAndNothingIsSmuggled) {
  const std::string smuggled = "GET /files?limit=1 HTTP/1.1\r\nHost: x\r\n" + auth() + "Connection: close\r\n\r\n";
  struct Case {
    std::string coding;
    int status;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"xchunked", 400, "bad_request"},
      {"chunked, gzip", 400, "bad_request"},
      {"\"chunked\"", 400, "bad_request"},
      {"chunked, chunked", 400, "bad_request"},
      {"gzip", 400, "bad_request"},
      {"chunk", 400, "bad_request"},
      {"gzip, chunked", 501, "not_implemented"},
      {"identity, chunked", 501, "not_implemented"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.coding);
    Connection conn(server_->port());
    conn.send("PUT /upload/x HTTP/1.1\r\nHost: x\r\n" + auth() + "Transfer-Encoding: " + c.coding + "\r\n\r\n" +
              smuggled);
    const auto r = conn.read_response(5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, c.status) << r->body;
    EXPECT_EQ(r->json().at("error").at("code").as_string(), c.code);
    EXPECT_EQ(r->header("connection"), "close");
    EXPECT_TRUE(conn.closed_by_peer(5s));
    EXPECT_EQ(conn.unread(), "") << "a second response: the body was read as a request";
  }
  // Two Transfer-Encoding fields make one list: "gzip" then "chunked".
  Connection split(server_->port());
  split.send("PUT /upload/x HTTP/1.1\r\nHost: x\r\n" + auth() +
             "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  const auto r = split.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 501);
  EXPECT_EQ(stored_uploads(), 0u);
  // A refused upload's name (here, a pasted token) stays out of the log too.
  Connection named(server_->port());
  named.send("PUT /upload/" + token_ + " HTTP/1.1\r\nHost: x\r\n" + auth() + "Transfer-Encoding: gzip\r\n\r\n");
  ASSERT_TRUE(named.read_response(5s));
  EXPECT_TRUE(eventually([&] { return server_->log().find("PUT /upload/... 400") != std::string::npos; }, 5s))
      << server_->log();
  EXPECT_EQ(server_->log().find(token_), std::string::npos);
}

TEST_F(HttpFraming, ChunkedInAnyCaseIsChunked) {
  for (const std::string coding : {"Chunked", "CHUNKED", " chunked "}) {
    SCOPED_TRACE(coding);
    Connection conn(server_->port());
    conn.send("PUT /upload/case.txt HTTP/1.1\r\nHost: x\r\n" + auth() + "Transfer-Encoding:" + coding +
              "\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    const auto r = conn.read_response(5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 201) << r->body;
    EXPECT_EQ(r->json().at("file_size").as_int64(), 11);
    EXPECT_EQ(r->json().at("sha256").as_string(), util::sha256_hex("hello world"));
    // The connection stays in step: a second request on it works.
    expect_in_step(conn);
  }
}

TEST_F(HttpFraming, Http10WithTransferEncodingIs400AndCloses) {
  expect_refused_and_closed("PUT /upload/old.txt HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n" + auth() +
                            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
}

TEST_F(HttpFraming, TransferEncodingBesideContentLengthIs400) {
  expect_refused_and_closed("PUT /upload/both.txt HTTP/1.1\r\nHost: x\r\n" + auth() +
                            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
}

TEST_F(HttpFraming, HeadersThatMustAppearOnceAreRefusedWhenRepeated) {
  const std::string other = server_->create_user_with_token("bob");
  struct Case {
    std::string what, request;
  };
  const std::vector<Case> refused = {
      {"two Authorization headers",
       "GET /files HTTP/1.1\r\nHost: x\r\n" + auth() + "Authorization: Bearer " + other + "\r\n\r\n"},
      {"two Host headers", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"no Host in HTTP/1.1", "GET /healthz HTTP/1.1\r\n\r\n"},
      {"Content-Lengths that differ",
       "PUT /upload/cl.txt HTTP/1.1\r\nHost: x\r\n" + auth() + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
  };
  for (const auto& c : refused) {
    SCOPED_TRACE(c.what);
    Connection conn(server_->port());
    conn.send(c.request);
    const auto r = conn.read_response(5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_EQ(r->json().at("error").at("code").as_string(), "bad_request");
    EXPECT_TRUE(conn.closed_by_peer(5s));
  }
  // Allowed: the same Content-Length twice, and HTTP/1.0 without Host.
  Connection same(server_->port());
  same.send("PUT /upload/same.txt HTTP/1.1\r\nHost: x\r\n" + auth() +
            "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
  const auto r = same.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  Connection old(server_->port());
  old.send("GET /healthz HTTP/1.0\r\n\r\n");
  const auto h = old.read_response(5s);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST_F(HttpFraming, HeadCarriesTheHeadersOfGetAndNeverABody) {
  const auto uploaded =
      request(server_->port(), "PUT", "/upload/head.txt", {{"Authorization", "Bearer " + token_}}, "0123456789");
  ASSERT_EQ(uploaded.status, 201);
  const std::string id(uploaded.json().at("file_id").as_string());
  const std::vector<std::pair<std::string, std::string>> targets = {
      {"/healthz", ""},
      {"/files", auth()},
      {"/files/" + id, auth()},
      {"/files/" + id + "/content", auth()},
      {"/files", ""},                                                  // 401
      {"/files/00000000-0000-7000-8000-000000000000", auth()},         // 404
      {"/files/" + id + "/content", auth() + "Range: bytes=50-\r\n"},  // 416
      {"/nowhere", auth()},                                            // 404
  };
  // One keep-alive connection for all: a body after any HEAD answer would be
  // read as the next response's status line.
  Connection conn(server_->port());
  for (const auto& [target, headers] : targets) {
    SCOPED_TRACE(target + " " + headers.substr(0, 20));
    conn.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n");
    const auto get = conn.read_response(5s);
    ASSERT_TRUE(get);
    conn.send("HEAD " + target + " HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n");
    const auto head = conn.read_response(5s, /*to_head=*/true);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, get->status);
    EXPECT_EQ(head->header("content-length"), get->header("content-length"));
    EXPECT_EQ(head->header("content-type"), get->header("content-type"));
    EXPECT_EQ(head->header("etag"), get->header("etag"));
    EXPECT_EQ(conn.unread(), "") << "HEAD sent a body";
  }
  // curl agrees (it warns "Excess found" when a HEAD answer has a body).
  const std::string cmd =
      fmt::format("curl -sS -I -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{}/healthz 2>&1", server_->port());
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char out[256] = {};
  const auto n = std::fread(out, 1, sizeof out - 1, p);
  ::pclose(p);
  EXPECT_EQ(std::string(out, n), "200");
}

// Every route answers OPTIONS with its methods, and a method it lacks with
// 405 and the same list; both keep the connection usable.
TEST_F(HttpFraming, OptionsAndMethodNotAllowedListTheRoutesMethods) {
  Connection conn(server_->port());
  const std::vector<std::pair<std::string, std::string>> allowed = {
      {"/healthz", "GET, HEAD"},
      {"/upload", "POST"},
      {"/upload/a.txt", "PUT"},
      {"/files", "GET, HEAD"},
      {"/files/00000000-0000-7000-8000-000000000000", "GET, HEAD, DELETE"},
      {"/files/00000000-0000-7000-8000-000000000000/content", "GET, HEAD"},
  };
  for (const auto& [target, methods] : allowed) {
    SCOPED_TRACE(target);
    conn.send("OPTIONS " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto options = conn.read_response(5s);
    ASSERT_TRUE(options);
    EXPECT_EQ(options->status, 204);
    EXPECT_EQ(options->header("allow"), methods);
    EXPECT_EQ(options->header("content-length"), "") << "a 204 has no Content-Length";
    conn.send("PATCH " + target + " HTTP/1.1\r\nHost: x\r\n" + auth() + "Content-Length: 0\r\n\r\n");
    const auto patch = conn.read_response(5s);
    ASSERT_TRUE(patch);
    EXPECT_EQ(patch->status, 405);
    EXPECT_EQ(patch->header("allow"), methods);
    EXPECT_NE(patch->body.find("\"method_not_allowed\""), std::string::npos);
  }
  expect_in_step(conn);
  const std::string cmd =
      fmt::format("curl -sS -X OPTIONS -D - -o /dev/null http://127.0.0.1:{}/files 2>&1", server_->port());
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char out[1024] = {};
  const auto n = std::fread(out, 1, sizeof out - 1, p);
  ::pclose(p);
  const std::string headers(out, n);
  EXPECT_NE(headers.find("HTTP/1.1 204"), std::string::npos) << headers;
  EXPECT_NE(headers.find("Allow: GET, HEAD"), std::string::npos) << headers;
}

TEST_F(HttpFraming, NotModifiedHasNoContentLengthZero) {
  const auto uploaded =
      request(server_->port(), "PUT", "/upload/etag.txt", {{"Authorization", "Bearer " + token_}}, "cached bytes");
  ASSERT_EQ(uploaded.status, 201);
  const std::string id(uploaded.json().at("file_id").as_string());
  const auto get =
      request(server_->port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token_}});
  ASSERT_EQ(get.status, 200);
  Connection conn(server_->port());
  conn.send("GET /files/" + id + "/content HTTP/1.1\r\nHost: x\r\n" + auth() + "If-None-Match: " + get.header("etag") +
            "\r\n\r\n");
  const auto r = conn.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 304);
  EXPECT_EQ(r->headers.count("content-length"), 0u) << r->header("content-length");
  EXPECT_EQ(r->header("etag"), get.header("etag"));
  expect_in_step(conn);
}

TEST_F(HttpFraming, AbsoluteFormTargetsAndALeadingEmptyLineAreAccepted) {
  Connection conn(server_->port());
  conn.send("GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: ignored\r\n\r\n");
  auto r = conn.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  conn.send("GET http://x/files?limit=1 HTTP/1.1\r\nHost: x\r\n" + auth() + "\r\n");
  r = conn.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // RFC 9112 §2.2: one empty line before a request line is ignored.
  conn.send("\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  r = conn.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  Connection fresh(server_->port());
  fresh.send("\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  r = fresh.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// Found by fuzz_request_head: a target of only a fragment became empty, and
// an http URL without a host had no path. Neither names anything: 400, and
// the connection closes.
TEST_F(HttpFraming, TargetsThatAreNeitherPathNorURLAre400) {
  for (const std::string target : {"#fragment", "healthz", "http:x=1", "http:///healthz", "ftp://x/healthz"}) {
    Connection conn(server_->port());
    conn.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto r = conn.read_response(5s);
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 400) << target << ": " << r->body;
    EXPECT_EQ(r->json().at("error").at("code").as_string(), "bad_request");
    EXPECT_TRUE(conn.closed_by_peer(5s)) << target;
  }
  // OPTIONS * is the one target that is neither (RFC 9112 §3.2.4).
  Connection star(server_->port());
  star.send("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto r = star.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 400) << r->body;
}

TEST_F(HttpFraming, ARequestLineOverTheLimitIs414AndLongHeadersAre431) {
  Connection line(server_->port());
  line.send("GET /files/" + std::string(6000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = line.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
  EXPECT_EQ(r->json().at("error").at("code").as_string(), "uri_too_long");
  Connection headers(server_->port());
  headers.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(6000, 'b') + "\r\n\r\n");
  r = headers.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
}

TEST_F(HttpFraming, AFragmentIsNotPartOfTheUploadName) {
  Connection conn(server_->port());
  conn.send("PUT /upload/report.pdf#page=2 HTTP/1.1\r\nHost: x\r\n" + auth() + "Content-Length: 4\r\n\r\n%PDF");
  const auto r = conn.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(r->json().at("file_name").as_string(), "report.pdf");
}

}  // namespace
}  // namespace s3up::test
