// tus 1.0.0 over raw HTTP against the real binary, on both stacks: local
// disk + SQLite, and radosgw + PostgreSQL. Every MUST of the protocol and of
// the issue's promises is asked for on the wire, header by header.
#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include <fmt/format.h>
#include <sqlite3.h>

#include "../support/test_database.hpp"
#include "harness.hpp"
#include "s3_peer.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t MiB = 1024 * 1024;
using Headers = std::map<std::string, std::string>;

std::string b64(std::string_view text) { return util::base64(text); }
std::string sha1_b64(std::string_view data) {
  auto h = util::NamedHash::make("sha1");
  h->update(data);
  return b64(h->finish());
}

struct Stack {
  std::string name;
};
void PrintTo(const Stack& s, std::ostream* os) { *os << s.name; }

class Tus : public ::testing::TestWithParam<Stack> {
 protected:
  void SetUp() override { start({}); }

  bool on_s3() const { return GetParam().name == "s3_postgres"; }

  // (Re)starts the server with `extra` on top of the stack's environment.
  void start(const Headers& extra) {
    server_.reset();
    if (on_s3()) {
      if (!peer_) peer_ = std::make_unique<S3Peer>();
      database_ = std::make_unique<testing::TestDatabase>();  // a fresh one per server: its own users
    }
    Headers env = extra;
    if (on_s3()) {
      for (const auto& [k, v] : peer_->server_env()) env.emplace(k, v);
      env.emplace("S3UP_DATABASE", database_->url());
    }
    server_ = std::make_unique<ServerProcess>(env);
    token_ = server_->create_user_with_token("alice");
  }

  Headers tus_headers(Headers extra = {}, const std::string& token = "") const {
    extra.emplace("Tus-Resumable", "1.0.0");
    extra.emplace("Authorization", "Bearer " + (token.empty() ? token_ : token));
    return extra;
  }
  Response tus(const std::string& method, const std::string& target, Headers extra = {}, const std::string& body = "",
               const std::string& token = "") {
    return request(server_->port(), method, target, tus_headers(std::move(extra), token), body);
  }
  Response patch(const std::string& path, std::uint64_t offset, const std::string& body, Headers extra = {}) {
    extra.emplace("Content-Type", "application/offset+octet-stream");
    extra.emplace("Upload-Offset", std::to_string(offset));
    return tus("PATCH", path, std::move(extra), body);
  }
  // Creates an upload; its path (/upload/resumable/<id>).
  std::string create(std::optional<std::uint64_t> length, const std::string& metadata = "") {
    Headers h;
    if (length) {
      h["Upload-Length"] = std::to_string(*length);
    } else {
      h["Upload-Defer-Length"] = "1";
    }
    if (!metadata.empty()) h["Upload-Metadata"] = metadata;
    const auto r = tus("POST", "/upload/resumable", h);
    EXPECT_EQ(r.status, 201) << r.body;
    return path_of(r.header("location"));
  }
  static std::string path_of(const std::string& location) {
    const auto at = location.find("/upload/resumable/");
    return at == std::string::npos ? "" : location.substr(at);
  }
  static std::string id_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }

  // One statement on the server's database, behind its back.
  void run_sql(const std::string& sql) {
    if (on_s3()) {
      database_->run(sql);
      return;
    }
    sqlite3* db = nullptr;
    const auto path = server_->dir() / "s3uploader.db";
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10'000);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    const std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
  }
  // A second instance on the same store and database.
  std::unique_ptr<ServerProcess> second_instance() {
    Headers env;
    if (on_s3()) {
      env = peer_->server_env();
      env.emplace("S3UP_DATABASE", database_->url());
    } else {
      env.emplace("S3UP_STORAGE", "file://" + server_->objects_dir().string());
      env.emplace("S3UP_DATABASE", "sqlite://" + (server_->dir() / "s3uploader.db").string());
    }
    return std::make_unique<ServerProcess>(env);
  }
  // Makes the write lease of upload `id` lapse behind its holder's back:
  // as for a process that was paused, or whose clock runs slow, the holder
  // still believes it has it.
  void lapse_lease(const std::string& id) {
    const std::string past = on_s3() ? "now() - interval '1 hour'" : "1";
    run_sql("UPDATE resumable_uploads SET lease_expires_at = " + past + " WHERE upload_id = '" + id + "'");
  }
  // The raw head of a PATCH of `length` bytes at `offset`.
  std::string patch_head(const std::string& path, std::uint64_t offset, std::uint64_t length,
                         const std::string& extra = "") const {
    return "PATCH " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer " + token_ +
           "\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: " + std::to_string(offset) +
           "\r\nContent-Length: " + std::to_string(length) + "\r\n" + extra + "\r\n";
  }
  // What the store holds besides complete objects' bytes, and those objects.
  std::vector<std::string> stored_objects() {
    std::vector<std::string> out;
    if (on_s3()) return peer_->keys();
    for (const auto& f : server_->stored_files()) out.push_back(std::filesystem::relative(f, server_->objects_dir()));
    return out;
  }

  std::uint64_t offset_of(const std::string& path) {
    const auto r = tus("HEAD", path);
    EXPECT_EQ(r.status, 200) << r.body;
    return std::stoull(r.header("upload-offset"));
  }

  // What unfinished uploads left in the store: temporary files, multipart
  // uploads, tail objects.
  std::vector<std::string> leftovers() {
    std::vector<std::string> out;
    if (on_s3()) {
      for (const auto& u : peer_->multipart_uploads()) out.push_back("multipart upload of " + u.key);
      for (const auto& key : peer_->keys()) {
        if (key.find(".tail") != std::string::npos) out.push_back("tail object " + key);
      }
    } else {
      for (const auto& f : server_->stored_files()) {
        // A temporary file, or a writer's data file in an upload's temporary directory.
        const auto relative = std::filesystem::relative(f, server_->objects_dir()).string();
        if (relative.starts_with(".tmp") || relative.find("/.tmp") != std::string::npos) {
          out.push_back("temporary file " + f.string());
        }
      }
    }
    return out;
  }

  std::unique_ptr<S3Peer> peer_;
  std::unique_ptr<testing::TestDatabase> database_;
  std::unique_ptr<ServerProcess> server_;
  std::string token_;
};

