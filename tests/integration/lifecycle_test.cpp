// The server's life: first start, the CLI, timeouts for slow clients, and
// graceful shutdown with uploads in flight.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <boost/json/parse.hpp>

#include "harness.hpp"
#include "util/crypto.hpp"

namespace s3up::test {
namespace {

using namespace std::chrono_literals;
using Env = std::map<std::string, std::string>;

std::string form_request_head(const std::string& token, std::size_t body_size) {
  return "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
         "\r\nContent-Type: " + Multipart::content_type() + "\r\nContent-Length: " + std::to_string(body_size) +
         "\r\n\r\n";
}

TEST(Lifecycle, FirstStartExplainsHowToCreateAUser) {
  ServerProcess s;
  EXPECT_TRUE(eventually([&] { return s.log().find("s3uploader user add") != std::string::npos; }, 5s)) << s.log();
  EXPECT_NE(s.log().find("s3uploader token create"), std::string::npos);
}

TEST(Lifecycle, CliCommandsAndHelp) {
  ServerProcess s;
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"},
                                               {"serve", "--help"},
                                               {"migrate", "--help"},
                                               {"user", "add", "--help"},
                                               {"user", "list", "--help"},
                                               {"token", "create", "--help"},
                                               {"token", "list", "--help"},
                                               {"token", "revoke", "--help"}}) {
    const auto r = s.cli(args);
    EXPECT_EQ(r.exit_code, 0) << args.front() << " " << r.err;
    EXPECT_FALSE(r.out.empty());
  }
  EXPECT_EQ(s.cli({"migrate"}).exit_code, 0);
  EXPECT_EQ(s.cli({"user", "add", "carol"}).exit_code, 0);
  EXPECT_NE(s.cli({"user", "add", "carol"}).exit_code, 0) << "duplicate user accepted";
  EXPECT_NE(s.cli({"token", "create", "nobody"}).exit_code, 0);
  const auto created = s.cli({"token", "create", "carol", "--name", "laptop", "--expires-in", "30d"});
  ASSERT_EQ(created.exit_code, 0);
  EXPECT_TRUE(created.out.starts_with("s3u_"));
  EXPECT_EQ(created.out.size(), 48u);  // token + newline, nothing else on stdout
  const auto list = s.cli({"token", "list", "carol"});
  EXPECT_NE(list.out.find("laptop"), std::string::npos);
  EXPECT_EQ(list.out.find(created.out.substr(0, 47)), std::string::npos) << "token list shows the secret";
  EXPECT_NE(s.cli({"token", "revoke", "tok_doesnotexist"}).exit_code, 0);
  EXPECT_NE(s.cli({"user", "list"}).out.find("carol"), std::string::npos);
}

// Tried as a new user would, from a directory of their own: every mistake
// gets a sentence that says what to do, and nothing is made by accident.
TEST(Lifecycle, MistakesAreExplainedAndMakeNothing) {
  const auto dir = temporary_directory();
  const auto in_dir = [&](const std::string& args) {
    return run_program({"/bin/sh", "-c", "cd " + dir.string() + " && exec " + binary_path() + " " + args},
                       {{"PATH", "/usr/bin:/bin"}});
  };
  // An admin command where no service ran: no new empty database.
  auto r = in_dir("user list");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no database at " + (dir / "data" / "s3uploader.db").string()), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "data")) << "an admin command made a database";
  r = in_dir("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(std::regex_match(r.out, std::regex(R"(s3uploader \d+\.\d+\.\d+ \(.+\)\nlibraries: .+\n)"))) << r.out;
  r = in_dir("ls --max-upload-bytes 1KiB");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--max-upload-bytes is a setting of the service"), std::string::npos) << r.err;
  r = in_dir("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.err;
  // A usage error is exit status 2, whichever it is.
  for (const std::string wrong : {"push --bogus x", "user add", "push", "--nope"}) {
    r = in_dir(wrong);
    EXPECT_EQ(r.exit_code, 2) << wrong << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << wrong;
  }
  r = in_dir("serve --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--max-upload-bytes"), std::string::npos) << r.out;
  // What config prints, --config reads back.
  r = in_dir("config --idle-timeout 90s --max-upload-bytes 1GiB");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  { std::ofstream(dir / "printed.toml") << r.out; }
  const auto again = in_dir("config --config printed.toml");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  EXPECT_NE(r.out.find("idle_timeout = \"90s\""), std::string::npos) << r.out;
  // A port in use and a storage directory that cannot be made: the address,
  // the setting.
  ServerProcess s;
  r = in_dir("serve --listen 127.0.0.1:" + std::to_string(s.port()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot listen on 127.0.0.1:" + std::to_string(s.port()) +
                       ": Address already in use (the "
                       "listen setting"),
            std::string::npos)
      << r.err;
  { std::ofstream(dir / "a-file") << "in the way"; }
  r = in_dir("serve --listen 127.0.0.1:0 --storage file://./a-file/objects");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("(the storage setting, S3UP_STORAGE)"), std::string::npos) << r.err;
  std::filesystem::remove_all(dir);
}

