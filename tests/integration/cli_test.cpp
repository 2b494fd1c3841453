// The command-line client (push, ls, get, rm) against the real service: in a
// real terminal (tmux) where a person would see it, and through pipes where
// a script would; behind a real TLS front (socat) and a real forward proxy
// (tinyproxy) for --ca-file and HTTPS_PROXY / NO_PROXY.
#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "../support/counting_proxy.hpp"
#include "../support/fake_http_server.hpp"
#include "../support/test_database.hpp"
#include "harness.hpp"
#include "s3_peer.hpp"
#include "terminal.hpp"

namespace s3up::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::uint64_t MiB = 1024 * 1024;
const std::regex kFileId(R"([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12})");

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Bytes the server received in PATCH bodies, by its access log.
std::uint64_t patch_bytes_in(const std::string& log) {
  std::uint64_t total = 0;
  const std::regex line(R"(\[access\] \S+ PATCH \S+ \d+ \d+ [\d.]+ms in=(\d+))");
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) total += std::stoull((*it)[1]);
  return total;
}

std::size_t count_lines_with(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos ? 1 : 0;
  return n;
}

std::vector<std::string> file_ids(const std::string& text) {
  std::vector<std::string> ids;
  for (std::sregex_iterator it(text.begin(), text.end(), kFileId), end; it != end; ++it) ids.push_back(it->str());
  return ids;
}

class Client : public ::testing::Test {
 public:  // for the helpers that tests of several fixtures share
  explicit Client(std::map<std::string, std::string> server_env = {})
      : server_(std::make_unique<ServerProcess>(std::move(server_env))), home_(temporary_directory()) {
    token_ = server_->create_user_with_token("alice");
  }
  ~Client() override { fs::remove_all(home_); }

  std::string server_url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  // What the client sees: its own HOME (so its config and cache), the
  // server and token by environment, no proxy.
  std::map<std::string, std::string> client_env() const {
    return {{"HOME", home_.string()}, {"PATH", "/usr/bin:/bin"}, {"S3UP_SERVER", server_url()}, {"S3UP_TOKEN", token_}};
  }

  CommandResult client(std::vector<std::string> args, std::map<std::string, std::string> extra_env = {}) const {
    args.insert(args.begin(), binary_path());
    auto env = client_env();
    for (auto& [k, v] : extra_env) env[k] = v;
    return run_program(args, env);
  }

  // The same, as a sh command for a terminal window, in the client's HOME;
  // `replace_shell`: the client takes the shell's process (and pid).
  std::string client_command(const std::vector<std::string>& args, bool replace_shell = false) const {
    std::string command =
        "cd " + shell_quote(home_.string()) + " && " + (replace_shell ? "exec " : "") + "env -i TERM=screen";
    for (const auto& [k, v] : client_env()) command += " " + k + "=" + shell_quote(v);
    command += " " + shell_quote(binary_path());
    for (const auto& a : args) command += " " + shell_quote(a);
    return command;
  }

  // In a directory of its own: `get` writes into HOME.
  fs::path make_file(const std::string& name, std::uint64_t size, std::uint64_t seed) const {
    fs::create_directories(home_ / "files");
    const auto path = home_ / "files" / name;
    std::ofstream out(path, std::ios::binary);
    ContentStream content(size, seed);
    for (auto piece = content.next(MiB); !piece.empty(); piece = content.next(MiB)) out << piece;
    return path;
  }

  // The service's record of a file: its JSON, or null.
  boost::json::value stored(const std::string& id) const {
    for (;;) {
      const auto r = request(server_->port(), "GET", "/files/" + id, {{"Authorization", "Bearer " + token_}});
      if (r.status == 429) {  // the rate-limited test's server
        std::this_thread::sleep_for(500ms);
        continue;
      }
      return r.status == 200 ? r.json() : boost::json::value(nullptr);
    }
  }

