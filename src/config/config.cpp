#include "config/config.hpp"

#include <cstdlib>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <toml++/toml.h>

#include "util/text.hpp"
#include "util/units.hpp"

namespace s3up::config {
namespace {

using namespace std::string_view_literals;

const std::vector<SettingInfo> kSettings = {
    {"listen", "S3UP_LISTEN", "127.0.0.1:8080", "Address and port to listen on (host:port; port 0 picks a free one)."},
    {"storage", "S3UP_STORAGE", "file://./data/objects", "Object store URL: file:///path (local disk) or s3://bucket/prefix."},
    {"database", "S3UP_DATABASE", "sqlite://./data/s3uploader.db", "Metadata database: sqlite:///path, postgres://user@host/db, or a libpq keyword string."},
    {"database_pool_size", "S3UP_DATABASE_POOL_SIZE", "0", "Most database connections open at once; 0 means one per 4 blocking threads, at least 4."},
    {"max_upload_bytes", "S3UP_MAX_UPLOAD_BYTES", "5GiB", "Largest accepted file (bytes, or with a unit: 100MiB, 5GiB)."},
    {"threads", "S3UP_THREADS", "0", "I/O threads; 0 means one per CPU core."},
    {"blocking_threads", "S3UP_BLOCKING_THREADS", "0", "Threads for database and disk calls; 0 means 8 per core, at least 16."},
    {"max_header_bytes", "S3UP_MAX_HEADER_BYTES", "16KiB", "Largest request header block; larger ones get 431."},
    {"header_timeout", "S3UP_HEADER_TIMEOUT", "30s", "Time allowed to send a request's headers (also the keep-alive idle limit; at least 1s)."},
    {"idle_timeout", "S3UP_IDLE_TIMEOUT", "60s", "Longest pause allowed while a request body is being received (at least 1s); then 408."},
    {"min_body_rate", "S3UP_MIN_BODY_RATE", "1KiB",
     "Slowest request body accepted, in bytes per second (0: no minimum); slower uploads are aborted with 408 and cleaned up."},
    {"min_body_rate_window", "S3UP_MIN_BODY_RATE_WINDOW", "30s",
     "The window min_body_rate is averaged over (at least 1s); the first window of a body is grace."},
    {"shutdown_grace", "S3UP_SHUTDOWN_GRACE", "30s", "On SIGTERM/SIGINT, how long in-flight uploads may run before they are aborted."},
    {"debug", "DEBUG", "false", "Debug logging (true/false)."},
    {"migrate_on_start", "S3UP_MIGRATE", "true", "Apply database migrations when `serve` starts."},
    {"download", "S3UP_DOWNLOAD", "stream", "GET /files/{id}/content: stream (bytes through the service) or redirect (302 to a presigned URL; S3 only)."},
    {"download_url_ttl", "S3UP_DOWNLOAD_URL_TTL", "5m", "How long a presigned download URL stays valid (redirect mode)."},
    {"stale_upload_age", "S3UP_STALE_UPLOAD_AGE", "24h", "A pending upload older than this (not being received by this instance) died with its process: the janitor cleans it up."},
    {"janitor_interval", "S3UP_JANITOR_INTERVAL", "5m", "How often the janitor looks for dead uploads (it also runs at start-up)."},
    {"default_quota", "S3UP_DEFAULT_QUOTA", "0", "Storage per user without a quota of their own (user add --quota); 0: unlimited."},
    {"rate_limit", "S3UP_RATE_LIMIT", "0", "Requests per second per API token, on average (0: no limit); 429 with Retry-After beyond it. Per instance."},
    {"rate_limit_burst", "S3UP_RATE_LIMIT_BURST", "0", "Requests a token may make at once before rate_limit applies (0: the rate, at least 1)."},
    {"max_concurrent_uploads", "S3UP_MAX_CONCURRENT_UPLOADS", "0", "Uploads one user may have in progress at once (0: no limit); 429 beyond it. Per instance."},
    {"allowed_types", "S3UP_ALLOWED_TYPES", "", "Content types accepted, as a list of patterns (image/*,application/pdf), decided by sniffing the first bytes; empty: all."},
    {"port_file", "S3UP_PORT_FILE", "", "If set, `serve` writes the port it bound to this file (useful with port 0)."},
    {"s3_endpoint", "S3UP_S3_ENDPOINT", "", "S3 endpoint URL; else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS for the region."},
    {"s3_region", "AWS_REGION", "", "S3 region; else AWS_DEFAULT_REGION, else us-east-1."},
    {"s3_force_path_style", "S3UP_S3_FORCE_PATH_STYLE", "false", "Path-style S3 addressing (automatic for IP and localhost endpoints)."},
    {"s3_ca_file", "S3UP_S3_CA_FILE", "", "Extra CA bundle (PEM) to trust for the S3 endpoint."},
    {"s3_part_checksum", "S3UP_S3_PART_CHECKSUM", "sha256",
     "How the store checks each part's bytes: sha256 (signed x-amz-content-sha256) or md5 (Content-MD5)."},
    {"part_size", "S3UP_PART_SIZE", "8MiB", "S3 multipart part size (at least 5MiB; grown to fit 10,000 parts)."},
    {"parts_in_flight", "S3UP_PARTS_IN_FLIGHT", "4", "S3 parts uploaded in parallel per upload."},
    {"buffer_budget", "S3UP_BUFFER_BUDGET", "256MiB",
     "Memory for upload bodies in flight across all uploads (S3 parts, local-disk blocks, receive buffers); uploads wait when it is spent."},
};

// Below this a timeout drops requests that are merely on a slow network.
constexpr std::chrono::milliseconds kMinimumTimeout{1000};

bool parse_bool(std::string_view v, bool& out) {
  if (v == "1" || v == "true" || v == "yes" || v == "on" || v == "TRUE" || v == "True") return out = true, true;
  if (v == "0" || v == "false" || v == "no" || v == "off" || v == "FALSE" || v == "False" || v.empty())
    return out = false, true;
  return false;
}

void apply(Config& c, std::string_view key, const std::string& value, std::string_view source) {
  const auto bad = [&](std::string_view what) {
    return ConfigError(fmt::format("{}: invalid value '{}' for {} ({})", source, value, key, what));
  };
  const auto size = [&]() {
    auto v = util::parse_size(value);
    if (!v) throw bad("expected a size such as 1048576, 512KiB or 5GiB");
    return *v;
  };
  const auto duration = [&]() {
    auto v = util::parse_duration(value);
    if (!v) throw bad("expected a duration such as 30s, 5m or 250ms");
    return *v;
  };
  // A timeout or interval: a duration no shorter than kMinimumTimeout.
  const auto timeout = [&]() {
    const auto d = duration();
    if (d < kMinimumTimeout) throw bad("at least 1s");
    return d;
  };
  const auto count = [&]() -> unsigned {
    auto v = util::parse_size(value);
    if (!v || *v > 4096 || value.find_first_not_of("0123456789") != std::string::npos) throw bad("expected a number 0..4096");
    return static_cast<unsigned>(*v);
  };
  const auto boolean = [&]() {
    bool b = false;
    if (!parse_bool(value, b)) throw bad("expected true or false");
    return b;
  };
  if (key == "listen") {
    if (value.rfind(':') == std::string::npos) throw bad("expected host:port");
    c.listen = value;
  } else if (key == "storage") {
    if (value.empty()) throw bad("must not be empty");
    c.storage = value;
  } else if (key == "database") {
    if (value.empty()) throw bad("must not be empty");
    c.database = value;
  } else if (key == "max_upload_bytes") {
    c.max_upload_bytes = size();
  } else if (key == "threads") {
    c.threads = count();
  } else if (key == "download") {
    if (value != "stream" && value != "redirect") throw bad("must be stream or redirect");
    c.download_redirect = value == "redirect";
  } else if (key == "download_url_ttl") {
    c.download_url_ttl = duration();
    if (c.download_url_ttl < std::chrono::seconds(1) || c.download_url_ttl > std::chrono::hours(24 * 7)) {
      throw bad("between 1s and 7d (S3's limit)");
    }
  } else if (key == "stale_upload_age") {
    c.stale_upload_age = duration();
  } else if (key == "janitor_interval") {
    c.janitor_interval = timeout();
  } else if (key == "rate_limit" || key == "rate_limit_burst") {
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || !(v >= 0) || v > 1e6) throw bad("expected a number >= 0");
    (key == "rate_limit" ? c.rate_limit : c.rate_limit_burst) = v;
  } else if (key == "default_quota") {
    c.default_quota = size();
  } else if (key == "max_concurrent_uploads") {
    c.max_concurrent_uploads = count();
  } else if (key == "allowed_types") {
    c.allowed_types.clear();
    std::size_t pos = 0;
    while (pos <= value.size()) {
      auto comma = value.find(',', pos);
      if (comma == std::string::npos) comma = value.size();
      const std::string pattern = util::ascii_lower(util::trim(std::string_view(value).substr(pos, comma - pos)));
      if (!pattern.empty()) {
        const auto slash = pattern.find('/');
        if (pattern != "*" && (slash == std::string::npos || slash == 0 || slash + 1 == pattern.size())) {
          throw bad("expected media types or patterns such as image/*, application/pdf");
        }
        c.allowed_types.push_back(pattern);
      }
      pos = comma + 1;
    }
  } else if (key == "blocking_threads") {
    c.blocking_threads = count();
  } else if (key == "database_pool_size") {
    c.database_pool_size = count();
  } else if (key == "max_header_bytes") {
    c.max_header_bytes = size();
    if (c.max_header_bytes < 1024) throw bad("at least 1KiB");
  } else if (key == "header_timeout") {
    c.header_timeout = timeout();
  } else if (key == "idle_timeout") {
    c.idle_timeout = timeout();
  } else if (key == "min_body_rate") {
    c.min_body_rate = size();
  } else if (key == "min_body_rate_window") {
    c.min_body_rate_window = timeout();
  } else if (key == "shutdown_grace") {
    c.shutdown_grace = duration();
  } else if (key == "debug") {
    c.debug = boolean();
  } else if (key == "migrate_on_start") {
    c.migrate_on_start = boolean();
  } else if (key == "port_file") {
    c.port_file = value;
  } else if (key == "s3_endpoint") {
    c.s3_endpoint = value;
  } else if (key == "s3_region") {
    c.s3_region = value;
  } else if (key == "s3_force_path_style") {
    c.s3_force_path_style = boolean();
  } else if (key == "s3_ca_file") {
    c.s3_ca_file = value;
  } else if (key == "s3_part_checksum") {
    if (value != "sha256" && value != "md5") throw bad("sha256 or md5");
    c.s3_part_md5 = value == "md5";
  } else if (key == "part_size") {
    c.part_size = size();
    if (c.part_size < 5 * 1024 * 1024) throw bad("S3 parts are at least 5MiB");
  } else if (key == "parts_in_flight") {
    c.parts_in_flight = count();
    if (c.parts_in_flight == 0) throw bad("at least 1");
  } else if (key == "buffer_budget") {
    c.buffer_budget = size();
  } else {
    throw ConfigError(fmt::format("{}: unknown setting '{}'", source, key));
  }
}

std::string toml_value_text(const toml::node& node, std::string_view key, const std::string& file) {
  if (auto s = node.value<std::string>(); s && node.is_string()) return *s;
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (node.is_boolean()) return *node.value<bool>() ? "true" : "false";
  throw ConfigError(fmt::format("{}: {} must be a string, an integer or a boolean", file, key));
}

}  // namespace