TEST(Lifecycle, ReadinessSaysWhenTheObjectsDirectoryCannotBeWritten) {
  ServerProcess s;
  const auto ready = request(s.port(), "GET", "/readyz");
  ASSERT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(ready.body.find("Bearer"), std::string::npos);
  // Not a directory any more (as root, a directory's mode would not stop us).
  const std::filesystem::path dir = s.objects_dir(), aside = dir.string() + ".aside";
  std::filesystem::rename(dir, aside);
  { std::ofstream(dir) << "not a directory"; }
  ASSERT_TRUE(eventually([&] { return request(s.port(), "GET", "/readyz").status == 503; }, 10s));
  const auto down = request(s.port(), "GET", "/readyz");
  EXPECT_EQ(down.json().at("status").as_string(), "unavailable");
  EXPECT_TRUE(down.json().at("checks").at("storage").as_string().starts_with("error: ")) << down.body;
  EXPECT_EQ(down.json().at("checks").at("database").as_string(), "ok");
  EXPECT_EQ(request(s.port(), "GET", "/healthz").status, 200);
  std::filesystem::remove(dir);
  std::filesystem::rename(aside, dir);
  EXPECT_TRUE(eventually([&] { return request(s.port(), "GET", "/readyz").status == 200; }, 10s));
}