  std::unique_ptr<ServerProcess> server_;
  fs::path home_;
  std::string token_;
};

// A 200 MiB push on a terminal shows its progress line; killed with SIGKILL
// halfway, the next push of the same file goes on from what the server kept.
TEST_F(Client, PushInATerminalShowsProgressAndResumesAfterKill) {
  const std::uint64_t size = 200 * MiB;
  const auto file = make_file("big.bin", size, 7);
  Terminal terminal;
  const auto pid_file = home_ / "push.pid";
  terminal.start("echo $$ > " + shell_quote(pid_file.string()) + "; " +
                 client_command({"push", file.string(), "--limit-rate", "40MiB", "--chunk-size", "16MiB"}, true));

  const std::regex progress(R"(big\.bin\s+(\d+)%\s+[\d.]+ MiB / 200 MiB\s+[\d.]+ MiB/s\s+ETA \d+:\d\d)");
  std::string screen = terminal.wait_for(progress, 60s);
  ASSERT_FALSE(screen.empty()) << "no progress line; the pane shows:\n" << terminal.screen();
  // Halfway: the line says at least 45 %.
  std::smatch m;
  ASSERT_TRUE(eventually(
      [&] {
        const auto text = terminal.screen();
        return std::regex_search(text, m, progress) && std::stoi(m[1]) >= 45;
      },
      60s));
  const pid_t pid = std::stoi(read_text(pid_file));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  // The server notices the cut-off PATCH and keeps its whole chunks.
  ASSERT_TRUE(eventually([&] { return patch_bytes_in(server_->log()) > 0; }, 30s));
  std::this_thread::sleep_for(500ms);
  const std::size_t before_resume = server_->log().size();

  const auto second = terminal.run(client_command({"push", file.string()}));
  ASSERT_EQ(second.exit_code, 0) << second.screen;
  const auto ids = file_ids(second.screen);
  ASSERT_EQ(ids.size(), 1u) << second.screen;
  EXPECT_NE(second.screen.find(ids[0] + "  " + file.string()), std::string::npos) << second.screen;

  const std::string resumed_log = server_->log().substr(before_resume);
  const std::uint64_t received = patch_bytes_in(resumed_log);
  EXPECT_GT(received, 0u);
  EXPECT_LT(received, size) << "the second push sent the whole file again";
  EXPECT_EQ(count_lines_with(resumed_log, "POST /upload/resumable"), 0u) << "it created a new upload";
  EXPECT_GE(count_lines_with(resumed_log, "HEAD /upload/resumable/{id} 200"), 1u);

  const auto record = stored(ids[0]);
  ASSERT_TRUE(record.is_object());
  EXPECT_EQ(record.at("sha256").as_string(), ContentStream::sha256_of(size, 7));
  EXPECT_EQ(record.at("file_size").to_number<std::uint64_t>(), size);
  // Nothing left to resume.
  EXPECT_TRUE(fs::is_empty(home_ / ".cache/s3uploader/uploads"));
}

