// The files API through the real binary: listing with stable pages, metadata,
// downloads (whole, ranges, 304, HEAD, streamed from S3, redirects to a
// presigned URL that works with plain curl and expires), deleting, and who
// may see what.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <thread>

#include <boost/url/parse.hpp>

#include "../support/counting_proxy.hpp"
#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t MiB = 1024 * 1024;

std::string bearer(const std::string& token) { return "Bearer " + token; }

// Runs a shell command and returns its standard output.
std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  return out;
}

class Files : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }
  void start(std::map<std::string, std::string> env) {
    server_ = std::make_unique<ServerProcess>(std::move(env));
    alice_ = server_->create_user_with_token("alice");
    bob_ = server_->create_user_with_token("bob");
  }
  // PUT /upload/<name> with `content`; returns the new file's id.
  std::string put(const std::string& token, const std::string& name, const std::string& content,
                  const std::string& type = "") {
    std::map<std::string, std::string> h{{"Authorization", bearer(token)}};
    if (!type.empty()) h["Content-Type"] = type;
    const auto r = request(server_->port(), "PUT", "/upload/" + name, h, content);
    EXPECT_EQ(r.status, 201) << r.body;
    return std::string(r.json().at("file_id").as_string());
  }
  Response get(const std::string& token, const std::string& target, std::map<std::string, std::string> h = {}) {
    if (!token.empty()) h["Authorization"] = bearer(token);
    return request(server_->port(), "GET", target, h);
  }
  Response del(const std::string& token, const std::string& target) {
    return request(server_->port(), "DELETE", target, {{"Authorization", bearer(token)}});
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  std::unique_ptr<ServerProcess> server_;
  std::string alice_, bob_;
};

TEST_F(Files, ListMetadataDownloadDelete) {
  const std::string a = put(alice_, "a.txt", "first file\n", "text/plain");
  const std::string b = put(alice_, "b%20two.bin", std::string(3000, 'b'));
  put(bob_, "bobs.txt", "not alice's");

  auto list = get(alice_, "/files");
  ASSERT_EQ(list.status, 200) << list.body;
  const auto listed = list.json();
  const auto& files = listed.at("files").as_array();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].at("file_id").as_string(), b);  // newest first
  EXPECT_EQ(files[1].at("file_id").as_string(), a);
  EXPECT_EQ(files[0].at("file_name").as_string(), "b two.bin");
  EXPECT_EQ(files[0].at("file_size").to_number<std::uint64_t>(), 3000u);
  EXPECT_EQ(files[0].at("status").as_string(), "complete");
  EXPECT_TRUE(list.json().at("next_cursor").is_null());

  const auto meta = get(alice_, "/files/" + a);
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(meta.json().at("file_name").as_string(), "a.txt");
  EXPECT_EQ(meta.json().at("sha256").as_string(), util::sha256_hex("first file\n"));
  EXPECT_FALSE(meta.json().at("completed_at").is_null());

  const auto content = get(alice_, "/files/" + a + "/content");
  ASSERT_EQ(content.status, 200);
  EXPECT_EQ(content.body, "first file\n");
  EXPECT_EQ(content.header("content-type"), "text/plain");
  EXPECT_EQ(content.header("content-disposition"), "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt");
  EXPECT_EQ(content.header("etag"), "\"" + util::sha256_hex("first file\n") + "\"");
  EXPECT_EQ(content.header("accept-ranges"), "bytes");
  EXPECT_EQ(content.header("x-content-type-options"), "nosniff");

  EXPECT_EQ(del(alice_, "/files/" + a).status, 204);
  EXPECT_EQ(del(alice_, "/files/" + a).status, 404);
  EXPECT_EQ(get(alice_, "/files/" + a + "/content").status, 404);
  EXPECT_EQ(get(alice_, "/files").json().at("files").as_array().size(), 1u);
  EXPECT_EQ(server_->stored_files().size(), 2u) << "the object went with its record";
}

