#pragma once
// The service's settings. One table (settings()) declares each setting once:
// its key, environment variable, default, meaning, and its field in Config.
// Loading layers, lowest first: defaults, the TOML file (--config),
// environment, command-line flags. To add a setting: a field in the module's
// settings struct, one entry in the table (config.cpp), a README row.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "api/api.hpp"
#include "auth/authenticator.hpp"
#include "http/server.hpp"
#include "storage/object_store.hpp"
#include "upload/policy.hpp"
#include "webhooks/webhooks.hpp"

namespace s3up::config {

struct ServiceSettings {
  std::string listen;             // host:port
  std::string metrics_listen;     // host:port of /metrics' own listener; empty: on the main one
  std::string tls_cert, tls_key;  // PEM files: HTTPS on the listener when set
  unsigned threads = 0;           // I/O threads; 0 = number of cores
  unsigned blocking_threads = 0;  // database and disk threads; 0 = automatic
  std::string port_file;          // if set, the bound port is written here
  bool debug = false;               // the same as log_level = debug
  std::string log_level = "info";   // debug, info, warn or error
  std::string log_format = "text";  // text or json (one object per line)
  bool migrate_on_start = true;
  std::chrono::milliseconds shutdown_drain{0};  // /readyz says 503 this long before the listener closes
};

struct DatabaseSettings {
  std::string url;         // sqlite:///path or postgres://...
  unsigned pool_size = 0;  // 0 = blocking_threads / 4, at least 4
  std::chrono::milliseconds timeout{30'000};  // a query's longest wait for its answer (PostgreSQL)
};

struct JanitorSettings {
  std::chrono::milliseconds stale_upload_age{24 * 3600 * 1000};
  std::chrono::milliseconds interval{5 * 60 * 1000};
};

// Every setting, grouped as the modules take them: each group is the
// module's own settings struct, handed over as it is.
struct Config {
  ServiceSettings service;
  http::Limits http;
  DatabaseSettings database;
  storage::StoreSettings storage;  // its buffers are made by `serve`, from buffer_budget and download_budget
  std::size_t buffer_budget = 0;
  std::size_t download_budget = 0;
  upload::Limits uploads;
  api::Downloads downloads;
  api::Web web;
  upload::ResumableSettings resumable;
  auth::RateLimit rate_limit;
  auth::JwtSettings jwt;
  api::UploadLinkLimits upload_links;
  webhooks::WebhookSettings webhooks;
  JanitorSettings janitor;
};

// A setting, declared once: where it comes from, its default, its help text,
// and how it is read into its place in Config and shown back.
struct SettingInfo {
  std::string_view key;            // TOML key; the flag is --key with '-' for '_'
  std::string_view env;            // environment variable
  std::string_view default_value;  // as text, parsed like any other source
  std::string_view description;
  // Parses `value` into the setting's field; throws ConfigError (made by
  // `bad`, which names the setting and the source) for a bad value.
  std::function<void(Config&, const std::string& value, const std::function<void(std::string_view why)>& bad)> read;
  std::function<std::string(const Config&)> show;  // the effective value, secrets redacted
};
const std::vector<SettingInfo>& settings();

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Sources {
  std::optional<std::string> toml_file;
  std::optional<std::string> toml_text;  // a TOML document itself, instead of a file (fuzzing, tests)
  std::function<const char*(const char*)> getenv;  // std::getenv unless a test replaces it
  std::map<std::string, std::string> flags;        // key -> value given on the command line
};

// Throws ConfigError naming the setting and the source of a bad value.
Config load(const Sources& sources);

// A database URL or libpq keyword string with its password replaced by
// REDACTED, for printing.
std::string redact_database_url(std::string_view url);

// Every setting as a TOML file that --config reads back (but for secrets,
// shown as REDACTED): what `s3uploader config` prints.
std::string as_toml(const Config& config);

// The effective value of every setting as text, in settings() order
// (secrets redacted).
std::vector<std::pair<std::string, std::string>> describe(const Config& config);

}  // namespace s3up::config