TEST(Lifecycle, JsonLogsAreOneObjectPerLineAndShowNoSecretEvenAtDebug) {
  const std::string jwt_secret = "a-shared-secret-of-at-least-32-bytes!";
  ServerProcess s(Env{{"S3UP_LOG_FORMAT", "json"}, {"S3UP_LOG_LEVEL", "debug"}, {"S3UP_JWT_SECRET", jwt_secret},
                      {"S3UP_JWT_AUDIENCE", "s3uploader-tests"}});
  const auto token = s.create_user_with_token("alice");
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer " + token}};
  // A JWT signed with the shared secret (HS256), used as a bearer token.
  const auto exp = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch() + std::chrono::minutes(10))
                       .count();
  const std::string signing_input = util::base64url(R"({"alg":"HS256","typ":"JWT"})") + "." +
                                    util::base64url(R"({"sub":"jwt-user","aud":"s3uploader-tests","exp":)" + std::to_string(exp) + "}");
  const auto mac = util::hmac_sha256(jwt_secret, signing_input);
  const std::string jwt = signing_input + "." + util::base64url(std::span<const std::uint8_t>(mac));
  EXPECT_EQ(request(s.port(), "GET", "/files", {{"Authorization", "Bearer " + jwt}}).status, 200);
  // An upload link: its URL is its secret.
  const auto upload_link = request(s.port(), "POST", "/upload-links", auth);
  ASSERT_EQ(upload_link.status, 201) << upload_link.body;
  const std::string link_url(upload_link.json().at("url").as_string());
  const std::string link_secret = link_url.substr(link_url.rfind('/') + 1);
  EXPECT_EQ(request(s.port(), "PUT", link_url.substr(link_url.find("/u/")) + "/via-link.txt", {}, "via link").status, 201);
  // A little of everything that carries a secret: a token (good and bad), a
  // download link's signature, a tus upload.
  const auto put = request(s.port(), "PUT", "/upload/notes.txt", auth, "some notes");
  ASSERT_EQ(put.status, 201) << put.body;
  const std::string id(put.json().at("file_id").as_string());
  const auto link = request(s.port(), "POST", "/files/" + id + "/link", auth);
  ASSERT_EQ(link.status, 200) << link.body;
  const std::string url(link.json().at("url").as_string());
  const std::string target = url.substr(url.find("/files/"));
  EXPECT_EQ(request(s.port(), "GET", target).status, 200);
  const std::string signature = target.substr(target.find("signature=") + 10);
  EXPECT_EQ(request(s.port(), "GET", "/files", {{"Authorization", "Bearer s3u_not-a-real-token"}}).status, 401);
  auto tus = auth;
  tus["Tus-Resumable"] = "1.0.0";
  tus["Upload-Length"] = "5";
  const auto created = request(s.port(), "POST", "/upload/resumable", tus);
  ASSERT_EQ(created.status, 201) << created.body;
  auto patch = auth;
  patch["Tus-Resumable"] = "1.0.0";
  patch["Upload-Offset"] = "0";
  patch["Content-Type"] = "application/offset+octet-stream";
  const std::string location = created.header("location");
  EXPECT_EQ(request(s.port(), "PATCH", location.substr(location.find("/upload/")), patch, "hello").status, 204);
  EXPECT_EQ(request(s.port(), "GET", "/readyz").status, 200);

  ASSERT_TRUE(eventually([&] { return s.log().find("\"status\":204") != std::string::npos; }));
  // Whole lines only: the service may be writing one as the log is read.
  std::string log = s.log();
  log.erase(log.rfind('\n') + 1);
  std::istringstream lines(log);
  std::string line;
  int access_lines = 0, debug_lines = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    boost::system::error_code ec;
    const auto value = boost::json::parse(line, ec);
    ASSERT_FALSE(ec) << "not JSON: " << line;
    const auto& o = value.as_object();
    for (const char* key : {"ts", "level", "logger", "msg"}) ASSERT_TRUE(o.contains(key)) << key << " in " << line;
    EXPECT_TRUE(std::regex_match(std::string(o.at("ts").as_string()),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
        << line;
    if (o.at("level").as_string() == "debug") ++debug_lines;
    if (o.at("logger").as_string() == "access") {
      ++access_lines;
      for (const char* key : {"request_id", "method", "route", "status", "duration_ms", "bytes_in", "bytes_out",
                              "user_id", "remote"}) {
        EXPECT_TRUE(o.contains(key)) << key << " in " << line;
      }
    }
    EXPECT_EQ(line.find(token), std::string::npos) << "the token: " << line;
    EXPECT_EQ(line.find("s3u_not-a-real-token"), std::string::npos) << "a presented token: " << line;
    EXPECT_EQ(line.find(signature), std::string::npos) << "a link's signature: " << line;
    EXPECT_EQ(line.find(jwt.substr(jwt.rfind('.'))), std::string::npos) << "a JWT: " << line;
    EXPECT_EQ(line.find(signing_input), std::string::npos) << "a JWT: " << line;
    EXPECT_EQ(line.find(jwt_secret), std::string::npos) << "the JWT secret: " << line;
    EXPECT_EQ(line.find(link_secret), std::string::npos) << "an upload link's secret: " << line;
    EXPECT_EQ(line.find("Bearer s3u_"), std::string::npos) << line;
  }
  EXPECT_GE(access_lines, 7);
  EXPECT_GT(debug_lines, 0) << "log_level = debug";
}