TEST_F(Files, PagesAreStableAndCursorsOpaque) {
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) ids.push_back(put(alice_, "f" + std::to_string(i), std::to_string(i)));
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (;; ++pages) {
    const auto r = get(alice_, "/files?limit=10" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.body;
    const auto page_json = r.json();
    for (const auto& f : page_json.at("files").as_array()) seen.emplace_back(f.at("file_id").as_string());
    put(alice_, "during-paging", "x");  // newer than every page: shifts nothing
    const auto& next = page_json.at("next_cursor");
    if (next.is_null()) break;
    cursor = std::string(next.as_string());
  }
  EXPECT_EQ(pages, 2);
  std::vector<std::string> expected(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, expected);
  for (const char* bad : {"/files?limit=0", "/files?limit=1001", "/files?limit=abc", "/files?cursor=bm90LWEtY3Vyc29y",
                          "/files?cursor=%%%", "/files?all=maybe"}) {
    const auto r = get(alice_, bad);
    EXPECT_EQ(r.status, 400) << bad << " " << r.body;
  }
  EXPECT_EQ(get(alice_, "/files?limit=1000").json().at("files").as_array().size(), 28u);
}

TEST_F(Files, SearchedByNameAndSortedByNameOrSize) {
  put(alice_, "Holiday.JPG", std::string(3000, 'h'));
  put(alice_, "holiday-2.jpg", std::string(10, 'h'));
  put(alice_, "notes.txt", std::string(500, 'n'));
  put(alice_, "100%25.txt", "1");
  put(bob_, "holiday-bob.jpg", "not alice's");
  // Every page of `query`, `limit` rows at a time: the names in order.
  const auto names = [&](const std::string& query, int limit = 100) {
    std::vector<std::string> out;
    std::string cursor;
    for (int page = 0; page < 20; ++page) {
      const auto r = get(alice_, "/files?limit=" + std::to_string(limit) + query + (cursor.empty() ? "" : "&cursor=" + cursor));
      EXPECT_EQ(r.status, 200) << query << " " << r.body;
      if (r.status != 200) break;
      const auto body = r.json();
      for (const auto& f : body.at("files").as_array()) out.emplace_back(f.at("file_name").as_string());
      if (body.at("next_cursor").is_null()) break;
      cursor = std::string(body.at("next_cursor").as_string());
    }
    return out;
  };
  using Names = std::vector<std::string>;
  // Search ignores case and finds only the caller's; % is a character.
  EXPECT_EQ(names("&q=HOLIDAY"), (Names{"holiday-2.jpg", "Holiday.JPG"}));
  EXPECT_EQ(names("&q=%25"), Names{"100%.txt"});
  EXPECT_TRUE(names("&q=zzz").empty());
  // Names from A by default (ignoring case), sizes largest first, each
  // reversible, the same across pages of one.
  const Names by_name{"100%.txt", "holiday-2.jpg", "Holiday.JPG", "notes.txt"};
  const Names by_size{"Holiday.JPG", "notes.txt", "holiday-2.jpg", "100%.txt"};
  for (const int limit : {1, 3, 100}) {
    EXPECT_EQ(names("&sort=name", limit), by_name) << limit;
    EXPECT_EQ(names("&sort=name&order=desc", limit), Names(by_name.rbegin(), by_name.rend())) << limit;
    EXPECT_EQ(names("&sort=size", limit), by_size) << limit;
    EXPECT_EQ(names("&sort=size&order=asc", limit), Names(by_size.rbegin(), by_size.rend())) << limit;
    EXPECT_EQ(names("&sort=created&order=asc", limit), (Names{"Holiday.JPG", "holiday-2.jpg", "notes.txt", "100%.txt"}))
        << limit;
    EXPECT_EQ(names("&sort=name&q=.jpg", limit), (Names{"holiday-2.jpg", "Holiday.JPG"})) << limit;
  }
  // A cursor continues only the order it came from.
  const auto first = get(alice_, "/files?limit=1&sort=size").json();
  const std::string cursor(first.at("next_cursor").as_string());
  EXPECT_EQ(get(alice_, "/files?limit=1&sort=size&cursor=" + cursor).status, 200);
  const auto crossed = get(alice_, "/files?limit=1&sort=name&cursor=" + cursor);
  EXPECT_EQ(crossed.status, 400);
  EXPECT_NE(crossed.body.find("another order"), std::string::npos) << crossed.body;
  EXPECT_EQ(get(alice_, "/files?limit=1&sort=size&order=asc&cursor=" + cursor).status, 400);
  for (const std::string& bad : std::vector<std::string>{"/files?sort=colour", "/files?order=up", "/files?q=" + std::string(1025, 'q')}) {
    const auto r = get(alice_, bad);
    EXPECT_EQ(r.status, 400) << bad.substr(0, 40) << " " << r.body;
    EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  }
}