TEST_P(Tus, OptionsAdvertisesTheProtocolWithoutAuthentication) {
  for (const std::string target : {"/upload/resumable", "/upload/resumable/01234567-89ab-7def-8123-456789abcdef"}) {
    const auto r = request(server_->port(), "OPTIONS", target);
    EXPECT_TRUE(r.status == 200 || r.status == 204) << r.status;
    EXPECT_EQ(r.header("tus-version"), "1.0.0");
    EXPECT_EQ(r.header("tus-extension"),
              "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination");
    EXPECT_EQ(r.header("tus-max-size"), std::to_string(5ull << 30));
    EXPECT_EQ(r.header("tus-checksum-algorithm"), "sha1,sha256,md5,crc32,crc32c,crc64nvme");
  }
  // curl sees the same.
  const auto cmd =
      fmt::format("curl -sS -X OPTIONS -D - -o /dev/null http://127.0.0.1:{}/upload/resumable 2>&1", server_->port());
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  EXPECT_NE(out.find("Tus-Version: 1.0.0"), std::string::npos) << out;
}

TEST_P(Tus, CreateHeadPatchInUnalignedChunksAndDownload) {
  const std::uint64_t size = 12 * MiB + 3;  // S3: parts of 5 MiB
  const std::string content = ContentStream::make(size, 7);
  const std::string metadata = "filename " + b64("r\xC3\xA9sum\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC.txt") + ",filetype " +
                               b64("text/plain") + ",note " + b64("keep me") + ",flag";
  const auto path = create(size, metadata);
  ASSERT_FALSE(path.empty());

  const auto head = request(server_->port(), "HEAD", path, tus_headers());
  ASSERT_EQ(head.status, 200) << head.body;
  EXPECT_EQ(head.header("upload-offset"), "0");
  EXPECT_EQ(head.header("upload-length"), std::to_string(size));
  EXPECT_EQ(head.header("upload-defer-length"), "");
  EXPECT_EQ(head.header("upload-metadata"), metadata);
  EXPECT_EQ(head.header("cache-control"), "no-store");
  EXPECT_EQ(head.header("tus-resumable"), "1.0.0");
  EXPECT_TRUE(head.body.empty());
  EXPECT_TRUE(std::regex_match(
      head.header("upload-expires"),
      std::regex(
          R"((Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT)")))
      << head.header("upload-expires");

  std::uint64_t offset = 0;
  for (const std::uint64_t chunk : {5 * MiB + 1, std::uint64_t{1}, 2 * MiB - 7}) {
    const auto n = std::min(chunk, size - offset);
    const auto r = patch(path, offset, content.substr(offset, n));
    ASSERT_EQ(r.status, 204) << r.body;
    offset += n;
    EXPECT_EQ(r.header("upload-offset"), std::to_string(offset));
    EXPECT_EQ(r.header("tus-resumable"), "1.0.0");
    EXPECT_FALSE(r.header("upload-expires").empty());
    EXPECT_EQ(offset_of(path), offset) << "HEAD agrees with the PATCH";
    if (offset == size) break;
  }
  if (offset < size) {
    const auto r = patch(path, offset, content.substr(offset));
    ASSERT_EQ(r.status, 204) << r.body;
    EXPECT_EQ(r.header("upload-expires"), "") << "a finished upload does not expire";
  }
  const auto done = tus("HEAD", path);
  EXPECT_EQ(done.header("upload-offset"), std::to_string(size));
  EXPECT_EQ(done.header("upload-metadata"), metadata);

  const auto id = id_of(path);
  const auto file = request(server_->port(), "GET", "/files/" + id, {{"Authorization", "Bearer " + token_}});
  ASSERT_EQ(file.status, 200) << file.body;
  const auto json = file.json().as_object();
  EXPECT_EQ(json.at("file_name").as_string(), "r\xC3\xA9sum\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC.txt");
  EXPECT_EQ(json.at("content_type").as_string(), "text/plain");
  EXPECT_EQ(json.at("file_size").as_int64(), static_cast<std::int64_t>(size));
  EXPECT_EQ(json.at("sha256").as_string(), util::sha256_hex(content)) << "the whole-file hash across requests";
  const auto bytes =
      request(server_->port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token_}});
  EXPECT_EQ(bytes.body == content, true);
  EXPECT_TRUE(leftovers().empty()) << fmt::format("{}", fmt::join(leftovers(), "\n"));
}

