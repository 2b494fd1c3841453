#include "config/config.hpp"
#include "util/text.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace s3up::config {
namespace {

using namespace std::chrono_literals;

Sources with_env(std::map<std::string, std::string> env) {
  Sources s;
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(env));
  s.getenv = [shared](const char* name) -> const char* {
    auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
  return s;
}

TEST(Config, DefaultsRunWithNoConfiguration) {
  const auto c = load(with_env({}));
  EXPECT_EQ(c.service.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.storage.url, "file://./data/objects");
  EXPECT_EQ(c.database.url, "sqlite://./data/s3uploader.db");
  EXPECT_EQ(c.uploads.max_upload_bytes, 5ull << 30);
  EXPECT_GE(c.service.threads, 1u);
  EXPECT_GE(c.service.blocking_threads, 16u);
  EXPECT_EQ(c.database.pool_size, std::max(4u, c.service.blocking_threads / 4));
  EXPECT_EQ(load(with_env({{"S3UP_DATABASE_POOL_SIZE", "3"}})).database.pool_size, 3u);
  EXPECT_EQ(c.http.header_timeout, 30s);
  EXPECT_FALSE(c.service.debug);
  EXPECT_TRUE(c.service.migrate_on_start);
}

TEST(Config, EnvironmentOverridesDefaults) {
  const auto c = load(with_env({{"S3UP_MAX_UPLOAD_BYTES", "100MiB"},
                                {"S3UP_LISTEN", "0.0.0.0:9000"},
                                {"DEBUG", "true"},
                                {"S3UP_IDLE_TIMEOUT", "1500ms"},
                                {"S3UP_THREADS", "3"}}));
  EXPECT_EQ(c.uploads.max_upload_bytes, 100ull << 20);
  EXPECT_EQ(c.service.listen, "0.0.0.0:9000");
  EXPECT_TRUE(c.service.debug);
  EXPECT_EQ(c.http.idle_timeout, 1500ms);
  EXPECT_EQ(c.service.threads, 3u);
}

TEST(Config, LayersFileThenEnvironmentThenFlags) {
  const auto dir = std::filesystem::temp_directory_path() / ("s3up-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "s3uploader.toml";
  {
    std::ofstream out(file);
    out << "listen = \"127.0.0.1:7000\"\nmax_upload_bytes = \"1GiB\"\nthreads = 2\ndebug = true\n"
           "storage = \"file:///srv/objects\"\n";
  }
  auto sources = with_env({{"S3UP_MAX_UPLOAD_BYTES", "2GiB"}, {"S3UP_THREADS", "5"}});
  sources.toml_file = file.string();
  sources.flags["threads"] = "7";
  const auto c = load(sources);
  EXPECT_EQ(c.service.listen, "127.0.0.1:7000");      // file
  EXPECT_EQ(c.storage.url, "file:///srv/objects");    // file
  EXPECT_TRUE(c.service.debug);                       // file (boolean)
  EXPECT_EQ(c.uploads.max_upload_bytes, 2ull << 30);  // env beats file
  EXPECT_EQ(c.service.threads, 7u);                   // flag beats env
  std::filesystem::remove_all(dir);
}

TEST(Config, BadValuesNameTheSettingAndTheSource) {
  try {
    load(with_env({{"S3UP_MAX_UPLOAD_BYTES", "lots"}}));
    FAIL() << "accepted a bad size";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("S3UP_MAX_UPLOAD_BYTES"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_upload_bytes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load(with_env({{"S3UP_HEADER_TIMEOUT", "soon"}})), ConfigError);
  EXPECT_THROW(load(with_env({{"DEBUG", "maybe"}})), ConfigError);
  EXPECT_THROW(load(with_env({{"S3UP_LISTEN", "8080"}})), ConfigError);
  EXPECT_THROW(load(with_env({{"S3UP_THREADS", "-1"}})), ConfigError);
  EXPECT_THROW(load(with_env({{"S3UP_S3_PART_CHECKSUM", "crc32"}})), ConfigError);
  EXPECT_EQ(load(with_env({})).storage.s3_part_checksum, "auto");
  EXPECT_EQ(load(with_env({{"S3UP_S3_PART_CHECKSUM", "crc32c"}})).storage.s3_part_checksum, "crc32c");
}

TEST(Config, UnknownKeyInFileIsAnError) {
  const auto file = std::filesystem::temp_directory_path() / ("s3up-bad-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream out(file);
    out << "max_upload_byte = 5\n";  // typo
  }
  auto sources = with_env({});
  sources.toml_file = file.string();
  EXPECT_THROW(load(sources), ConfigError);
  std::filesystem::remove(file);
}

// Found by fuzz_config: toml++ 3.3 (Debian 12) reaches undefined behaviour
// on some non-ASCII characters; a configuration may not carry any (a
// string's \u escapes can), and says where one is.
TEST(Config, NonAsciiInTheFileIsRefusedWithItsLine) {
  auto sources = with_env({});
  sources.toml_text = "listen = \"127.0.0.1:8080\"\n\t0.\xCD\x8C#]\n";
  try {
    load(sources);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("configuration:2: a non-ASCII character"), std::string::npos) << e.what();
  }
  sources.toml_text = "s = \"\"\"\\\n\xC2\xA7\"\"\"\n";  // upstream's own case (marzer/tomlplusplus#190)
  EXPECT_THROW(load(sources), ConfigError);
  sources.toml_text = "port_file = \"/run/donn\\u00e9es/port\"\n";  // escaped: fine
  EXPECT_EQ(load(sources).service.port_file, "/run/donn\u00e9es/port");
}

TEST(Config, DatabasePasswordsAreRedacted) {
  EXPECT_EQ(redact_database_url("postgres://app:s3cret@db:5432/x?sslmode=require"),
            "postgres://app:REDACTED@db:5432/x?sslmode=require");
  EXPECT_EQ(redact_database_url("postgresql://app:p%40ss@db/x?password=also&sslmode=verify-full"),
            "postgresql://app:REDACTED@db/x?password=REDACTED&sslmode=verify-full");
  EXPECT_EQ(redact_database_url("postgres://app@db/x"), "postgres://app@db/x");
  EXPECT_EQ(redact_database_url("host=db password=s3cret dbname=x"), "host=db password=REDACTED dbname=x");
  EXPECT_EQ(redact_database_url("host=db password = 'a b\\' c' dbname=x"), "host=db password = REDACTED dbname=x");
  EXPECT_EQ(redact_database_url("password=first"), "password=REDACTED");
  EXPECT_EQ(redact_database_url("host=db mypassword=notakey"), "host=db mypassword=notakey");
  EXPECT_EQ(redact_database_url("sqlite://./data/s3uploader.db"), "sqlite://./data/s3uploader.db");
  // What `s3uploader config` prints.
  const auto c = load(with_env({{"S3UP_DATABASE", "postgres://u:hunter2@h/d"}}));
  for (const auto& [key, value] : describe(c)) EXPECT_EQ(value.find("hunter2"), std::string::npos) << key;
}

TEST(Config, CredentialsInOtherUrlsAreRedacted) {
  EXPECT_EQ(util::redact_url_userinfo("http://ak:sk@rgw:7480/x?y=1"), "http://REDACTED@rgw:7480/x?y=1");
  EXPECT_EQ(util::redact_url_userinfo("https://key@s3.example.com"), "https://REDACTED@s3.example.com");
  EXPECT_EQ(util::redact_url_userinfo("http://rgw:7480/a@b"), "http://rgw:7480/a@b");
  EXPECT_EQ(util::redact_url_userinfo("s3://bucket/prefix"), "s3://bucket/prefix");
  const auto c = load(with_env({{"S3UP_S3_ENDPOINT", "http://AKIAKEY:topsecret@127.0.0.1:7480"},
                                {"S3UP_PUBLIC_URL", "https://user:pw@files.example.com"},
                                {"S3UP_STORAGE", "s3://bucket/prefix"}}));
  for (const auto& [key, value] : describe(c)) {
    EXPECT_EQ(value.find("topsecret"), std::string::npos) << key;
    EXPECT_EQ(value.find("AKIAKEY"), std::string::npos) << key;
    EXPECT_EQ(value.find("pw@"), std::string::npos) << key;
  }
}

TEST(Config, TimeoutsBelowASecondAreRefused) {
  for (const char* env : {"S3UP_HEADER_TIMEOUT", "S3UP_IDLE_TIMEOUT", "S3UP_MIN_BODY_RATE_WINDOW"}) {
    for (const char* value : {"0s", "0", "1ms", "999ms"}) {
      EXPECT_THROW(load(with_env({{env, value}})), ConfigError) << env << "=" << value;
    }
    EXPECT_NO_THROW(load(with_env({{env, "1s"}}))) << env;
  }
  EXPECT_EQ(load(with_env({{"S3UP_MIN_BODY_RATE", "0"}})).http.min_body_rate, 0u);
  EXPECT_EQ(load(with_env({})).http.min_body_rate, 1024u);
  EXPECT_THROW(load(with_env({{"S3UP_BUFFER_BUDGET", "512KiB"}})), ConfigError);
}

TEST(Config, TusSettings) {
  const auto defaults = load(with_env({}));
  EXPECT_EQ(defaults.resumable.expiry, std::chrono::hours(24));
  EXPECT_TRUE(defaults.web.public_url.empty());
  EXPECT_TRUE(defaults.web.cors_origins.empty());
  const auto c = load(with_env({{"S3UP_PUBLIC_URL", "https://files.example.com/"},
                                {"S3UP_TRUSTED_PROXIES", " 10.0.0.1, ,::1 "},
                                {"S3UP_CORS_ORIGINS", "https://a.example,*"},
                                {"S3UP_RESUMABLE_EXPIRY", "90m"}}));
  EXPECT_EQ(c.web.public_url, "https://files.example.com") << "no trailing slash: paths are appended";
  EXPECT_EQ(c.web.trusted_proxies, (std::vector<std::string>{"10.0.0.1", "::1"}));
  EXPECT_EQ(c.web.cors_origins, (std::vector<std::string>{"https://a.example", "*"}));
  EXPECT_EQ(c.resumable.expiry, std::chrono::minutes(90));
  for (const char* bad : {"files.example.com", "ftp://x", "https://x/a b", "https://x/?q"}) {
    EXPECT_THROW(load(with_env({{"S3UP_PUBLIC_URL", bad}})), ConfigError) << bad;
  }
}

TEST(Config, EverySettingHasAnEnvironmentVariableAndADescription) {
  for (const auto& s : settings()) {
    EXPECT_FALSE(s.env.empty()) << s.key;
    EXPECT_FALSE(s.description.empty()) << s.key;
  }
  EXPECT_EQ(describe(load(with_env({}))).size(), settings().size());
}

}  // namespace
}  // namespace s3up::config

namespace s3up::config {
namespace {

// The configuration reference (which the README links) must name every setting.
TEST(Config, ReadmeTableListsEverySetting) {
  std::ifstream in(std::string(S3UP_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md not found";
  const std::string readme((std::istreambuf_iterator<char>(in)), {});
  for (const auto& s : settings()) {
    EXPECT_NE(readme.find("| `" + std::string(s.key) + "` | `" + std::string(s.env) + "` |"), std::string::npos)
        << "docs/configuration.md has no table row for " << s.key << " / " << s.env;
  }
  // What the S3 backend reads beside our own settings (config.cpp, storage/s3/credentials.cpp).
  for (const char* aws :
       {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED"}) {
    EXPECT_NE(readme.find(std::string("`") + aws + "`"), std::string::npos)
        << "docs/configuration.md does not name " << aws;
  }
}

}  // namespace
}  // namespace s3up::config