TEST_F(Files, RangesConditionalRequestsAndHead) {
  const std::string bytes = ContentStream::make(1000, 5);
  const std::string id = put(alice_, "r.bin", bytes);
  const std::string url = "/files/" + id + "/content";
  const auto range = [&](const std::string& spec) { return get(alice_, url, {{"Range", spec}}); };

  auto r = range("bytes=0-99");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(0, 100));
  EXPECT_EQ(r.header("content-range"), "bytes 0-99/1000");
  r = range("bytes=500-599");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(500, 100));
  r = range("bytes=900-");
  EXPECT_EQ(r.body, bytes.substr(900));
  EXPECT_EQ(r.header("content-range"), "bytes 900-999/1000");
  r = range("bytes=-100");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(900));
  r = range("bytes=990-5000");  // clipped to the end
  EXPECT_EQ(r.header("content-range"), "bytes 990-999/1000");
  EXPECT_EQ(r.body, bytes.substr(990));
  for (const char* unsatisfiable : {"bytes=1000-", "bytes=5000-6000", "bytes=-0"}) {
    r = range(unsatisfiable);
    EXPECT_EQ(r.status, 416) << unsatisfiable;
    EXPECT_EQ(r.header("content-range"), "bytes */1000");
    EXPECT_EQ(r.json().at("error").at("code").as_string(), "range_not_satisfiable");
  }
  for (const char* ignored : {"bytes=0-1,5-6", "bytes=9-3", "bytes=x-y", "lines=1-2"}) {
    r = range(ignored);
    EXPECT_EQ(r.status, 200) << ignored;
    EXPECT_EQ(r.body, bytes);
  }

  const std::string etag = get(alice_, url).header("etag");
  r = get(alice_, url, {{"If-None-Match", etag}});
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(get(alice_, url, {{"If-None-Match", "\"other\", W/" + etag}}).status, 304);
  EXPECT_EQ(get(alice_, url, {{"If-None-Match", "\"other\""}}).status, 200);

  // HEAD: the headers of a GET, no body (curl -I would hang on a body).
  const auto head = run("curl -sS -I -H 'Authorization: Bearer " + alice_ + "' " + base() + url);
  EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Length: 1000"), std::string::npos) << head;

  // An empty file downloads as nothing, and has no satisfiable range.
  const std::string empty = put(alice_, "empty", "");
  r = get(alice_, "/files/" + empty + "/content");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(get(alice_, "/files/" + empty + "/content", {{"Range", "bytes=0-"}}).status, 416);
}

TEST_F(Files, LargeDownloadWithCurlMatchesTheUpload) {
  const auto r = upload_streamed(server_->port(), alice_, "big.bin", 48 * MiB + 7, 11);
  ASSERT_EQ(r.status, 201);
  const std::string id(r.json().at("file_id").as_string());
  const auto out = server_->dir() / "download.bin";
  run("curl -sS -o " + out.string() + " -H 'Authorization: Bearer " + alice_ + "' " + base() + "/files/" + id +
      "/content");
  EXPECT_EQ(file_sha256(out), ContentStream::sha256_of(48 * MiB + 7, 11));
  // and names come back as uploaded, through curl's own Content-Disposition handling
  const std::string named = put(alice_, "r%C3%A9sum%C3%A9%20%22final%22.txt", "cv");
  const auto dir = server_->dir() / "named";
  std::filesystem::create_directories(dir);
  run("cd " + dir.string() + " && curl -sS -OJ -H 'Authorization: Bearer " + alice_ + "' " + base() + "/files/" +
      named + "/content");
  EXPECT_TRUE(std::filesystem::exists(dir / "r_sum_ _final_.txt") ||
              std::filesystem::exists(dir / "résumé \"final\".txt"))
      << run("ls " + dir.string());
}

