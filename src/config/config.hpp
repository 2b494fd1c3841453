#pragma once
// The service's settings. One table (settings()) describes each setting once:
// its key, environment variable, default and meaning. Loading layers, lowest
// first: defaults, the TOML file (--config), environment, command-line flags.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace s3up::config {

struct Config {
  std::string listen;                  // host:port
  std::string storage;                 // file:///path or s3://bucket/prefix
  std::string database;                // sqlite:///path or postgres://...
  std::uint64_t max_upload_bytes = 0;
  unsigned threads = 0;                // I/O threads; 0 = number of cores
  unsigned blocking_threads = 0;       // database and disk threads; 0 = automatic
  unsigned database_pool_size = 0;     // 0 = blocking_threads / 4, at least 4
  bool download_redirect = false;      // 302 to a presigned URL instead of streaming
  std::chrono::milliseconds download_url_ttl{5 * 60 * 1000};
  std::chrono::milliseconds stale_upload_age{24 * 3600 * 1000};
  std::chrono::milliseconds janitor_interval{5 * 60 * 1000};
  std::uint64_t default_quota = 0;         // bytes per user; 0 = unlimited
  double rate_limit = 0;                   // requests/s per token; 0 = none
  double rate_limit_burst = 0;             // 0 = max(1, rate_limit)
  unsigned max_concurrent_uploads = 0;     // per user; 0 = none
  std::vector<std::string> allowed_types;  // lower-case patterns; empty = all
  std::size_t max_header_bytes = 0;
  std::chrono::milliseconds header_timeout{};
  std::chrono::milliseconds idle_timeout{};
  std::uint64_t min_body_rate = 0;     // bytes/s; 0 = no minimum
  std::chrono::milliseconds min_body_rate_window{};
  std::chrono::milliseconds shutdown_grace{};
  bool debug = false;
  bool migrate_on_start = true;
  std::string port_file;               // if set, the bound port is written here
  // S3 (storage = s3://bucket/prefix)
  std::string s3_endpoint;
  std::string s3_region;
  bool s3_force_path_style = false;
  std::string s3_ca_file;
  bool s3_part_md5 = false;            // s3_part_checksum = md5 (Content-MD5), else sha256 (signed)
  std::size_t part_size = 0;
  unsigned parts_in_flight = 0;
  std::size_t buffer_budget = 0;
};

struct SettingInfo {
  std::string_view key;            // TOML key; the flag is --key with '-' for '_'
  std::string_view env;            // environment variable
  std::string_view default_value;  // as text, parsed like any other source
  std::string_view description;
};
const std::vector<SettingInfo>& settings();

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Sources {
  std::optional<std::string> toml_file;
  std::function<const char*(const char*)> getenv;  // std::getenv unless a test replaces it
  std::map<std::string, std::string> flags;        // key -> value given on the command line
};

// Throws ConfigError naming the setting and the source of a bad value.
Config load(const Sources& sources);

// A database URL or libpq keyword string with its password replaced by
// REDACTED, for printing.
std::string redact_database_url(std::string_view url);

// The effective value of every setting as text, in settings() order
// (secrets redacted).
std::vector<std::pair<std::string, std::string>> describe(const Config& config);

}  // namespace s3up::config