TEST_P(Tus, ProtocolErrorsLeaveTheOffsetWhereItWas) {
  const auto path = create(100);
  // Tus-Resumable: missing or another version is 412 with Tus-Version.
  for (const std::string version : {"", "0.2.2"}) {
    Headers h{{"Authorization", "Bearer " + token_}, {"Upload-Length", "5"}};
    if (!version.empty()) h["Tus-Resumable"] = version;
    const auto r = request(server_->port(), "POST", "/upload/resumable", h);
    EXPECT_EQ(r.status, 412) << version;
    EXPECT_EQ(r.header("tus-version"), "1.0.0");
    EXPECT_EQ(r.header("tus-resumable"), "1.0.0");
  }
  EXPECT_EQ(tus("POST", "/upload/resumable").status, 400) << "neither Upload-Length nor Upload-Defer-Length";
  EXPECT_EQ(tus("POST", "/upload/resumable", {{"Upload-Length", "5"}, {"Upload-Defer-Length", "1"}}).status, 400);
  EXPECT_EQ(tus("POST", "/upload/resumable", {{"Upload-Length", "-5"}}).status, 400);
  EXPECT_EQ(tus("POST", "/upload/resumable", {{"Upload-Length", "5"}, {"Upload-Metadata", "filename !!!"}}).status,
            400);
  EXPECT_EQ(tus("POST", "/upload/resumable", {{"Upload-Length", std::to_string((5ull << 30) + 1)}}).status, 413);
  EXPECT_EQ(request(server_->port(), "POST", "/upload/resumable", {{"Tus-Resumable", "1.0.0"}, {"Upload-Length", "5"}})
                .status,
            401);

  const auto wrong_type =
      tus("PATCH", path, {{"Content-Type", "application/octet-stream"}, {"Upload-Offset", "0"}}, "abc");
  EXPECT_EQ(wrong_type.status, 415);
  EXPECT_EQ(wrong_type.header("tus-resumable"), "1.0.0") << "on errors too";
  EXPECT_EQ(tus("PATCH", path, {{"Content-Type", "application/offset+octet-stream"}}, "abc").status, 400)
      << "no Upload-Offset";
  EXPECT_EQ(patch(path, 0, "abcde").status, 204);
  const auto conflict = patch(path, 3, "xyz");
  EXPECT_EQ(conflict.status, 409) << conflict.body;
  EXPECT_EQ(patch(path, 0, "xyz").status, 409);
  EXPECT_EQ(offset_of(path), 5u);
  EXPECT_EQ(patch(path, 5, std::string(96, 'x')).status, 413) << "past Upload-Length";
  EXPECT_EQ(offset_of(path), 5u);
  EXPECT_EQ(patch(path, 5, "abc", {{"Upload-Checksum", "sha512 AAAAAA=="}}).status, 400);
  const auto mismatch = patch(path, 5, "fghij", {{"Upload-Checksum", "sha1 " + sha1_b64("fghiJ")}});
  EXPECT_EQ(mismatch.status, 460) << mismatch.body;
  EXPECT_EQ(mismatch.reason, "Checksum Mismatch");
  EXPECT_EQ(offset_of(path), 5u) << "a chunk that fails its checksum counts for nothing";
  for (const auto& [algorithm, digest] :
       std::vector<std::pair<std::string, std::string>>{{"sha1", sha1_b64("fghij")}}) {
    const auto ok = patch(path, 5, "fghij", {{"Upload-Checksum", algorithm + " " + digest}});
    EXPECT_EQ(ok.status, 204) << ok.body;
  }
  auto sha256 = util::NamedHash::make("sha256");
  sha256->update(std::string_view("klmno"));
  EXPECT_EQ(patch(path, 10, "klmno", {{"Upload-Checksum", "sha256 " + b64(sha256->finish())}}).status, 204);
  auto md5 = util::NamedHash::make("md5");
  md5->update(std::string_view("pqrst"));
  EXPECT_EQ(patch(path, 15, "pqrst", {{"Upload-Checksum", "md5 " + b64(md5->finish())}}).status, 204);
  auto crc32 = util::NamedHash::make("crc32");
  crc32->update(std::string_view("uvwxy"));
  EXPECT_EQ(patch(path, 20, "uvwxy", {{"Upload-Checksum", "crc32 " + b64(crc32->finish())}}).status, 204);
  EXPECT_EQ(patch(path, 25, "z", {{"Upload-Checksum", "crc32 AAAAAA=="}}).status, 460);
  EXPECT_EQ(offset_of(path), 25u);
  const auto get = tus("GET", path);
  EXPECT_EQ(get.status, 405) << "tus has no GET of an upload";
  EXPECT_EQ(get.header("tus-resumable"), "1.0.0") << "the router's answers are tus answers too";
  const auto deeper = tus("HEAD", path + "/more");  // only PUT /upload/{name*} is there
  EXPECT_EQ(deeper.status, 405);
  EXPECT_EQ(deeper.header("tus-resumable"), "1.0.0");
  EXPECT_EQ(tus("GET", "/files").header("tus-resumable"), "") << "only under /upload/resumable";
}