TEST_F(Files, WhoMaySeeWhat) {
  const std::string mine = put(alice_, "mine.txt", "alice's");
  const std::string theirs = put(bob_, "theirs.txt", "bob's");
  // Another user's file, a malformed id and a missing id: the same 404.
  std::set<std::string> bodies;
  for (const std::string& id : {theirs, std::string("not-a-uuid"), util::uuid_v7()}) {
    for (const std::string& suffix : {"", "/content"}) {
      const auto r = get(alice_, "/files/" + id + suffix);
      EXPECT_EQ(r.status, 404) << id << suffix;
      bodies.insert(std::string(r.json().at("error").at("message").as_string()));
    }
    EXPECT_EQ(del(alice_, "/files/" + id).status, 404);
  }
  EXPECT_EQ(bodies.size(), 1u) << "404s differ: existence leaks";
  const auto alices_list = get(alice_, "/files").json();
  for (const auto& f : alices_list.at("files").as_array()) {
    EXPECT_NE(f.at("file_id").as_string(), theirs);
  }
  EXPECT_EQ(get(bob_, "/files/" + theirs + "/content").body, "bob's") << "bob's file survived alice's delete";

  // No token, a bad one, a revoked one: 401 on every endpoint.
  const std::string revoked = server_->create_user_with_token("carol");
  const std::string list = server_->cli({"token", "list", "carol"}).out;
  const auto tok = list.find("tok_");
  ASSERT_NE(tok, std::string::npos) << list;
  ASSERT_EQ(server_->cli({"token", "revoke", list.substr(tok, 20)}).exit_code, 0);
  for (const std::string& token : {std::string(), std::string("s3u_bogus"), revoked}) {
    for (const std::string& target : {std::string("/files"), "/files/" + mine, "/files/" + mine + "/content"}) {
      EXPECT_EQ(get(token, target).status, 401) << target;
    }
    EXPECT_EQ(request(server_->port(), "DELETE", "/files/" + mine,
                      token.empty() ? std::map<std::string, std::string>{}
                                    : std::map<std::string, std::string>{{"Authorization", bearer(token)}})
                  .status,
              401);
  }

  // A disabled user's tokens stop working at once, and work again when enabled.
  ASSERT_EQ(server_->cli({"user", "disable", "alice"}).exit_code, 0);
  EXPECT_EQ(get(alice_, "/files").status, 401);
  EXPECT_EQ(get(alice_, "/files/" + mine + "/content").status, 401);
  EXPECT_NE(server_->cli({"user", "disable", "nobody"}).exit_code, 0);
  ASSERT_EQ(server_->cli({"user", "enable", "alice"}).exit_code, 0);
  EXPECT_EQ(get(alice_, "/files").status, 200);

  // Admins see and delete everyone's; others may not ask for everyone's.
  EXPECT_EQ(get(alice_, "/files?all=true").status, 403);
  ASSERT_EQ(server_->cli({"user", "add", "root", "--admin"}).exit_code, 0);
  const std::string root = server_->cli({"token", "create", "root"}).out;
  const std::string admin(util::trim(root));
  const auto all = get(admin, "/files?all=true");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.json().at("files").as_array().size(), 2u);
  EXPECT_EQ(get(admin, "/files/" + mine).status, 200);
  EXPECT_EQ(get(admin, "/files/" + theirs + "/content").body, "bob's");
  EXPECT_EQ(del(admin, "/files/" + theirs).status, 204);
  EXPECT_EQ(get(bob_, "/files/" + theirs).status, 404);
}

// Downloads from S3: streamed through the service (ranged reads from the
// store), or a redirect to a presigned URL that plain curl can fetch until
// it expires.
class S3Files : public ::testing::Test {
 protected:
  S3Peer peer_;
};