TEST(Lifecycle, MetricsCountExactlyWhatHappenedInPrometheusFormat) {
  ServerProcess s(Env{{"S3UP_MAX_UPLOAD_BYTES", "1000"}});
  const auto token = s.create_user_with_token("alice");
  const auto scrape = [&] {
    const auto r = request(s.port(), "GET", "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    return r.body;
  };
  const std::string ready = R"(s3uploader_http_requests_total{route="/readyz",method="GET",code="200"})";
  const std::string put = R"(s3uploader_http_requests_total{route="/upload/{name}",method="PUT",code="201"})";
  const std::string unauthorized = R"(s3uploader_http_requests_total{route="/files",method="GET",code="401"})";
  const auto before = scrape();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(request(s.port(), "GET", "/readyz").status, 200);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(request(s.port(), "PUT", "/upload/m" + std::to_string(i) + ".txt",
                      {{"Authorization", "Bearer " + token}}, "bytes")
                  .status,
              201);
  }
  EXPECT_EQ(request(s.port(), "GET", "/files").status, 401);
  // A tus upload of 5 bytes, and one refused for its length.
  std::map<std::string, std::string> tus{{"Authorization", "Bearer " + token}, {"Tus-Resumable", "1.0.0"}};
  tus["Upload-Length"] = "5";
  const auto created = request(s.port(), "POST", "/upload/resumable", tus);
  ASSERT_EQ(created.status, 201) << created.body;
  auto patch = tus;
  patch.erase("Upload-Length");
  patch["Upload-Offset"] = "0";
  patch["Content-Type"] = "application/offset+octet-stream";
  const std::string location = created.header("location");
  EXPECT_EQ(request(s.port(), "PATCH", location.substr(location.find("/upload/")), patch, "hello").status, 204);
  tus["Upload-Length"] = "5000";
  EXPECT_EQ(request(s.port(), "POST", "/upload/resumable", tus).status, 413);
  // The scrape itself is the one busy connection; a request before it is
  // counted idle a moment after its answer went out, so look until then.
  const std::string busy = R"(s3uploader_connections{state="busy"})";
  auto after = scrape();
  eventually([&] { return metric_sample(after = scrape(), busy) == 1; }, 5s);
  EXPECT_EQ(metric_sample(after, ready) - std::max(0.0, metric_sample(before, ready)), 3) << after;
  EXPECT_EQ(metric_sample(after, put) - std::max(0.0, metric_sample(before, put)), 2) << after;
  EXPECT_EQ(metric_sample(after, unauthorized) - std::max(0.0, metric_sample(before, unauthorized)), 1) << after;
  EXPECT_EQ(metric_sample(after, R"(s3uploader_http_request_duration_seconds_count{route="/upload/{name}"})"), 2);
  EXPECT_EQ(metric_sample(after, R"(s3uploader_buffer_budget_bytes{state="used"})"), 0) << "nothing in flight";
  EXPECT_EQ(metric_sample(after, R"(s3uploader_buffer_budget_waiters)"), 0);
  EXPECT_EQ(metric_sample(after, R"(s3uploader_uploads_total{kind="put",outcome="complete"})"), 2) << after;
  EXPECT_EQ(metric_sample(after, R"(s3uploader_uploads_total{kind="tus",outcome="complete"})"), 1) << after;
  EXPECT_EQ(metric_sample(after, R"(s3uploader_uploads_total{kind="tus",outcome="refused"})"), 1) << after;
  EXPECT_EQ(metric_sample(after, R"(s3uploader_uploads_total{kind="put",outcome="failed"})"), -1) << after;
  EXPECT_EQ(metric_sample(after, R"(s3uploader_upload_bytes_total{store="local"})"), 2 * 5 + 5) << after;
  EXPECT_EQ(metric_sample(after, R"(s3uploader_uploads_in_progress)"), 0);
  EXPECT_EQ(metric_sample(after, busy), 1) << after;
  EXPECT_GE(metric_sample(after, R"(s3uploader_db_pool_connections{state="idle"})"), 1) << after;
  EXPECT_EQ(metric_sample(after, R"(s3uploader_db_pool_connections{state="waiting"})"), 0) << after;
  EXPECT_GE(metric_sample(after, R"(s3uploader_db_query_duration_seconds_count{query="completeUpload"})"), 3) << after;
  // The janitor ran once at start, and found nothing.
  EXPECT_EQ(metric_sample(after, R"(s3uploader_janitor_runs_total{outcome="ran"})"), 1) << after;
  EXPECT_EQ(metric_sample(after, R"(s3uploader_janitor_removed_total{what="stale"})"), 0) << after;
  EXPECT_GT(metric_sample(after, "process_resident_memory_bytes"), 1e6);
  EXPECT_NE(after.find("s3uploader_build_info{version=\"0."), std::string::npos);
  EXPECT_EQ(after.find(token), std::string::npos);

  // Prometheus's own checker, when it is installed (install-deps --test does).
  if (std::system("command -v promtool > /dev/null") == 0) {
    const auto file = temporary_directory() / "metrics.txt";
    { std::ofstream(file) << after; }
    const auto checked = run_program({"/bin/sh", "-c", "promtool check metrics < " + file.string()}, {});
    EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
  }
}