// Two Upload-Offset (or Upload-Length) headers are refused as two
// Content-Lengths are: which one a proxy believed is anyone's guess. And an
// empty upload has no room for a creation body. Raw, and with curl.
TEST_P(Tus, RepeatedTusHeadersAndABodyForAnEmptyUploadAreRefused) {
  const auto path = create(10);
  const auto raw = [&](const std::string& head_and_body) {
    Connection c(server_->port());
    c.send(head_and_body);
    return c.read_response(10s);
  };
  const std::string auth = "Tus-Resumable: 1.0.0\r\nAuthorization: Bearer " + token_ + "\r\n";
  auto r = raw("PATCH " + path + " HTTP/1.1\r\nHost: x\r\n" + auth +
               "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nUpload-Offset: 5\r\n"
               "Content-Length: 5\r\n\r\nhello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_NE(r->body.find("Upload-Offset is given more than once"), std::string::npos) << r->body;
  EXPECT_EQ(offset_of(path), 0u);
  r = raw("POST /upload/resumable HTTP/1.1\r\nHost: x\r\n" + auth +
          "Upload-Length: 10\r\nUpload-Length: 20\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  r = raw("POST /upload/resumable HTTP/1.1\r\nHost: x\r\n" + auth +
          "Upload-Length: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413) << r->body;
  EXPECT_TRUE(r->header("location").empty());

  const std::string base = "http://127.0.0.1:" + std::to_string(server_->port());
  const std::string curl =
      "curl -sS -o /dev/null -w '%{http_code}' -H 'Tus-Resumable: 1.0.0' -H 'Authorization: Bearer " + token_ + "' ";
  const auto status_of = [](const std::string& command) {
    const auto out = run_program({"/bin/sh", "-c", command}, {{"PATH", "/usr/bin:/bin"}});
    return out.out;
  };
  EXPECT_EQ(status_of(curl +
                      "-X PATCH -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' "
                      "-H 'Upload-Offset: 0' --data-binary hello " +
                      base + path),
            "400");
  EXPECT_EQ(status_of(curl +
                      "-X POST -H 'Upload-Length: 0' -H 'Content-Type: application/offset+octet-stream' "
                      "--data-binary abc " +
                      base + "/upload/resumable"),
            "413");
  EXPECT_EQ(offset_of(path), 0u);
  EXPECT_EQ(patch(path, 0, "0123456789").status, 204);
}

TEST_P(Tus, DeferredLengthIsGivenOnALaterPatch) {
  const auto path = create(std::nullopt, "filename " + b64("later.bin"));
  const auto head = tus("HEAD", path);
  EXPECT_EQ(head.header("upload-defer-length"), "1");
  EXPECT_EQ(head.header("upload-length"), "");
  const std::string content = ContentStream::make(on_s3() ? 6 * MiB : 300'000, 3);
  const std::size_t first = content.size() / 2;
  ASSERT_EQ(patch(path, 0, content.substr(0, first)).status, 204);
  EXPECT_EQ(tus("HEAD", path).header("upload-defer-length"), "1");
  const auto last = patch(path, first, content.substr(first), {{"Upload-Length", std::to_string(content.size())}});
  ASSERT_EQ(last.status, 204) << last.body;
  const auto done = tus("HEAD", path);
  EXPECT_EQ(done.header("upload-length"), std::to_string(content.size()));
  EXPECT_EQ(done.header("upload-defer-length"), "");
  const auto bytes =
      request(server_->port(), "GET", "/files/" + id_of(path) + "/content", {{"Authorization", "Bearer " + token_}});
  EXPECT_EQ(bytes.status, 200);
  EXPECT_TRUE(bytes.body == content);
}

TEST_P(Tus, CreationWithUploadAndAnEmptyFile) {
  const auto with_body = tus("POST", "/upload/resumable",
                             {{"Upload-Length", "11"},
                              {"Content-Type", "application/offset+octet-stream"},
                              {"Upload-Metadata", "filename " + b64("hi.txt")}},
                             "hello");
  ASSERT_EQ(with_body.status, 201) << with_body.body;
  EXPECT_EQ(with_body.header("upload-offset"), "5");
  EXPECT_TRUE(with_body.header("location").starts_with("http://127.0.0.1/upload/resumable/"))
      << with_body.header("location");
  const auto path = path_of(with_body.header("location"));
  EXPECT_EQ(patch(path, 5, " world").status, 204);
  const auto file = request(server_->port(), "GET", "/files/" + id_of(path), {{"Authorization", "Bearer " + token_}});
  EXPECT_EQ(file.json().at("sha256").as_string(), util::sha256_hex("hello world"));

  const auto whole = tus("POST", "/upload/resumable",
                         {{"Upload-Length", "5"}, {"Content-Type", "application/offset+octet-stream"}}, "12345");
  EXPECT_EQ(whole.header("upload-offset"), "5");
  EXPECT_EQ(whole.header("upload-expires"), "") << "complete at once";

  const auto empty = tus("POST", "/upload/resumable", {{"Upload-Length", "0"}});
  ASSERT_EQ(empty.status, 201) << empty.body;
  const auto empty_file = request(server_->port(), "GET", "/files/" + id_of(path_of(empty.header("location"))),
                                  {{"Authorization", "Bearer " + token_}});
  ASSERT_EQ(empty_file.status, 200) << empty_file.body;
  EXPECT_EQ(empty_file.json().at("file_size").as_int64(), 0);
  EXPECT_EQ(empty_file.json().at("status").as_string(), "complete");
  EXPECT_EQ(tus("POST", "/upload/resumable", {{"Upload-Length", "5"}, {"Content-Type", "text/plain"}}, "12345").status,
            415);

  // A first chunk that fails its checksum: the upload exists, at offset 0.
  const auto spoilt = tus("POST", "/upload/resumable",
                          {{"Upload-Length", "10"},
                           {"Content-Type", "application/offset+octet-stream"},
                           {"Upload-Checksum", "sha1 " + sha1_b64("12346")}},
                          "12345");
  ASSERT_EQ(spoilt.status, 201) << spoilt.body;
  EXPECT_EQ(spoilt.header("upload-offset"), "0");
  const auto again = path_of(spoilt.header("location"));
  EXPECT_EQ(patch(again, 0, "1234567890").status, 204);
}

TEST_P(Tus, MethodOverrideOnPost) {
  const auto path = create(6);
  const auto patched = tus("POST", path,
                           {{"X-HTTP-Method-Override", "PATCH"},
                            {"Content-Type", "application/offset+octet-stream"},
                            {"Upload-Offset", "0"}},
                           "abc");
  EXPECT_EQ(patched.status, 204) << patched.body;
  EXPECT_EQ(patched.header("upload-offset"), "3");
  const auto head = tus("POST", path, {{"X-HTTP-Method-Override", "HEAD"}});
  EXPECT_EQ(head.header("upload-offset"), "3");
  EXPECT_EQ(tus("POST", path).status, 405);
  EXPECT_EQ(tus("POST", path, {{"X-HTTP-Method-Override", "DELETE"}}).status, 204);
  EXPECT_EQ(tus("HEAD", path).status, 404);
}

TEST_P(Tus, AnotherUsersUploadIsNotFound) {
  const auto path = create(10);
  ASSERT_EQ(patch(path, 0, "abc").status, 204);
  const auto bob = server_->create_user_with_token("bob");
  const std::string missing = "/upload/resumable/01234567-89ab-7def-8123-456789abcdef";
  for (const std::string& target : {path, missing, std::string("/upload/resumable/not-an-id")}) {
    const auto h = tus("HEAD", target, {}, "", bob);
    EXPECT_EQ(h.status, 404) << target;
    EXPECT_EQ(
        tus("PATCH", target, {{"Content-Type", "application/offset+octet-stream"}, {"Upload-Offset", "3"}}, "d", bob)
            .status,
        404);
    EXPECT_EQ(tus("DELETE", target, {}, "", bob).status, 404);
  }
  EXPECT_EQ(offset_of(path), 3u) << "untouched";
}

TEST_P(Tus, TerminationRemovesEverything) {
  const auto size = on_s3() ? 7 * MiB : 100'000;
  const auto path = create(size + 10);
  ASSERT_EQ(patch(path, 0, ContentStream::make(size, 1)).status, 204);
  EXPECT_FALSE(leftovers().empty()) << "something is stored before it is terminated";
  const auto r = tus("DELETE", path);
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(r.header("tus-resumable"), "1.0.0");
  EXPECT_EQ(tus("HEAD", path).status, 404);
  EXPECT_EQ(patch(path, size, "x").status, 404);
  EXPECT_EQ(tus("DELETE", path).status, 404);
  EXPECT_TRUE(leftovers().empty()) << fmt::format("{}", fmt::join(leftovers(), "\n"));
  EXPECT_EQ(server_->database()->find_user("alice")->used_bytes, 0) << "its reservation is given back";
}

// A second PATCH while one is writing gets 423; once the first one's client
// goes silent (a half-open connection), a new one is accepted within 10 s,
// and the old one can never write again. With one upload at a time allowed,
// the reconnect is the same upload, not a second one (423, not 429), and
// nothing of it is left holding the user's place afterwards.
TEST_P(Tus, OneWriterAtATimeAndAReconnectTakesOver) {
  start({{"S3UP_MAX_CONCURRENT_UPLOADS", "1"}});
  const std::uint64_t size = on_s3() ? 11 * MiB : 2 * MiB;
  const std::string content = ContentStream::make(size, 11);
  const auto path = create(size);
  Connection stalled(server_->port());
  const std::string head = "PATCH " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n" +
                           "Authorization: Bearer " + token_ + "\r\nContent-Type: application/offset+octet-stream\r\n" +
                           "Upload-Offset: 0\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n";
  // The old request sends garbage after its first 64 KiB: if it ever wrote
  // again, the file would not match.
  ASSERT_TRUE(stalled.send(head + content.substr(0, 64 * 1024)));
  std::this_thread::sleep_for(300ms);
  const auto busy = patch(path, offset_of(path), content.substr(0, 1000));
  EXPECT_EQ(busy.status, 423) << busy.body;

  const auto broken_at = std::chrono::steady_clock::now();
  std::optional<Response> accepted;
  while (std::chrono::steady_clock::now() - broken_at < 15s) {
    const auto offset = offset_of(path);
    auto r = patch(path, offset, content.substr(offset));
    if (r.status == 204) {
      accepted = r;
      break;
    }
    EXPECT_EQ(r.status, 423) << r.body;
    std::this_thread::sleep_for(500ms);
  }
  ASSERT_TRUE(accepted) << server_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - broken_at, 10s);
  // The old connection wakes up: it must not write.
  stalled.send(std::string(size - 64 * 1024, 'X'));
  const auto old = stalled.read_response(10s);
  if (old) EXPECT_NE(old->status, 204) << old->body;
  const auto bytes =
      request(server_->port(), "GET", "/files/" + id_of(path) + "/content", {{"Authorization", "Bearer " + token_}});
  EXPECT_TRUE(bytes.body == content);
  stalled.close();
  const auto next = create(3);
  EXPECT_TRUE(eventually([&] { return patch(next, 0, "abc").status == 204; })) << "the user's one place was freed";
}

// A writer that lost its lease while its client was silent writes nothing
// more anywhere: not the bytes it held when its connection ends, not a
// part, not a tail. Its lease lapses behind its back, so its own clock says
// it still holds it (a paused process, a slow clock): only the store's
// fence stops it. The next writer, on another instance, takes over from a
// recorded point (a part and a tail on S3) and completes the upload; the
// object keeps its bytes, SHA-256 and size, and the store holds nothing else.
TEST_P(Tus, AWriterThatLostItsLeaseNeverWritesIntoThePublishedObject) {
  start({{"S3UP_DEFAULT_QUOTA", "64MiB"}});
  const auto other = second_instance();
  const std::uint64_t first = on_s3() ? 5 * MiB + 100 : MiB + 100;
  const std::uint64_t size = first + (on_s3() ? 6 * MiB : 3 * MiB);
  const std::string content = ContentStream::make(size, 41);
  const std::string garbage = ContentStream::make(size - first, 42);
  const auto path = create(size);
  const auto id = id_of(path);
  ASSERT_EQ(patch(path, 0, content.substr(0, first)).status, 204);

  Connection stalled(server_->port());
  ASSERT_TRUE(stalled.send(patch_head(path, first, size - first) + garbage.substr(0, 1536 * 1024)));
  std::this_thread::sleep_for(500ms);  // it has the lease and is writing
  lapse_lease(id);
  const auto taken = request(
      other->port(), "PATCH", path,
      tus_headers({{"Content-Type", "application/offset+octet-stream"}, {"Upload-Offset", std::to_string(first)}}),
      content.substr(first));
  ASSERT_EQ(taken.status, 204) << taken.body << other->log();
  // The old request's client wakes up, sends a little more, and goes: the
  // old request would keep what it holds (a flush, a tail object).
  stalled.send(garbage.substr(1536 * 1024, 64 * 1024));
  std::this_thread::sleep_for(300ms);
  stalled.close();
  ASSERT_TRUE(eventually([&] { return server_->log().find("PATCH /upload/resumable/{id} 4") != std::string::npos; }))
      << "the old request did not end";

  const auto row = server_->database()->get_upload(id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->status, db::UploadStatus::complete);
  EXPECT_EQ(row->file_size, size);
  EXPECT_EQ(row->sha256, util::sha256_hex(content));
  const auto bytes =
      request(server_->port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token_}});
  EXPECT_TRUE(bytes.body == content) << "the published object changed";
  EXPECT_EQ(leftovers(), std::vector<std::string>{});
  const std::string key = (on_s3() ? "objects/" : "") + row->storage_key;
  EXPECT_EQ(stored_objects(), std::vector<std::string>{key});
}