TEST_F(S3Files, StreamedAndRedirectedDownloads) {
  auto env = peer_.server_env();
  ServerProcess streaming(env);
  const auto token = streaming.create_user_with_token("alice");
  const auto r = upload_streamed(streaming.port(), token, "s3.bin", 12 * MiB + 3, 21);
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string id(r.json().at("file_id").as_string());
  const auto whole = request(streaming.port(), "GET", "/files/" + id + "/content", {{"Authorization", bearer(token)}});
  ASSERT_EQ(whole.status, 200);
  EXPECT_EQ(util::sha256_hex(whole.body), ContentStream::sha256_of(12 * MiB + 3, 21));
  const auto part = request(streaming.port(), "GET", "/files/" + id + "/content",
                            {{"Authorization", bearer(token)}, {"Range", "bytes=-5"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, whole.body.substr(whole.body.size() - 5));

  env["S3UP_DOWNLOAD"] = "redirect";
  env["S3UP_DOWNLOAD_URL_TTL"] = "2s";
  env["S3UP_DATABASE"] = "sqlite://" + (streaming.dir() / "s3uploader.db").string();  // the same records
  ServerProcess redirecting(env);
  const auto redirect =
      request(redirecting.port(), "GET", "/files/" + id + "/content", {{"Authorization", bearer(token)}});
  ASSERT_EQ(redirect.status, 302) << redirect.body;
  const std::string location = redirect.header("location");
  EXPECT_EQ(redirect.header("cache-control"), "no-store");
  const auto out = redirecting.dir() / "via-presigned.bin";
  EXPECT_EQ(run("curl -sS -o " + out.string() + " -w '%{http_code}' '" + location + "'"), "200");
  EXPECT_EQ(file_sha256(out), ContentStream::sha256_of(12 * MiB + 3, 21));
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(run("curl -sS -o /dev/null -w '%{http_code}' '" + location + "'"), "403") << "the URL did not expire";
}

// A download streams from one ranged GetObject (not one request per piece),
// with the client's pace setting the store's: counted by a proxy in front of
// radosgw, which only the downloading server talks to.
TEST_F(S3Files, ALargeDownloadIsOneRangedGetObject) {
  constexpr std::uint64_t size = 64 * MiB + 7;
  auto env = peer_.server_env();
  ServerProcess uploading(env);
  const auto token = uploading.create_user_with_token("alice");
  const auto r = upload_streamed(uploading.port(), token, "big.bin", size, 64);
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string id(r.json().at("file_id").as_string());

  const auto endpoint = boost::urls::parse_uri(env.at("S3UP_S3_ENDPOINT")).value();
  testing::CountingProxy proxy(std::string(endpoint.host()), static_cast<unsigned short>(endpoint.port_number()));
  env["S3UP_S3_ENDPOINT"] = proxy.url();
  env["S3UP_DATABASE"] = "sqlite://" + (uploading.dir() / "s3uploader.db").string();  // the same records
  ServerProcess downloading(env);
  const auto whole =
      request(downloading.port(), "GET", "/files/" + id + "/content", {{"Authorization", bearer(token)}});
  ASSERT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body.size(), size);
  EXPECT_EQ(util::sha256_hex(whole.body), ContentStream::sha256_of(size, 64));
  EXPECT_EQ(proxy.count("GET"), 1) << "requests to the store for one download";

  proxy.reset();
  const auto middle = request(downloading.port(), "GET", "/files/" + id + "/content",
                              {{"Authorization", bearer(token)}, {"Range", "bytes=1000000-40000000"}});
  ASSERT_EQ(middle.status, 206);
  EXPECT_EQ(middle.body, whole.body.substr(1000000, 39000001));
  EXPECT_EQ(proxy.count("GET"), 1);
  // HEAD answers from the record: no request to the store at all.
  proxy.reset();
  const auto head =
      request(downloading.port(), "HEAD", "/files/" + id + "/content", {{"Authorization", bearer(token)}});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(size));
  EXPECT_EQ(proxy.count("GET") + proxy.count("HEAD"), 0);
}

}  // namespace
}  // namespace s3up::test