TEST(Lifecycle, VersionNamesTheBuildAndItsLibraries) {
  for (const std::string how : {"version", "--version"}) {
    const auto r = run_program({binary_path(), how}, {});
    EXPECT_EQ(r.exit_code, 0) << how;
    EXPECT_TRUE(r.out.starts_with("s3uploader 0.")) << how << ": " << r.out;
    for (const char* library : {"Boost 1.81", "libcurl", "OpenSSL", "libpq", "SQLite", "zlib"}) {
      EXPECT_NE(r.out.find(library), std::string::npos) << how << " does not name " << library << ": " << r.out;
    }
  }
}

TEST(Lifecycle, HeaderTimeoutClosesSilentConnections) {
  ServerProcess s(Env{{"S3UP_HEADER_TIMEOUT", "1s"}});
  Connection c(s.port());
  c.send("POST /upload HTTP/1.1\r\nHost: x\r\n");  // and never finish the headers
  EXPECT_TRUE(c.closed_by_peer(5s));
  EXPECT_EQ(request(s.port(), "GET", "/healthz").status, 200);
}

TEST(Lifecycle, IdleBodyTimeoutAbortsTheUpload) {
  ServerProcess s(Env{{"S3UP_IDLE_TIMEOUT", "1s"}});
  const auto token = s.create_user_with_token("dave");
  Connection c(s.port());
  c.send(form_request_head(token, 2'000'000) + Multipart::head("slow.bin") + std::string(100'000, 's'));
  // The client is told why (408, the JSON error) before the connection closes.
  const auto r = c.read_response(10s);
  ASSERT_TRUE(r) << "no response to a stalled upload";
  EXPECT_EQ(r->status, 408) << r->body;
  EXPECT_EQ(r->json().at("error").at("code").as_string(), "request_timeout");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer(10s)) << "a stalled upload held its connection";
  auto db = s.database();
  EXPECT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::failed) == 1; }, 5s));
  EXPECT_EQ(db->count_uploads(db::UploadStatus::pending), 0);
  EXPECT_TRUE(s.stored_files().empty());
}

