// The client's pieces that need no server: where its settings come from,
// its retry timing, its resumable state and its progress lines.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "client/client.hpp"
#include "client/progress.hpp"
#include "client/state.hpp"
#include "client/transport.hpp"

namespace s3up::client {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A HOME of its own, and none of the client's variables, for each test.
class ClientSettings : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/s3up-client-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    home_ = tmpl;
    for (const char* v : {"HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "S3UP_SERVER", "S3UP_TOKEN", "S3UP_CA_FILE"}) {
      if (const char* old = std::getenv(v)) saved_[v] = old;
      ::unsetenv(v);
    }
    ::setenv("HOME", home_.c_str(), 1);
  }
  void TearDown() override {
    fs::remove_all(home_);
    ::unsetenv("HOME");
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
  }
  void write_config(const std::string& text, mode_t mode) {
    fs::create_directories(home_ / ".config/s3uploader");
    const auto path = home_ / ".config/s3uploader/client.toml";
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
  }
  fs::path home_;
  std::map<std::string, std::string> saved_;
};

TEST_F(ClientSettings, FlagsBeatTheEnvironmentWhichBeatsTheFile) {
  write_config("server = \"http://file.example:1\"\ntoken = \"from-file\"\nca_file = \"/file/ca.pem\"\n", 0600);
  auto e = resolve_endpoint({});
  EXPECT_EQ(e.server, "http://file.example:1");
  EXPECT_EQ(e.token, "from-file");
  EXPECT_EQ(e.ca_file, "/file/ca.pem");

  ::setenv("S3UP_SERVER", "https://env.example/", 1);
  ::setenv("S3UP_TOKEN", "from-env", 1);
  e = resolve_endpoint({});
  EXPECT_EQ(e.server, "https://env.example");  // without the trailing slash
  EXPECT_EQ(e.token, "from-env");

  EndpointFlags flags;
  flags.server = "http://flag.example:2";
  flags.token = "from-flag";
  flags.ca_file = "/flag/ca.pem";
  e = resolve_endpoint(flags);
  EXPECT_EQ(e.server, "http://flag.example:2");
  EXPECT_EQ(e.token, "from-flag");
  EXPECT_EQ(e.ca_file, "/flag/ca.pem");
}

TEST_F(ClientSettings, DefaultServerAndMissingToken) {
  ::setenv("S3UP_TOKEN", "t", 1);
  EXPECT_EQ(resolve_endpoint({}).server, "http://127.0.0.1:8080");
  ::unsetenv("S3UP_TOKEN");
  try {
    resolve_endpoint({});
    FAIL() << "no token accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("pass --token, set S3UP_TOKEN"), std::string::npos) << e.what();
  }
}

TEST_F(ClientSettings, RefusesAConfigFileOthersCanRead) {
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    write_config("token = \"secret\"\n", mode);
    EXPECT_THROW(resolve_endpoint({}), UsageError) << std::oct << mode;
  }
  write_config("token = \"secret\"\n", 0400);
  EXPECT_EQ(resolve_endpoint({}).token, "secret");
}

TEST_F(ClientSettings, RejectsMalformedSettings) {
  write_config("token = 5\n", 0600);
  EXPECT_THROW(resolve_endpoint({}), UsageError);
  write_config("tokn = \"x\"\n", 0600);
  EXPECT_THROW(resolve_endpoint({}), UsageError);
  write_config("token = \"x\n", 0600);
  EXPECT_THROW(resolve_endpoint({}), UsageError);
  write_config("", 0600);
  EndpointFlags flags;
  flags.token = "a b";
  EXPECT_THROW(resolve_endpoint(flags), UsageError);
  flags.token = "ok";
  flags.server = "ftp://x";
  EXPECT_THROW(resolve_endpoint(flags), UsageError);
}

TEST_F(ClientSettings, XdgDirectories) {
  EXPECT_EQ(config_file_path(), home_ / ".config/s3uploader/client.toml");
  EXPECT_EQ(cache_dir(), home_ / ".cache/s3uploader");
  ::setenv("XDG_CONFIG_HOME", "/elsewhere/config", 1);
  ::setenv("XDG_CACHE_HOME", "relative/is/ignored", 1);
  EXPECT_EQ(config_file_path(), fs::path("/elsewhere/config/s3uploader/client.toml"));
  EXPECT_EQ(cache_dir(), home_ / ".cache/s3uploader");
}