namespace s3up::test {
namespace {

// The authorisation matrix: every endpoint x every kind of caller, with the
// status each must get, and never another user's data in a body.
TEST(Authorisation, EveryEndpointForEveryCaller) {
  ServerProcess server;
  const auto owner = server.create_user_with_token("owner");
  const auto other = server.create_user_with_token("other");
  const auto revoked = server.create_user_with_token("revoked");
  const auto disabled = server.create_user_with_token("disabled");
  ASSERT_EQ(server.cli({"user", "add", "admin", "--admin"}).exit_code, 0);
  const std::string admin(util::trim(server.cli({"token", "create", "admin"}).out));
  const std::string tokens = server.cli({"token", "list", "revoked"}).out;
  ASSERT_EQ(server.cli({"token", "revoke", tokens.substr(tokens.find("tok_"), 20)}).exit_code, 0);
  ASSERT_EQ(server.cli({"user", "disable", "disabled"}).exit_code, 0);

  const auto upload = [&](const std::string& token) {
    return request(server.port(), "PUT", "/upload/secret.txt", {{"Authorization", "Bearer " + token}},
                   "owner's secret");
  };
  const auto first = upload(owner);
  ASSERT_EQ(first.status, 201);
  const std::string id(first.json().at("file_id").as_string());

  struct Caller {
    std::string name, token;
    int upload, list, get, content, del;  // expected statuses
  };
  // Deletion is tried last for each caller, so only the admin's succeeds (and the owner's is checked apart).
  const std::vector<Caller> callers{
      {"no token", "", 401, 401, 401, 401, 401},
      {"bad token", "s3u_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 401, 401, 401, 401, 401},
      {"revoked", revoked, 401, 401, 401, 401, 401},
      {"disabled user", disabled, 401, 401, 401, 401, 401},
      {"other user", other, 201, 200, 404, 404, 404},
      {"admin", admin, 201, 200, 200, 200, 204},
  };
  for (const auto& c : callers) {
    SCOPED_TRACE(c.name);
    std::map<std::string, std::string> h;
    if (!c.token.empty()) h["Authorization"] = "Bearer " + c.token;
    auto form_headers = h;
    form_headers["Content-Type"] = Multipart::content_type();
    const auto form = request(server.port(), "POST", "/upload", form_headers, Multipart::body("x.txt", "x"));
    EXPECT_EQ(form.status, c.upload) << form.body;
    EXPECT_EQ(request(server.port(), "PUT", "/upload/y.txt", h, "y").status, c.upload);
    const auto list = request(server.port(), "GET", "/files", h);
    EXPECT_EQ(list.status, c.list);
    if (c.name != "admin") EXPECT_EQ(list.body.find(id), std::string::npos) << "another user's file listed";
    const auto meta = request(server.port(), "GET", "/files/" + id, h);
    EXPECT_EQ(meta.status, c.get);
    const auto content = request(server.port(), "GET", "/files/" + id + "/content", h);
    EXPECT_EQ(content.status, c.content);
    if (c.content != 200) EXPECT_EQ(content.body.find("owner's secret"), std::string::npos);
    EXPECT_EQ(request(server.port(), "DELETE", "/files/" + id, h).status, c.del);
  }
  // The owner: everything on their own file (the admin deleted the first one).
  const auto second = upload(owner);
  ASSERT_EQ(second.status, 201);
  const std::string mine(second.json().at("file_id").as_string());
  const std::map<std::string, std::string> h{{"Authorization", "Bearer " + owner}};
  EXPECT_EQ(request(server.port(), "GET", "/files", h).status, 200);
  EXPECT_EQ(request(server.port(), "GET", "/files/" + mine, h).status, 200);
  EXPECT_EQ(request(server.port(), "GET", "/files/" + mine + "/content", h).body, "owner's secret");
  EXPECT_EQ(request(server.port(), "DELETE", "/files/" + mine, h).status, 204);
  EXPECT_EQ(request(server.port(), "DELETE", "/files/" + mine, h).status, 404);
}

}  // namespace
}  // namespace s3up::test