std::string redact_database_url(std::string_view url) {
  constexpr std::string_view kRedacted = "REDACTED";
  std::string out(url);
  if (url.find("://") != std::string_view::npos) {
    // URL form: the password in the userinfo, and a password= query parameter.
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed) return std::string(url.substr(0, url.find("://") + 3)) + "(unparsable URL, not shown)";
    boost::urls::url u(*parsed);
    if (u.has_password()) u.set_password(kRedacted);
    for (auto it = u.params().begin(); it != u.params().end(); ++it) {
      if ((*it).key == "password") u.params().set(it, kRedacted);
    }
    return std::string(u.buffer());
  }
  // libpq keyword form: password = value, the value bare or 'quoted' (with
  // backslash escapes).
  std::size_t pos = 0;
  while ((pos = out.find("password", pos)) != std::string::npos) {
    const bool starts_word = pos == 0 || out[pos - 1] == ' ' || out[pos - 1] == '\t';
    std::size_t i = pos + 8;
    while (i < out.size() && (out[i] == ' ' || out[i] == '\t')) ++i;
    if (!starts_word || i >= out.size() || out[i] != '=') {
      pos += 8;
      continue;
    }
    ++i;
    while (i < out.size() && (out[i] == ' ' || out[i] == '\t')) ++i;
    std::size_t end = i;
    if (end < out.size() && out[end] == '\'') {
      ++end;
      while (end < out.size() && out[end] != '\'') end += out[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, out.size());
    } else {
      while (end < out.size() && out[end] != ' ' && out[end] != '\t') ++end;
    }
    out.replace(i, end - i, kRedacted);
    pos = i + kRedacted.size();
  }
  return out;
}