TEST(Lifecycle, GracefulShutdownLetsAnUploadInFlightFinish) {
  ServerProcess s(Env{{"S3UP_SHUTDOWN_GRACE", "20s"}});
  const auto token = s.create_user_with_token("erin");
  const auto content = ContentStream::make(3 * 1024 * 1024, 31);
  const std::string body = Multipart::body("inflight.bin", content);
  Connection c(s.port());
  c.send(form_request_head(token, body.size()));
  c.send(body.substr(0, body.size() / 2));
  auto db = s.database();
  ASSERT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::pending) == 1; }, 5s));

  s.signal(SIGTERM);
  // New connections are refused once the acceptor is closed.
  EXPECT_TRUE(eventually(
      [&] {
        try {
          Connection probe(s.port());
          return false;
        } catch (const std::exception&) {
          return true;
        }
      },
      5s));
  c.send(body.substr(body.size() / 2));
  const auto r = c.read_response(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(r->json().at("sha256").as_string(), util::sha256_hex(content));
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_EQ(s.wait(10s), 0) << s.log();
  EXPECT_EQ(db->count_uploads(db::UploadStatus::complete), 1);
}

// shutdown_drain: from the signal on, /readyz answers 503 (a balancer takes
// the instance out) while requests, new connections included, are still
// served; then the listener closes and the process ends.
TEST(Lifecycle, DrainsWithReadyzUnavailableBeforeTheListenerCloses) {
  ServerProcess s(Env{{"S3UP_SHUTDOWN_DRAIN", "3s"}});
  const auto token = s.create_user_with_token("drew");
  EXPECT_EQ(request(s.port(), "GET", "/readyz").status, 200);
  const auto signalled = std::chrono::steady_clock::now();
  s.signal(SIGTERM);
  ASSERT_TRUE(eventually([&] { return request(s.port(), "GET", "/readyz").status == 503; }, 2s));
  const auto ready = request(s.port(), "GET", "/readyz");
  EXPECT_EQ(ready.json().at("checks").at("shutdown").as_string(), "draining") << ready.body;
  const auto put = request(s.port(), "PUT", "/upload/during-drain.txt", {{"Authorization", "Bearer " + token}}, "drain");
  EXPECT_EQ(put.status, 201) << put.body;
  EXPECT_EQ(request(s.port(), "GET", "/healthz").status, 200) << "alive while draining";
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 3s) << "the checks above ran after the drain";
  EXPECT_EQ(s.wait(10s), 0) << s.log();
  EXPECT_GE(std::chrono::steady_clock::now() - signalled, 3s) << "stopped before the drain period was over";
  EXPECT_EQ(s.database()->count_uploads(db::UploadStatus::complete), 1);
}

TEST(Lifecycle, ShutdownAbortsUploadsThatOutlastTheGracePeriod) {
  ServerProcess s(Env{{"S3UP_SHUTDOWN_GRACE", "500ms"}});
  const auto token = s.create_user_with_token("frank");
  Connection c(s.port());
  c.send(form_request_head(token, 5'000'000) + Multipart::head("stuck.bin") + std::string(1'000'000, 'k'));
  auto db = s.database();
  ASSERT_TRUE(eventually([&] { return db->count_uploads(db::UploadStatus::pending) == 1; }, 5s));
  s.signal(SIGTERM);
  // Cut off after the grace period, the upload is still answered: 503.
  const auto r = c.read_response(10s);
  ASSERT_TRUE(r) << "no response to an upload cut off by shutdown";
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->json().at("error").at("code").as_string(), "shutting_down");
  EXPECT_EQ(s.wait(10s), 0) << s.log();
  EXPECT_EQ(db->count_uploads(db::UploadStatus::pending), 0);
  EXPECT_EQ(db->count_uploads(db::UploadStatus::failed), 1);
  EXPECT_TRUE(s.stored_files().empty());
}

TEST(Lifecycle, IdleKeepAliveConnectionsDoNotDelayShutdown) {
  ServerProcess s(Env{{"S3UP_SHUTDOWN_GRACE", "30s"}});
  Connection idle(s.port());
  idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(idle.read_response(5s));
  const auto started = std::chrono::steady_clock::now();
  s.signal(SIGINT);
  EXPECT_EQ(s.wait(10s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "an idle connection held up shutdown";
}

}  // namespace
}  // namespace s3up::test