TEST(ClientRetries, RetryAfterAsSecondsOrDate) {
  const auto now = std::chrono::system_clock::from_time_t(1'000'000'000);  // Sun, 09 Sep 2001 01:46:40 GMT
  EXPECT_EQ(parse_retry_after("7", now), 7s);
  EXPECT_EQ(parse_retry_after(" 0 ", now), 0s);
  EXPECT_EQ(parse_retry_after("Sun, 09 Sep 2001 01:47:10 GMT", now), 30s);
  EXPECT_EQ(parse_retry_after("Sun, 09 Sep 2001 01:40:00 GMT", now), 0s);  // in the past: now
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("-3", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  // Absurd ones are held to a day (found by fuzz_cli_answers: a year 4052
  // date overflowed a nanosecond time point).
  EXPECT_EQ(parse_retry_after("99999999999999", now), 24h);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 4052 07:28:00 GMT", now), 24h);
}

TEST(ClientRetries, BackoffDoublesUpToThirtySeconds) {
  EXPECT_EQ(Backoff::delay(0), 500ms);
  EXPECT_EQ(Backoff::delay(1), 1s);
  EXPECT_EQ(Backoff::delay(3), 4s);
  EXPECT_EQ(Backoff::delay(6), 30s);
  EXPECT_EQ(Backoff::delay(40), 30s);
  Backoff none(0);
  EXPECT_FALSE(none.wait());
  Backoff one(1);
  EXPECT_TRUE(one.wait(0s));  // the server's Retry-After, not the backoff
  EXPECT_FALSE(one.wait(0s));
  one.progressed();
  EXPECT_TRUE(one.wait(0s));
}

TEST(ClientRetries, WhichStatusesAreRetried) {
  for (long s : {500L, 502L, 503L, 504L, 408L, 423L, 429L}) EXPECT_TRUE(retryable_status(s)) << s;
  for (long s : {200L, 204L, 400L, 401L, 403L, 404L, 409L, 413L, 415L, 460L}) EXPECT_FALSE(retryable_status(s)) << s;
}

TEST(ClientState, KeyedByServerPathSizeAndMtime) {
  const auto k = UploadState::key("http://a", "/f", 10, 5);
  EXPECT_EQ(k, UploadState::key("http://a", "/f", 10, 5));
  EXPECT_NE(k, UploadState::key("http://b", "/f", 10, 5));
  EXPECT_NE(k, UploadState::key("http://a", "/g", 10, 5));
  EXPECT_NE(k, UploadState::key("http://a", "/f", 11, 5));
  EXPECT_NE(k, UploadState::key("http://a", "/f", 10, 6));
}

TEST(ClientState, SavesPrivatelyLoadsAndForgets) {
  char tmpl[] = "/tmp/s3up-state-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = fs::path(tmpl) / "uploads";
  UploadState state(dir);
  EXPECT_EQ(state.load("k"), std::nullopt);
  state.save("k", "http://127.0.0.1:1/upload/resumable/x");
  EXPECT_EQ(state.load("k"), "http://127.0.0.1:1/upload/resumable/x");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "k.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  state.prune(std::chrono::hours(1));
  EXPECT_TRUE(state.load("k").has_value()) << "a fresh entry survives pruning";
  std::ofstream(dir / "bad.json") << "{\"url\": \"file:///etc/passwd\"}";
  EXPECT_EQ(state.load("bad"), std::nullopt);
  state.remove("k");
  EXPECT_EQ(state.load("k"), std::nullopt);
  fs::remove_all(tmpl);
}

TEST(ClientProgress, RowsFitTheTerminal) {
  ProgressBoard::Row row{"holiday-photos.tar", 50 * 1048576ull, 200 * 1048576ull, 10 * 1048576.0, ""};
  EXPECT_EQ(ProgressBoard::format_row(row, 80), "holiday-photos.tar   25%  50 MiB / 200 MiB  10 MiB/s  ETA 0:15");
  row.note = "retrying: the server answered 503 (HTTP 503)";
  EXPECT_NE(ProgressBoard::format_row(row, 200).find("25%  50 MiB / 200 MiB  retrying"), std::string::npos);
  row.note.clear();
  row.name = std::string(100, 'n') + ".bin";
  for (std::size_t width : {20u, 40u, 80u, 120u}) {
    const auto line = ProgressBoard::format_row(row, width);
    std::size_t columns = 0;
    for (unsigned char c : line) columns += (c & 0xC0) != 0x80;
    EXPECT_LT(columns, width) << line;
  }
  EXPECT_NE(ProgressBoard::format_row(row, 120).find("…   25%"), std::string::npos);
  EXPECT_EQ(format_eta(65), "1:05");
  EXPECT_EQ(format_eta(3723), "1:02:03");
}

}  // namespace
}  // namespace s3up::client