const std::vector<SettingInfo>& settings() { return kSettings; }

Config load(const Sources& sources) {
  Config c;
  for (const auto& s : kSettings) apply(c, s.key, std::string(s.default_value), "default");

  if (sources.toml_file) {
    toml::table table;
    try {
      table = toml::parse_file(*sources.toml_file);
    } catch (const toml::parse_error& e) {
      throw ConfigError(fmt::format("{}: {}", *sources.toml_file, e.description()));
    }
    for (const auto& [k, node] : table) {
      const std::string key(k.str());
      apply(c, key, toml_value_text(node, key, *sources.toml_file), *sources.toml_file);
    }
  }

  const auto getenv = sources.getenv ? sources.getenv : [](const char* n) -> const char* { return std::getenv(n); };
  for (const auto& s : kSettings) {
    const std::string env(s.env);
    if (const char* v = getenv(env.c_str()); v != nullptr) apply(c, s.key, v, "environment " + env);
  }

  for (const auto& [key, value] : sources.flags) apply(c, key, value, "flag --" + key);

  // The AWS SDK conventions, where our own setting is not given.
  if (c.s3_endpoint.empty()) {
    for (const char* name : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
      if (const char* v = getenv(name); v != nullptr && *v != '\0') {
        c.s3_endpoint = v;
        break;
      }
    }
  }
  if (c.s3_region.empty()) {
    const char* v = getenv("AWS_DEFAULT_REGION");
    c.s3_region = v != nullptr && *v != '\0' ? v : "us-east-1";
  }
  if (c.download_redirect && !c.storage.starts_with("s3://")) {
    throw ConfigError("download = redirect needs the S3 backend (storage = s3://...)");
  }
  if (c.buffer_budget < 1024 * 1024) throw ConfigError("buffer_budget must be at least 1MiB");
  if (c.storage.starts_with("s3://") && c.buffer_budget < c.part_size * 2) {
    throw ConfigError("buffer_budget must hold at least two parts (part_size)");
  }
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (c.threads == 0) c.threads = cores;
  // These threads mostly wait (fsync, a database round trip), and the work
  // waiting on them is what gets batched: many are cheap, few starve uploads.
  if (c.blocking_threads == 0) c.blocking_threads = std::max(16u, 8 * cores);
  // Writes are group-committed on one connection at a time, so a few more
  // serve the reads (token lookups). More connections only add database
  // processes competing for the same cores: measured in bench/small_uploads.sh.
  if (c.database_pool_size == 0) c.database_pool_size = std::max(4u, c.blocking_threads / 4);
  return c;
}