// A checksummed chunk counts whole or not at all, so a request cut off
// after its first part landed records nothing: the multipart upload it
// began is the store's to forget, and completing the upload later leaves
// none of it behind.
TEST_P(Tus, AChecksummedChunkCutAfterItsFirstPartLeavesNothingOnceComplete) {
  const std::uint64_t size = 7 * MiB;
  const std::string content = ContentStream::make(size, 43);
  const auto path = create(size);
  Connection cut(server_->port());
  const std::string checksum = "Upload-Checksum: sha1 " + sha1_b64(content) + "\r\n";
  ASSERT_TRUE(cut.send(patch_head(path, 0, size, checksum) + content.substr(0, 6 * MiB)));
  std::this_thread::sleep_for(1s);  // the first part lands
  cut.close();
  ASSERT_TRUE(eventually([&] { return server_->log().find("PATCH /upload/resumable/{id}") != std::string::npos; }));
  EXPECT_EQ(offset_of(path), 0u);
  const auto done = patch(path, 0, content, {{"Upload-Checksum", "sha1 " + sha1_b64(content)}});
  ASSERT_EQ(done.status, 204) << done.body;
  EXPECT_EQ(leftovers(), std::vector<std::string>{});
  const auto row = server_->database()->get_upload(id_of(path));
  EXPECT_EQ(stored_objects(), std::vector<std::string>{(on_s3() ? "objects/" : "") + row->storage_key});
}