TEST_F(Client, ListGetAndRemoveInATerminal) {
  const auto a = make_file("a.bin", 5 * MiB + 3, 1);
  const auto b = make_file("b.txt", 1000, 2);
  const auto pushed = client({"push", a.string(), b.string(), "-j", "1"});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  const auto ids = file_ids(pushed.out);
  ASSERT_EQ(ids.size(), 2u) << pushed.out;
  const std::string id_a = ids[0], id_b = ids[1];  // -j 1: in order

  Terminal terminal;
  auto ls = terminal.run(client_command({"ls"}));
  ASSERT_EQ(ls.exit_code, 0) << ls.screen;
  EXPECT_TRUE(std::regex_search(ls.screen, std::regex(R"(ID\s+SIZE\s+UPLOADED\s+TYPE\s+NAME)"))) << ls.screen;
  EXPECT_TRUE(
      std::regex_search(ls.screen, std::regex(id_a + R"(\s+5\.0 MiB\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+\S+\s+a\.bin)")))
      << ls.screen;
  EXPECT_TRUE(std::regex_search(ls.screen, std::regex(id_b + R"(\s+1000 B .*b\.txt)"))) << ls.screen;
  // Newest first.
  EXPECT_LT(ls.screen.find(id_b), ls.screen.find(id_a));

  auto get = terminal.run(client_command({"get", id_a, "-o", "copy.bin"}));
  ASSERT_EQ(get.exit_code, 0) << get.screen;
  EXPECT_EQ(file_sha256(home_ / "copy.bin"), file_sha256(a));
  // Without -o: the file's own name, here; and not over an existing file.
  get = terminal.run(client_command({"get", id_b}));
  ASSERT_EQ(get.exit_code, 0) << get.screen;
  EXPECT_EQ(read_text(home_ / "b.txt"), ContentStream::make(1000, 2));
  get = terminal.run(client_command({"get", id_b}));
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_NE(get.screen.find("b.txt exists already (pass --force to replace it)"), std::string::npos) << get.screen;

  // A partial download is resumed with Range.
  {
    std::ofstream part(home_ / "resumed.bin.part", std::ios::binary);
    part << ContentStream::make(5 * MiB + 3, 1).substr(0, 3 * MiB);
  }
  std::size_t mark = server_->log().size();
  get = terminal.run(client_command({"get", id_a, "-o", "resumed.bin"}));
  ASSERT_EQ(get.exit_code, 0) << get.screen;
  EXPECT_EQ(file_sha256(home_ / "resumed.bin"), file_sha256(a));
  EXPECT_FALSE(fs::exists(home_ / "resumed.bin.part"));
  const std::string resume_log = server_->log().substr(mark);
  // One 206 of the missing 2 MiB + 3 (the access log counts the headers too).
  std::smatch partial;
  ASSERT_TRUE(std::regex_search(resume_log, partial, std::regex(R"(GET /files/\{id\}/content 206 (\d+) )")))
      << resume_log;
  EXPECT_GE(std::stoull(partial[1]), 2 * MiB + 3);
  EXPECT_LT(std::stoull(partial[1]), 2 * MiB + 3 + 4096);

  // A partial file with other bytes fails the SHA-256 check and is not kept.
  {
    std::ofstream part(home_ / "bad.bin.part", std::ios::binary);
    part << std::string(3 * MiB, 'x');
  }
  get = terminal.run(client_command({"get", id_a, "-o", "bad.bin"}));
  EXPECT_EQ(get.exit_code, 1) << get.screen;
  EXPECT_NE(get.screen.find("do not match the file's SHA-256"), std::string::npos) << get.screen;
  EXPECT_FALSE(fs::exists(home_ / "bad.bin"));
  EXPECT_FALSE(fs::exists(home_ / "bad.bin.part"));

  auto rm = terminal.run(client_command({"rm", id_a}));
  ASSERT_EQ(rm.exit_code, 0) << rm.screen;
  EXPECT_NE(rm.screen.find("removed " + id_a), std::string::npos);
  ls = terminal.run(client_command({"ls"}));
  EXPECT_EQ(ls.screen.find(id_a), std::string::npos) << ls.screen;
  EXPECT_NE(ls.screen.find(id_b), std::string::npos) << ls.screen;
  get = terminal.run(client_command({"get", id_a, "-o", "gone.bin"}));
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_EQ(count_lines_with(get.screen, "error: get " + id_a + ": no such file (HTTP 404)"), 1u) << get.screen;
}