std::vector<std::pair<std::string, std::string>> describe(const Config& c) {
  const auto ms = [](std::chrono::milliseconds d) { return fmt::format("{}ms", d.count()); };
  return {
      {"listen", c.listen},
      {"storage", c.storage},
      {"database", redact_database_url(c.database)},
      {"max_upload_bytes", std::to_string(c.max_upload_bytes)},
      {"threads", std::to_string(c.threads)},
      {"blocking_threads", std::to_string(c.blocking_threads)},
      {"database_pool_size", std::to_string(c.database_pool_size)},
      {"download", c.download_redirect ? "redirect" : "stream"},
      {"download_url_ttl", ms(c.download_url_ttl)},
      {"stale_upload_age", ms(c.stale_upload_age)},
      {"default_quota", std::to_string(c.default_quota)},
      {"rate_limit", fmt::format("{}", c.rate_limit)},
      {"rate_limit_burst", fmt::format("{}", c.rate_limit_burst)},
      {"max_concurrent_uploads", std::to_string(c.max_concurrent_uploads)},
      {"allowed_types", fmt::format("{}", fmt::join(c.allowed_types, ","))},
      {"janitor_interval", ms(c.janitor_interval)},
      {"max_header_bytes", std::to_string(c.max_header_bytes)},
      {"header_timeout", ms(c.header_timeout)},
      {"idle_timeout", ms(c.idle_timeout)},
      {"min_body_rate", std::to_string(c.min_body_rate)},
      {"min_body_rate_window", ms(c.min_body_rate_window)},
      {"shutdown_grace", ms(c.shutdown_grace)},
      {"debug", c.debug ? "true" : "false"},
      {"migrate_on_start", c.migrate_on_start ? "true" : "false"},
      {"port_file", c.port_file},
      {"s3_endpoint", c.s3_endpoint},
      {"s3_region", c.s3_region},
      {"s3_force_path_style", c.s3_force_path_style ? "true" : "false"},
      {"s3_ca_file", c.s3_ca_file},
      {"s3_part_checksum", c.s3_part_md5 ? "md5" : "sha256"},
      {"part_size", std::to_string(c.part_size)},
      {"parts_in_flight", std::to_string(c.parts_in_flight)},
      {"buffer_budget", std::to_string(c.buffer_budget)},
  };
}

}  // namespace s3up::config