TEST_P(Tus, ExpiredUploadsLeaveNothing) {
  start({{"S3UP_RESUMABLE_EXPIRY", "2s"}, {"S3UP_JANITOR_INTERVAL", "1s"}, {"S3UP_DEFAULT_QUOTA", "1GiB"}});
  const auto size = on_s3() ? 7 * MiB : 100'000;  // S3: a part and a tail
  const auto path = create(size + 10);
  ASSERT_EQ(patch(path, 0, ContentStream::make(size, 2)).status, 204);
  const auto finished = create(3);
  ASSERT_EQ(patch(finished, 0, "abc").status, 204);
  EXPECT_FALSE(leftovers().empty());
  EXPECT_GT(server_->database()->find_user("alice")->used_bytes, static_cast<std::int64_t>(size));
  EXPECT_TRUE(eventually([&] { return tus("HEAD", path).status == 404; }, 15s));
  EXPECT_TRUE(eventually([&] { return leftovers().empty(); }, 10s)) << fmt::format("{}", fmt::join(leftovers(), "\n"));
  EXPECT_TRUE(
      eventually([&] { return server_->database()->get_upload(id_of(path))->status == db::UploadStatus::failed; }));
  EXPECT_EQ(server_->database()->find_user("alice")->used_bytes, 3) << "the expired upload's reservation is back";
  EXPECT_EQ(tus("HEAD", finished).status, 200) << "a finished upload does not expire";
  EXPECT_EQ(patch(path, size, "x").status, 404);
}