// A wrong token, a missing file and an unreachable server: one clear line
// each and a non-zero exit, on a terminal and through a pipe.
TEST_F(Client, FailuresAreOneLineAndANonZeroExit) {
  const auto file = make_file("ok.bin", 2 * MiB, 3);
  Terminal terminal;

  auto run = terminal.run(client_command({"push", file.string(), "--token", "s3u_not-a-token"}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(count_lines_with(run.screen, "error:"), 1u) << run.screen;
  EXPECT_EQ(
      count_lines_with(run.screen, "error: push " + file.string() + ": the server did not accept the token (HTTP 401)"),
      1u)
      << run.screen;

  run = terminal.run(client_command({"push", "missing.bin", file.string()}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(count_lines_with(run.screen, "error:"), 1u) << run.screen;
  EXPECT_EQ(count_lines_with(run.screen, "error: push missing.bin: No such file or directory"), 1u) << run.screen;
  EXPECT_EQ(file_ids(run.screen).size(), 1u) << "the file that exists is pushed all the same:\n" << run.screen;

  const std::string nowhere = "http://127.0.0.1:" + std::to_string(free_port());
  run = terminal.run(client_command({"push", file.string(), "--server", nowhere, "--retries", "1"}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(count_lines_with(run.screen, "error:"), 1u) << run.screen;
  EXPECT_EQ(count_lines_with(run.screen, "error: push " + file.string() + ": cannot reach " + nowhere), 1u)
      << run.screen;
  run = terminal.run(client_command({"ls", "--server", nowhere, "--retries", "0"}));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(count_lines_with(run.screen, "error: ls " + nowhere + ": cannot reach " + nowhere), 1u) << run.screen;

  // Through a pipe: the line is the whole of stderr.
  auto piped = client({"push", file.string()}, {{"S3UP_TOKEN", "s3u_not-a-token"}});
  EXPECT_EQ(piped.exit_code, 1);
  EXPECT_EQ(piped.err, "error: push " + file.string() + ": the server did not accept the token (HTTP 401)\n");
  EXPECT_EQ(piped.out, "");
  piped = client({"ls"}, {{"S3UP_TOKEN", ""}});
  EXPECT_EQ(piped.exit_code, 2);
  EXPECT_EQ(count_lines_with(piped.err, "error: no API token: pass --token, set S3UP_TOKEN"), 1u) << piped.err;
}

// A server that is wrong or hostile cannot make the client hang, write
// where it should not, or drive the terminal: each case ends with one
// error line and exit 1.
TEST_F(Client, AWrongOrHostileServerCannotHangOrMisleadTheClient) {
  const std::string id = "01234567-89ab-7def-8123-456789abcdef";
  const auto listing = [&](const std::string& name, const std::string& size, const std::string& cursor) {
    return R"({"files":[{"file_id":")" + id + R"(","file_name":")" + name +
           R"(","content_type":"text/plain","file_size":)" + size +
           R"(,"sha256":"","upload_time":"2026-12-01T10:00:00Z"}],"next_cursor":)" + cursor + "}";
  };
  // A cursor that never moves on.
  testing::FakeHttpServer endless([&](const auto&) {
    return testing::FakeHttpServer::Reply{200, listing("a.txt", "1", R"("again")")};
  });
  auto started = std::chrono::steady_clock::now();
  auto r = client({"ls", "--server", endless.url()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not move on"), std::string::npos) << r.err;
  EXPECT_LT(endless.requests().size(), 5u);
  // A body larger than any listing.
  testing::FakeHttpServer huge([&](const auto&) {
    return testing::FakeHttpServer::Reply{200, std::string(20 * MiB, ' ')};
  });
  r = client({"ls", "--server", huge.url()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("larger than any it should send"), std::string::npos) << r.err;
  // A size no file has: a sentence, not a C++ type.
  testing::FakeHttpServer negative([&](const auto&) {
    return testing::FakeHttpServer::Reply{200, listing("a.txt", "-5", "null")};
  });
  r = client({"ls", "--server", negative.url()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: ls " + negative.url() + ": the server sent an invalid file_size\n");
  // Nobody there: fails at once instead of retrying for minutes.
  const std::string nowhere = "http://127.0.0.1:" + std::to_string(free_port());
  started = std::chrono::steady_clock::now();
  r = client({"ls", "--server", nowhere});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_NE(r.err.find("cannot reach " + nowhere), std::string::npos) << r.err;

  // A name and a type with escape sequences, on a terminal: shown, not obeyed.
  testing::FakeHttpServer escapes([&](const auto&) {
    return testing::FakeHttpServer::Reply{200, listing("evil\\u001b]2;pwned\\u0007.txt", "1", "null")};
  });
  Terminal terminal;
  const auto shown = terminal.run(client_command({"ls", "--server", escapes.url()}));
  EXPECT_EQ(shown.exit_code, 0) << shown.screen;
  EXPECT_NE(shown.screen.find("evil\\x1b]2;pwned\\x07.txt"), std::string::npos) << shown.screen;

  // A tus Location on another host: the token is not sent there.
  testing::FakeHttpServer elsewhere([&](const auto&) { return testing::FakeHttpServer::Reply{204, ""}; });
  testing::FakeHttpServer redirecting([&](const auto& request) {
    if (request.method_string() == "POST") {
      return testing::FakeHttpServer::Reply{201, "", {{"Location", elsewhere.url() + "/upload/resumable/" + id}}};
    }
    return testing::FakeHttpServer::Reply{200, "{}"};
  });
  const auto file = make_file("small.bin", 1000, 5);
  r = client({"push", file.string(), "--server", redirecting.url()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("on another host"), std::string::npos) << r.err;
  EXPECT_TRUE(elsewhere.requests().empty()) << "the token went to another host";
  // Scheme-relative (//host/path) is another host too, not a path.
  testing::FakeHttpServer scheme_relative([&](const auto& request) {
    if (request.method_string() == "POST") {
      const auto authority = elsewhere.url().substr(std::string("http:").size());
      return testing::FakeHttpServer::Reply{201, "", {{"Location", authority + "/upload/resumable/" + id}}};
    }
    return testing::FakeHttpServer::Reply{200, "{}"};
  });
  r = client({"push", file.string(), "--server", scheme_relative.url()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("on another host"), std::string::npos) << r.err;
  EXPECT_TRUE(elsewhere.requests().empty());
}

// get never writes through a link left at <file>.part, never to stdout for
// a file named "-", and fits a long name (the service takes 1,024 bytes, a
// file system 255, with ".part" while it downloads) keeping its extension.
TEST_F(Client, GetWritesOnlyWhereItShould) {
  const auto put = [&](const std::string& name, const std::string& body) {
    const auto r = request(server_->port(), "PUT", "/upload/" + name, {{"Authorization", "Bearer " + token_}}, body);
    EXPECT_EQ(r.status, 201) << r.body;
    return std::string(r.json().at("file_id").as_string());
  };
  const auto id = put("report.txt", "the report");
  const auto victim = home_ / "victim.txt";
  { std::ofstream(victim) << "keep me"; }
  fs::create_symlink(victim, home_ / "out.txt.part");
  auto r = client({"get", id, "-o", (home_ / "out.txt").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
  EXPECT_EQ(read_text(victim), "keep me");

  const auto dash = put("-", "dash");
  const auto in_home = [&](std::vector<std::string> args) {
    args.insert(args.begin(), binary_path());
    auto env = client_env();
    return run_program({"/bin/sh", "-c",
                        "cd " + shell_quote(home_.string()) + " && exec " +
                            [&] {
                              std::string command;
                              for (const auto& a : args) command += shell_quote(a) + " ";
                              return command;
                            }()},
                       env);
  };
  r = in_home({"get", dash});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("dash"), std::string::npos) << "written to stdout";
  EXPECT_EQ(read_text(home_ / dash), "dash");

  const std::string long_name = std::string(300, 'n') + ".txt";
  const auto long_id = put(long_name, "long");
  r = in_home({"get", long_id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string fitted = std::string(246, 'n') + ".txt";  // and ".part" while it downloads
  EXPECT_EQ(read_text(home_ / fitted), "long");
}

// Without a terminal: no progress, one line per file when it is done.
TEST_F(Client, WithoutATerminalEachFilePrintsOneLineWhenDone) {
  const auto big = make_file("big one.bin", 9 * MiB + 1, 4);
  const auto small = make_file("résumé ü.txt", 777, 5);
  const auto empty = make_file("empty", 0, 6);
  // Named twice, pushed once.
  const auto r =
      client({"push", big.string(), small.string(), empty.string(), big.string(), "-j", "2", "--chunk-size", "4MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "terminal codes in a pipe";
  EXPECT_EQ(count_lines_with(r.out, ""), 3u) << r.out;
  for (const auto& [path, size, seed] : {std::tuple{big, 9 * MiB + 1, 4}, std::tuple{small, std::uint64_t{777}, 5},
                                         std::tuple{empty, std::uint64_t{0}, 6}}) {
    // "<id>  <the file as given>  (<size>...)"
    std::string id;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.find("  " + path.string() + "  (") == 36) id = line.substr(0, 36);
    }
    ASSERT_TRUE(std::regex_match(id, kFileId)) << path << "\n" << r.out;
    const auto record = stored(id);
    ASSERT_TRUE(record.is_object());
    EXPECT_EQ(record.at("file_name").as_string(), path.filename().string());
    EXPECT_EQ(record.at("file_size").to_number<std::uint64_t>(), size);
    EXPECT_EQ(record.at("sha256").as_string(), ContentStream::sha256_of(size, seed));
  }
}

// A byte flipped on the way: the chunk's checksum catches it (460), the
// chunk is sent again, and what is stored is the file. Without checksums the
// same flip is stored, which shows the flip happens.
TEST_F(Client, AChunkCorruptedOnTheWayIsSentAgain) {
  const std::uint64_t size = 8 * MiB;
  const auto file = make_file("fragile.bin", size, 12);
  for (const std::string checksum : {"crc32", "sha256", "none"}) {
    s3up::testing::CountingProxy relay("127.0.0.1", server_->port());
    relay.corrupt_upstream_byte(5 * MiB);  // in the third 2 MiB chunk
    const std::size_t mark = server_->log().size();
    const auto r =
        client({"push", file.string(), "--chunk-size", "2MiB", "--checksum", checksum}, {{"S3UP_SERVER", relay.url()}});
    ASSERT_EQ(r.exit_code, 0) << checksum << ": " << r.err;
    ASSERT_TRUE(relay.corrupted()) << checksum;
    const auto ids = file_ids(r.out);
    ASSERT_EQ(ids.size(), 1u) << r.out;
    const std::string log = server_->log().substr(mark);
    if (checksum == "none") {
      EXPECT_NE(stored(ids[0]).at("sha256").as_string(), ContentStream::sha256_of(size, 12));
    } else {
      EXPECT_EQ(count_lines_with(log, "PATCH /upload/resumable/{id} 460"), 1u) << checksum << "\n" << log;
      EXPECT_EQ(stored(ids[0]).at("sha256").as_string(), ContentStream::sha256_of(size, 12)) << checksum;
    }
  }
}

class RateLimitedClient : public Client {
 protected:
  RateLimitedClient() : Client({{"S3UP_RATE_LIMIT", "4"}, {"S3UP_RATE_LIMIT_BURST", "1"}}) {}
};

// 429 with Retry-After is waited out, as many times as it comes.
TEST_F(RateLimitedClient, PushWaitsOutRateLimits) {
  const auto file = make_file("limited.bin", MiB, 8);
  const auto r = client({"push", file.string(), "--chunk-size", "256KiB"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(count_lines_with(server_->log(), " 429 "), 1u) << "the test did not hit the rate limit";
  const auto ids = file_ids(r.out);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(stored(ids[0]).at("sha256").as_string(), ContentStream::sha256_of(MiB, 8));
}

// The server dies mid-push (SIGKILL) and another takes its port, database and
// storage (`successor_env`): the client waits (connection refused, then 423
// while the dead one's lease runs out) and finishes the same upload there.
// Returns the successor's log.
std::string push_outliving_the_server(Client& test, std::map<std::string, std::string> successor_env) {
  const std::uint64_t size = 60 * MiB;
  const auto file = test.make_file("outlive.bin", size, 9);
  Terminal terminal;
  terminal.start(test.client_command({"push", file.string(), "--limit-rate", "20MiB", "--chunk-size", "8MiB"}) + "; " +
                 std::string(kPrintExitStatus));
  EXPECT_FALSE(terminal.wait_for(std::regex(R"(outlive\.bin\s+([3-9]\d)%)"), 60s).empty()) << terminal.screen();
  test.server_->signal(SIGKILL);
  test.server_->wait(5s);
  std::this_thread::sleep_for(1500ms);
  successor_env["S3UP_LISTEN"] = "127.0.0.1:" + std::to_string(test.server_->port());
  ServerProcess successor(successor_env);

  const auto screen = terminal.wait_for(std::regex(R"(\[exit \d+\])"), 120s);
  EXPECT_NE(screen.find("[exit 0]"), std::string::npos) << screen << "\n" << successor.log();
  const auto ids = file_ids(screen);
  EXPECT_EQ(ids.size(), 1u) << screen;
  if (ids.size() != 1) return successor.log();
  const auto r = request(successor.port(), "GET", "/files/" + ids[0], {{"Authorization", "Bearer " + test.token_}});
  EXPECT_EQ(r.status, 200);
  if (r.status == 200) EXPECT_EQ(r.json().at("sha256").as_string(), ContentStream::sha256_of(size, 9));
  EXPECT_GE(count_lines_with(successor.log(), "PATCH /upload/resumable/{id} 204"), 1u) << successor.log();
  return successor.log();
}

TEST_F(Client, PushOutlivesTheServer) {
  push_outliving_the_server(*this, {{"S3UP_DATABASE", "sqlite://" + (server_->dir() / "s3uploader.db").string()},
                                    {"S3UP_STORAGE", "file://" + server_->objects_dir().string()}});
}

// The same on radosgw + PostgreSQL: the other instance finishes the upload,
// and the bucket keeps no multipart upload and no tail object.
struct S3Stack {
  S3Peer peer;
  testing::TestDatabase database;
  std::map<std::string, std::string> env() const {
    auto env = peer.server_env();
    env["S3UP_DATABASE"] = database.url();
    return env;
  }
};

class ClientOnS3 : private S3Stack, public Client {
 protected:
  ClientOnS3() : S3Stack(), Client(S3Stack::env()) {}
  S3Peer& peer() { return S3Stack::peer; }
  std::map<std::string, std::string> stack_env() const { return S3Stack::env(); }
};

TEST_F(ClientOnS3, PushOutlivesItsInstance) {
  push_outliving_the_server(*this, stack_env());
  EXPECT_TRUE(peer().multipart_uploads().empty());
  for (const auto& key : peer().keys()) EXPECT_EQ(key.find(".tail"), std::string::npos) << key;
}

// https:// through a TLS front verified with --ca-file, reached through a
// forward proxy from HTTPS_PROXY, or directly when NO_PROXY names the host.
class ClientOverTls : public Client {
 protected:
  ClientOverTls() : Client({{"S3UP_PUBLIC_URL", "https://localhost:" + std::to_string(tls_port_)}}) {}
  static inline unsigned short tls_port_ = free_port();
};

TEST_F(ClientOverTls, VerifiesTheServerAndUsesTheProxy) {
  const auto dir = home_ / "tls";
  fs::create_directories(dir);
  make_test_certificate(dir, "server");
  const std::string d = dir.string();
  BackgroundProgram tls_front({"/usr/bin/socat",
                               "OPENSSL-LISTEN:" + std::to_string(tls_port_) + ",bind=127.0.0.1,reuseaddr,fork,cert=" +
                                   d + "/server.crt,key=" + d + "/server.key,verify=0",
                               "TCP:127.0.0.1:" + std::to_string(server_->port())},
                              {{"PATH", "/usr/bin:/bin"}}, dir / "socat.log");
  const unsigned short proxy_port = free_port();
  const auto proxy_log = dir / "tinyproxy.log";
  std::ofstream(dir / "tinyproxy.conf") << "Port " << proxy_port << "\nListen 127.0.0.1\nTimeout 60\nLogFile \""
                                        << proxy_log.string() << "\"\nLogLevel Connect\nMaxClients 20\n";
  BackgroundProgram proxy({"/usr/bin/tinyproxy", "-d", "-c", (dir / "tinyproxy.conf").string()},
                          {{"PATH", "/usr/bin:/bin"}}, dir / "tinyproxy.out");
  ASSERT_TRUE(eventually([&] {
    try {
      Connection a(tls_port_), b(proxy_port);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }));

  const std::string https = "https://localhost:" + std::to_string(tls_port_);
  const std::map<std::string, std::string> via_proxy{{"S3UP_SERVER", https},
                                                     {"HTTPS_PROXY", "http://127.0.0.1:" + std::to_string(proxy_port)}};
  const auto file = make_file("secure.bin", 3 * MiB, 10);
  const std::string connect_line = "CONNECT localhost:" + std::to_string(tls_port_);

  auto r = client({"push", file.string(), "--ca-file", d + "/server-ca.pem", "--chunk-size", "1MiB"}, via_proxy);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ids = file_ids(r.out);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(stored(ids[0]).at("sha256").as_string(), ContentStream::sha256_of(3 * MiB, 10));
  const std::size_t connects = count_lines_with(read_text(proxy_log), connect_line);
  EXPECT_GE(connects, 1u) << read_text(proxy_log);

  // Without the CA the server is not trusted: one line, no upload.
  r = client({"ls"}, via_proxy);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines_with(r.err, "error:"), 1u) << r.err;
  EXPECT_NE(r.err.find("certificate"), std::string::npos) << r.err;

  // NO_PROXY: straight to the host, the proxy sees nothing.
  auto direct = via_proxy;
  direct["NO_PROXY"] = "localhost";
  r = client({"get", ids[0], "-o", "-", "--ca-file", d + "/server-ca.pem"}, direct);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ContentStream::make(3 * MiB, 10));
  EXPECT_EQ(count_lines_with(read_text(proxy_log), connect_line), connects + 1) << "only the failed ls went through it";
}

// The client's configuration file: used when nothing else says, refused
// when others can read it.
TEST_F(Client, ConfigurationFile) {
  const auto dir = home_ / ".config/s3uploader";
  fs::create_directories(dir);
  const auto path = dir / "client.toml";
  std::ofstream(path) << "server = \"" << server_url() << "\"\ntoken = \"" << token_ << "\"\n";
  const std::map<std::string, std::string> bare{{"HOME", home_.string()}, {"PATH", "/usr/bin:/bin"}};

  ::chmod(path.c_str(), 0644);
  auto r = run_program({binary_path(), "ls"}, bare);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "error: " + path.string() + " holds a token but can be read by others (mode 0644); run: chmod 600 " +
                       path.string() + "\n");

  ::chmod(path.c_str(), 0600);
  r = run_program({binary_path(), "ls"}, bare);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "no files\n");
  // A flag beats the file.
  r = run_program({binary_path(), "ls", "--token", "s3u_someone-else"}, bare);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("HTTP 401"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace s3up::test