TEST_P(Tus, QuotaAndSizeLimitsAre413) {
  start({{"S3UP_DEFAULT_QUOTA", "1MiB"}, {"S3UP_MAX_UPLOAD_BYTES", "3MiB"}});
  EXPECT_EQ(tus("POST", "/upload/resumable", {{"Upload-Length", std::to_string(3 * MiB + 1)}}).status, 413);
  const auto over_quota = tus("POST", "/upload/resumable", {{"Upload-Length", std::to_string(2 * MiB)}});
  EXPECT_EQ(over_quota.status, 413);
  EXPECT_NE(over_quota.body.find("quota"), std::string::npos) << over_quota.body;
  // A deferred length grows into the quota.
  const auto path = create(std::nullopt);
  EXPECT_EQ(patch(path, 0, std::string(512 * 1024, 'a')).status, 204);
  EXPECT_EQ(patch(path, 512 * 1024, std::string(768 * 1024, 'b')).status, 413);
  EXPECT_EQ(offset_of(path), 512u * 1024);
  const auto deferred_past_max = create(std::nullopt);
  EXPECT_EQ(patch(deferred_past_max, 0, "x", {{"Upload-Length", std::to_string(3 * MiB + 1)}}).status, 413);
}

TEST_P(Tus, AllowedTypesAreSniffedEvenFromSmallFirstChunks) {
  start({{"S3UP_ALLOWED_TYPES", "image/png"}});
  const std::string png =
      std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89", 33) +
      std::string(8000, '\0');
  const auto path = create(png.size(), "filetype " + b64("text/plain"));
  ASSERT_EQ(patch(path, 0, png.substr(0, 100)).status, 204) << "too few bytes to tell yet";
  ASSERT_EQ(patch(path, 100, png.substr(100)).status, 204);
  const auto file = request(server_->port(), "GET", "/files/" + id_of(path), {{"Authorization", "Bearer " + token_}});
  EXPECT_EQ(file.json().at("content_type").as_string(), "image/png") << "the bytes decide, not filetype";

  const auto text = create(10'000);
  EXPECT_EQ(patch(text, 0, std::string(10'000, 't')).status, 415);

  // A small file whose type is only known once its last byte is in: the
  // refusal ends the upload, so a HEAD cannot report it whole (which a
  // client reads as done).
  const auto small_text = create(3000);
  ASSERT_EQ(patch(small_text, 0, std::string(1000, 't')).status, 204);
  EXPECT_EQ(patch(small_text, 1000, std::string(2000, 't')).status, 415);
  EXPECT_EQ(tus("HEAD", small_text).status, 404);
  EXPECT_FALSE(server_->database()->get_upload(id_of(small_text))) << "ended as a termination ends it";
  // The same for a type refused from a large first chunk.
  EXPECT_EQ(tus("HEAD", text).status, 404);
}

// The last PATCH's commit landed and only its record failed (the database):
// the object is there, whole, and the row pending at offset = length. The
// next HEAD records it from the object rather than report a pending upload
// whole (which a client reads as done) or lose it at its expiry.
TEST_P(Tus, AHeadRecordsAnUploadWhoseCommitLandedButNotItsRecord) {
  const std::uint64_t size = 12 * MiB + 11;  // S3: two parts and a tail
  const std::string content = ContentStream::make(size, 31);
  const auto path = create(size);
  ASSERT_EQ(patch(path, 0, content.substr(0, MiB)).status, 204);
  ASSERT_EQ(patch(path, MiB, content.substr(MiB)).status, 204);
  const auto id = id_of(path);
  // As a completion whose record was lost leaves it: the row still pending,
  // the lease given back (or lapsed). (A recorded completion keeps its
  // lease: nobody writes a complete upload again.)
  run_sql("UPDATE uploads SET status = 'pending', sha256 = '', completed_at = NULL WHERE id = '" + id + "'");
  run_sql("UPDATE resumable_uploads SET lease_expires_at = NULL WHERE upload_id = '" + id + "'");

  const auto head = tus("HEAD", path);
  ASSERT_EQ(head.status, 200) << server_->log();
  EXPECT_EQ(head.header("upload-offset"), std::to_string(size));
  const auto row = server_->database()->get_upload(id);
  EXPECT_EQ(row->status, db::UploadStatus::complete);
  EXPECT_EQ(row->sha256, util::sha256_hex(content));
  const auto bytes =
      request(server_->port(), "GET", "/files/" + id + "/content", {{"Authorization", "Bearer " + token_}});
  ASSERT_EQ(bytes.status, 200);
  EXPECT_TRUE(bytes.body == content);
}

TEST_P(Tus, CorsForBrowserPages) {
  start({{"S3UP_CORS_ORIGINS", "https://app.example"}});
  const auto preflight = request(server_->port(), "OPTIONS", "/upload/resumable",
                                 {{"Origin", "https://app.example"},
                                  {"Access-Control-Request-Method", "POST"},
                                  {"Access-Control-Request-Headers", "authorization,tus-resumable,upload-length"}});
  EXPECT_EQ(preflight.status, 200);
  EXPECT_EQ(preflight.header("access-control-allow-origin"), "https://app.example");
  for (const std::string h :
       {"Authorization", "Content-Type", "Upload-Length", "Upload-Offset", "Tus-Resumable", "Upload-Metadata",
        "Upload-Defer-Length", "Upload-Checksum", "X-HTTP-Method-Override", "X-Request-Id"}) {
    EXPECT_NE(preflight.header("access-control-allow-headers").find(h), std::string::npos) << h;
  }
  EXPECT_NE(preflight.header("access-control-allow-methods").find("PATCH"), std::string::npos);
  const auto created = tus("POST", "/upload/resumable", {{"Upload-Length", "3"}, {"Origin", "https://app.example"}});
  EXPECT_EQ(created.header("access-control-allow-origin"), "https://app.example");
  for (const std::string h :
       {"Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Upload-Metadata", "Upload-Defer-Length",
        "Tus-Version", "Tus-Resumable", "Tus-Max-Size", "Tus-Extension", "Tus-Checksum-Algorithm", "X-Request-Id"}) {
    EXPECT_NE(created.header("access-control-expose-headers").find(h), std::string::npos) << h;
  }
  const auto unauthorized = request(server_->port(), "GET", "/files", {{"Origin", "https://app.example"}});
  EXPECT_EQ(unauthorized.status, 401);
  EXPECT_EQ(unauthorized.header("access-control-allow-origin"), "https://app.example") << "errors are readable too";
  const auto other = request(server_->port(), "GET", "/files",
                             {{"Origin", "https://evil.example"}, {"Authorization", "Bearer " + token_}});
  EXPECT_EQ(other.header("access-control-allow-origin"), "");
}

TEST_P(Tus, LocationFromPublicUrlOrATrustedProxy) {
  const auto plain = tus("POST", "/upload/resumable", {{"Upload-Length", "1"}, {"X-Forwarded-Host", "evil.example"}});
  EXPECT_TRUE(plain.header("location").starts_with("http://127.0.0.1/upload/resumable/"))
      << "an untrusted peer's "
         "forwarded headers are ignored";
  start({{"S3UP_TRUSTED_PROXIES", "127.0.0.1"}});
  const auto proxied =
      tus("POST", "/upload/resumable",
          {{"Upload-Length", "1"}, {"X-Forwarded-Host", "files.example"}, {"X-Forwarded-Proto", "https"}});
  EXPECT_TRUE(proxied.header("location").starts_with("https://files.example/upload/resumable/"))
      << proxied.header("location");
  start({{"S3UP_PUBLIC_URL", "https://up.example.com/"}});
  const auto configured = tus("POST", "/upload/resumable", {{"Upload-Length", "1"}});
  EXPECT_TRUE(configured.header("location").starts_with("https://up.example.com/upload/resumable/"))
      << configured.header("location");
}

INSTANTIATE_TEST_SUITE_P(Stacks, Tus, ::testing::Values(Stack{"local_sqlite"}, Stack{"s3_postgres"}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace s3up::test
