#include "config/config.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "util/text.hpp"
#include "util/units.hpp"

namespace s3up::config {
namespace {

using namespace std::string_view_literals;

// Below this a timeout drops requests that are merely on a slow network.
constexpr std::chrono::milliseconds kMinimumTimeout{1000};

using Bad = std::function<void(std::string_view why)>;

// How a setting's text becomes a value, and the value text again. Each reader
// calls bad() (which throws) for what it cannot accept.
struct Text {
  bool required = false;
  std::string read(const std::string& v, const Bad& bad) const {
    if (required && v.empty()) bad("must not be empty");
    return v;
  }
  std::string show(const std::string& v) const { return v; }
};
struct HostPort {
  bool optional = false;  // "" turns it off
  std::string read(const std::string& v, const Bad& bad) const {
    if (optional && v.empty()) return v;
    if (v.rfind(':') == std::string::npos) bad("expected host:port");
    return v;
  }
  std::string show(const std::string& v) const { return v; }
};
struct Size {
  std::uint64_t at_least = 0;
  std::string_view why = "";
  std::uint64_t read(const std::string& v, const Bad& bad) const {
    const auto n = util::parse_size(v);
    if (!n) bad("expected a size such as 1048576, 512KiB or 5GiB");
    if (*n < at_least) bad(why);
    return *n;
  }
  std::string show(std::uint64_t v) const { return std::to_string(v); }
};
struct Count {
  unsigned at_least = 0;
  unsigned read(const std::string& v, const Bad& bad) const {
    const auto n = util::parse_size(v);
    if (!n || *n > 4096 || v.find_first_not_of("0123456789") != std::string::npos) bad("expected a number 0..4096");
    if (*n < at_least) bad("at least " + std::to_string(at_least));
    return static_cast<unsigned>(*n);
  }
  std::string show(unsigned v) const { return std::to_string(v); }
};
struct Duration {
  std::chrono::milliseconds at_least{0};
  std::chrono::milliseconds at_most = std::chrono::milliseconds::max();
  std::string_view why = "";
  std::chrono::milliseconds read(const std::string& v, const Bad& bad) const {
    const auto d = util::parse_duration(v);
    if (!d) bad("expected a duration such as 30s, 5m or 250ms");
    if (*d < at_least || *d > at_most) bad(why);
    return *d;
  }
  // In the largest unit that holds it whole, as a person writes it (and
  // read() reads it back).
  std::string show(std::chrono::milliseconds v) const {
    const auto ms = v.count();
    if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
    if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
    if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
    return fmt::format("{}ms", ms);
  }
};
struct WholeSeconds : Duration {
  std::chrono::seconds read(const std::string& v, const Bad& bad) const {
    return std::chrono::duration_cast<std::chrono::seconds>(Duration::read(v, bad));
  }
};
// A timeout or interval: a duration no shorter than kMinimumTimeout.
constexpr Duration kTimeout{kMinimumTimeout, std::chrono::milliseconds::max(), "at least 1s"};
struct Boolean {
  bool read(const std::string& v, const Bad& bad) const {
    if (v == "1" || v == "true" || v == "yes" || v == "on" || v == "TRUE" || v == "True") return true;
    if (v == "0" || v == "false" || v == "no" || v == "off" || v == "FALSE" || v == "False" || v.empty()) return false;
    bad("expected true or false");
    return false;
  }
  std::string show(bool v) const { return v ? "true" : "false"; }
};
// One of two words, read as whether it is the second.
struct Choice {
  std::string_view no, yes;
  bool read(const std::string& v, const Bad& bad) const {
    if (v != no && v != yes) bad(fmt::format("{} or {}", no, yes));
    return v == yes;
  }
  std::string show(bool v) const { return std::string(v ? yes : no); }
};
// One of a few words, kept as it is.
struct OneOf {
  std::vector<std::string_view> words;
  std::string read(const std::string& v, const Bad& bad) const {
    if (std::find(words.begin(), words.end(), v) == words.end()) bad(fmt::format("one of {}", fmt::join(words, ", ")));
    return v;
  }
  std::string show(const std::string& v) const { return v; }
};
struct Rate {
  double read(const std::string& v, const Bad& bad) const {
    char* end = nullptr;
    const double n = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !(n >= 0) || n > 1e6) bad("expected a number >= 0");
    return n;
  }
  std::string show(double v) const { return fmt::format("{}", v); }
};
// A comma-separated list, each item trimmed, empty ones dropped.
struct List {
  std::vector<std::string> read(const std::string& v, const Bad&) const {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= v.size()) {
      auto comma = v.find(',', pos);
      if (comma == std::string::npos) comma = v.size();
      const auto item = util::trim(std::string_view(v).substr(pos, comma - pos));
      if (!item.empty()) out.emplace_back(item);
      pos = comma + 1;
    }
    return out;
  }
  std::string show(const std::vector<std::string>& v) const { return fmt::format("{}", fmt::join(v, ",")); }
};
// Several secrets (comma-separated): never shown.
struct SecretList {
  std::vector<std::string> read(const std::string& v, const Bad& bad) const { return List{}.read(v, bad); }
  std::string show(const std::vector<std::string>& v) const { return v.empty() ? "" : "REDACTED"; }
};
// Several URLs (comma-separated), shown without their userinfo.
struct UrlList {
  std::vector<std::string> read(const std::string& v, const Bad& bad) const { return List{}.read(v, bad); }
  std::string show(const std::vector<std::string>& v) const {
    std::vector<std::string> shown;
    for (const auto& url : v) shown.push_back(util::redact_url_userinfo(url));
    return fmt::format("{}", fmt::join(shown, ","));
  }
};
// An absolute http(s) URL without a trailing slash (public_url).
struct BaseUrl {
  std::string read(const std::string& v, const Bad& bad) const {
    if (v.empty()) return v;
    if ((v.rfind("http://", 0) != 0 && v.rfind("https://", 0) != 0) ||
        v.find_first_of(" \t\r\n?#") != std::string::npos) {
      bad("expected an absolute http:// or https:// URL");
    }
    std::string url = v;
    while (url.back() == '/') url.pop_back();
    return url;
  }
  std::string show(const std::string& v) const { return util::redact_url_userinfo(v); }
};
struct TypePatterns {
  std::vector<std::string> read(const std::string& v, const Bad& bad) const {
    auto patterns = upload::parse_type_patterns(v);
    if (!patterns) bad("expected media types or patterns such as image/*, application/pdf");
    return std::move(*patterns);
  }
  std::string show(const std::vector<std::string>& v) const { return List{}.show(v); }
};
struct DatabaseUrl : Text {
  std::string show(const std::string& v) const { return redact_database_url(v); }
};
// Any other URL: shown without its userinfo (an endpoint written as
// http://key:secret@host carries credentials in both halves).
struct Url : Text {
  std::string show(const std::string& v) const { return util::redact_url_userinfo(v); }
};
// A secret: never shown, and never echoed in an error.
struct Secret {
  std::string read(const std::string& v, const Bad&) const { return v; }
  std::string show(const std::string& v) const { return v.empty() ? "" : "REDACTED"; }
};
// A quota: a size, stored as "none" when 0.
struct Quota {
  std::optional<std::uint64_t> read(const std::string& v, const Bad& bad) const {
    const auto n = Size{}.read(v, bad);
    return n > 0 ? std::optional(n) : std::nullopt;
  }
  std::string show(const std::optional<std::uint64_t>& v) const { return std::to_string(v.value_or(0)); }
};

// The setting `key` at `field` (a function giving the field's place in a
// Config), read and shown by `codec`.
template <class Field, class Codec>
SettingInfo setting(std::string_view key, std::string_view env, std::string_view default_value,
                    std::string_view description, Field field, Codec codec) {
  return SettingInfo{key,
                     env,
                     default_value,
                     description,
                     [field, codec](Config& c, const std::string& value, const Bad& bad) {
                       auto& place = field(c);
                       place = static_cast<std::remove_reference_t<decltype(place)>>(codec.read(value, bad));
                     },
                     [field, codec](const Config& c) { return codec.show(field(c)); }};
}

// A field of one of Config's groups, as `setting` takes it (read through a
// Config, shown through a const one).
template <class Group, class T>
auto in(Group Config::*group, T Group::*member) {
  return [ group, member ](auto& c) -> auto& { return (c.*group).*member; };
}
template <class T>
auto top(T Config::*member) {
  return [member](auto& c) -> auto& { return c.*member; };
}

const std::vector<SettingInfo> kSettings = {
    setting("listen", "S3UP_LISTEN", "127.0.0.1:8080",
            "Address and port to listen on (host:port; port 0 picks a free one).",
            in(&Config::service, &ServiceSettings::listen), HostPort{}),
    setting("tls_cert", "S3UP_TLS_CERT", "",
            "PEM certificate chain (the server's first) for HTTPS on the listener; with tls_key. Reloaded on "
            "SIGHUP.",
            in(&Config::service, &ServiceSettings::tls_cert), Text{}),
    setting("tls_key", "S3UP_TLS_KEY", "", "PEM private key of tls_cert.",
            in(&Config::service, &ServiceSettings::tls_key), Text{}),
    setting("metrics_listen", "S3UP_METRICS_LISTEN", "",
            "A listener of its own for GET /metrics (host:port), served to whoever reaches it; empty: /metrics "
            "is on the main listener, for loopback clients only.",
            in(&Config::service, &ServiceSettings::metrics_listen), HostPort{true}),
    setting("storage", "S3UP_STORAGE", "file://./data/objects",
            "Object store URL: file:///path (local disk) or s3://bucket/prefix.",
            in(&Config::storage, &storage::StoreSettings::url), Url{{true}}),
    setting("database", "S3UP_DATABASE", "sqlite://./data/s3uploader.db",
            "Metadata database: sqlite:///path, postgres://user@host/db, or a libpq keyword string.",
            in(&Config::database, &DatabaseSettings::url), DatabaseUrl{{true}}),
    setting("database_pool_size", "S3UP_DATABASE_POOL_SIZE", "0",
            "Most database connections open at once; 0 means one per 4 blocking threads, at least 4.",
            in(&Config::database, &DatabaseSettings::pool_size), Count{}),
    setting("database_timeout", "S3UP_DATABASE_TIMEOUT", "30s",
            "Longest a PostgreSQL query or connection attempt waits for the server; then the request gets 503 "
            "and the connection is dropped.",
            in(&Config::database, &DatabaseSettings::timeout),
            Duration{std::chrono::seconds(1), std::chrono::hours(1), "between 1s and 1h"}),
    setting("max_upload_bytes", "S3UP_MAX_UPLOAD_BYTES", "5GiB",
            "Largest accepted file (bytes, or with a unit: 100MiB, 5GiB).",
            in(&Config::uploads, &upload::Limits::max_upload_bytes), Size{}),
    setting("threads", "S3UP_THREADS", "0", "I/O threads; 0 means one per CPU core.",
            in(&Config::service, &ServiceSettings::threads), Count{}),
    setting("blocking_threads", "S3UP_BLOCKING_THREADS", "0",
            "Threads for database and disk calls; 0 means 8 per core, at least 16.",
            in(&Config::service, &ServiceSettings::blocking_threads), Count{}),
    setting("max_header_bytes", "S3UP_MAX_HEADER_BYTES", "16KiB", "Largest request header block; larger ones get 431.",
            in(&Config::http, &http::Limits::max_header_bytes), Size{1024, "at least 1KiB"}),
    setting("header_timeout", "S3UP_HEADER_TIMEOUT", "30s",
            "Time allowed to send a request's headers (also the keep-alive idle limit; at least 1s).",
            in(&Config::http, &http::Limits::header_timeout), kTimeout),
    setting("idle_timeout", "S3UP_IDLE_TIMEOUT", "60s",
            "Longest pause allowed while a request body is being received (at least 1s); then 408.",
            in(&Config::http, &http::Limits::idle_timeout), kTimeout),
    setting("min_body_rate", "S3UP_MIN_BODY_RATE", "1KiB",
            "Slowest request body accepted, in bytes per second (0: no minimum); slower uploads are aborted with 408 "
            "and cleaned up.",
            in(&Config::http, &http::Limits::min_body_rate), Size{}),
    setting("min_body_rate_window", "S3UP_MIN_BODY_RATE_WINDOW", "30s",
            "The window min_body_rate is averaged over (at least 1s); the first window of a body is grace.",
            in(&Config::http, &http::Limits::min_body_rate_window), kTimeout),
    setting("shutdown_grace", "S3UP_SHUTDOWN_GRACE", "30s",
            "On SIGTERM/SIGINT, how long in-flight uploads may run before they are aborted.",
            in(&Config::http, &http::Limits::shutdown_grace), Duration{}),
    setting("shutdown_drain", "S3UP_SHUTDOWN_DRAIN", "0s",
            "On SIGTERM/SIGINT, how long to keep serving with GET /readyz answering 503 before the listener "
            "closes, so a load balancer stops sending new requests first (10s behind one; then shutdown_grace).",
            in(&Config::service, &ServiceSettings::shutdown_drain), Duration{}),
    setting("debug", "DEBUG", "false", "Debug logging (true/false): the same as log_level = debug.",
            in(&Config::service, &ServiceSettings::debug), Boolean{}),
    setting("log_level", "S3UP_LOG_LEVEL", "info", "The least a log line must be: debug, info, warn or error.",
            in(&Config::service, &ServiceSettings::log_level), OneOf{{"debug", "info", "warn", "error"}}),
    setting("log_format", "S3UP_LOG_FORMAT", "text",
            "text (for people) or json (one object per line: ts, level, logger, msg and the access log's fields).",
            in(&Config::service, &ServiceSettings::log_format), OneOf{{"text", "json"}}),
    setting("migrate_on_start", "S3UP_MIGRATE", "true", "Apply database migrations when `serve` starts.",
            in(&Config::service, &ServiceSettings::migrate_on_start), Boolean{}),
    setting(
        "download", "S3UP_DOWNLOAD", "stream",
        "GET /files/{id}/content: stream (bytes through the service) or redirect (302 to a presigned URL; S3 only).",
        in(&Config::downloads, &api::Downloads::redirect), Choice{"stream", "redirect"}),
    setting("download_url_ttl", "S3UP_DOWNLOAD_URL_TTL", "5m",
            "How long a download link (POST /files/{id}/link) or a presigned redirect URL stays valid.",
            in(&Config::downloads, &api::Downloads::url_ttl),
            WholeSeconds{{std::chrono::seconds(1), std::chrono::hours(24 * 7), "between 1s and 7d (S3's limit)"}}),
    setting("resumable_expiry", "S3UP_RESUMABLE_EXPIRY", "24h",
            "How long an unfinished resumable (tus) upload lives after its creation or last PATCH; then the janitor "
            "removes it.",
            in(&Config::resumable, &upload::ResumableSettings::expiry), Duration{}),
    setting("public_url", "S3UP_PUBLIC_URL", "",
            "The service's URL as clients reach it (https://files.example.com), for the Location of tus uploads; "
            "empty: from the request's Host.",
            in(&Config::web, &api::Web::public_url), BaseUrl{}),
    setting(
        "trusted_proxies", "S3UP_TRUSTED_PROXIES", "",
        "IP addresses of reverse proxies whose X-Forwarded-Proto and X-Forwarded-Host are believed (comma-separated).",
        in(&Config::web, &api::Web::trusted_proxies), List{}),
    setting("cors_origins", "S3UP_CORS_ORIGINS", "",
            "Origins a browser may call the API from (https://app.example.com,...), or * for any; empty: none.",
            in(&Config::web, &api::Web::cors_origins), List{}),
    setting("jwt_jwks_url", "S3UP_JWT_JWKS_URL", "",
            "JWTs from your identity provider as bearer tokens: its JWKS URL "
            "(https://tenant.auth0.com/.well-known/jwks.json). Or set jwt_issuer alone (OIDC discovery), jwt_jwks_file "
            "or jwt_secret.",
            in(&Config::jwt, &auth::JwtSettings::jwks_url), Url{}),
    setting("jwt_jwks_file", "S3UP_JWT_JWKS_FILE", "", "A JWKS file to check JWTs with (read again every 5 minutes).",
            in(&Config::jwt, &auth::JwtSettings::jwks_file), Text{}),
    setting("jwt_secret", "S3UP_JWT_SECRET", "",
            "A shared secret (at least 32 bytes) to check HS256/384/512 JWTs with, e.g. Supabase's legacy JWT secret.",
            in(&Config::jwt, &auth::JwtSettings::secret), Secret{}),
    setting("jwt_issuer", "S3UP_JWT_ISSUER", "",
            "The issuer JWTs must name (iss); alone, its /.well-known/openid-configuration names the keys.",
            in(&Config::jwt, &auth::JwtSettings::issuer), Text{}),
    setting("jwt_audience", "S3UP_JWT_AUDIENCE", "",
            "The audience JWTs must name (aud); required with JWTs, so tokens made for another app do not work here.",
            in(&Config::jwt, &auth::JwtSettings::audience), Text{}),
    setting("jwt_leeway", "S3UP_JWT_LEEWAY", "60s", "Clock skew allowed when checking exp, nbf and iat (at most 1h).",
            in(&Config::jwt, &auth::JwtSettings::leeway),
            WholeSeconds{{std::chrono::seconds(0), std::chrono::hours(1), "between 0s and 1h"}}),
    setting("jwt_user_claim", "S3UP_JWT_USER_CLAIM", "sub",
            "The claim naming the user; with the issuer it is one user, created on first use.",
            in(&Config::jwt, &auth::JwtSettings::user_claim), Text{true}),
    setting("jwt_admin_claim", "S3UP_JWT_ADMIN_CLAIM", "",
            "A claim that makes its bearer an admin when it is (or, as an array, contains) jwt_admin_value; e.g. "
            "role.",
            in(&Config::jwt, &auth::JwtSettings::admin_claim), Text{}),
    setting("jwt_admin_value", "S3UP_JWT_ADMIN_VALUE", "", "The value of jwt_admin_claim that makes an admin.",
            in(&Config::jwt, &auth::JwtSettings::admin_value), Text{}),
    setting("upload_link_max_lifetime", "S3UP_UPLOAD_LINK_MAX_LIFETIME", "30d",
            "The longest an upload link (POST /upload-links) may be made to last; by default one lasts 7d or this, "
            "if shorter.",
            in(&Config::upload_links, &api::UploadLinkLimits::max_lifetime),
            Duration{std::chrono::minutes(1), std::chrono::hours(24 * 366), "between 1m and 366d"}),
    setting("download_link_max_ttl", "S3UP_DOWNLOAD_LINK_MAX_TTL", "7d",
            "The longest a download link may be asked to last (POST /files/{id}/link with expires_in).",
            in(&Config::downloads, &api::Downloads::max_link_ttl),
            WholeSeconds{{std::chrono::seconds(1), std::chrono::hours(24 * 7), "between 1s and 7d (S3's limit)"}}),
    setting("webhook_urls", "S3UP_WEBHOOK_URLS", "",
            "Endpoints that get every upload event as a signed POST (Standard Webhooks; comma-separated https:// URLs, "
            "http:// only on loopback).",
            in(&Config::webhooks, &webhooks::WebhookSettings::urls), UrlList{}),
    setting("webhook_secret", "S3UP_WEBHOOK_SECRET", "",
            "The signing secret, whsec_ + base64 (required with webhook_urls); two, comma-separated, while rotating: "
            "each signs.",
            in(&Config::webhooks, &webhooks::WebhookSettings::secrets), SecretList{}),
    setting("webhook_events", "S3UP_WEBHOOK_EVENTS", "",
            "The events sent (comma-separated): upload.created, upload.completed, upload.failed, upload.deleted, "
            "upload_link.used; empty: all.",
            in(&Config::webhooks, &webhooks::WebhookSettings::events), List{}),
    setting("webhook_timeout", "S3UP_WEBHOOK_TIMEOUT", "10s",
            "How long an endpoint has to answer a delivery (at least 1s); then it is tried again later.",
            in(&Config::webhooks, &webhooks::WebhookSettings::timeout), kTimeout),
    setting("webhook_max_age", "S3UP_WEBHOOK_MAX_AGE", "3d",
            "How long an event is tried again (5s doubling to 1h between tries); then it is dead.",
            in(&Config::webhooks, &webhooks::WebhookSettings::max_age),
            Duration{std::chrono::seconds(1), std::chrono::hours(24 * 90), "between 1s and 90d"}),
    setting("webhook_retention", "S3UP_WEBHOOK_RETENTION", "7d",
            "How long delivered events are kept (for webhook list) before they are removed.",
            in(&Config::webhooks, &webhooks::WebhookSettings::retention), Duration{}),
    setting("pre_upload_hook_url", "S3UP_PRE_UPLOAD_HOOK_URL", "",
            "Asked before every upload starts (a signed POST; needs webhook_secret): it may allow, rename or refuse it.",
            in(&Config::webhooks, &webhooks::WebhookSettings::pre_upload_hook_url), Url{}),
    setting("pre_upload_hook_timeout", "S3UP_PRE_UPLOAD_HOOK_TIMEOUT", "5s",
            "How long the pre-upload hook has to answer; then the upload is refused with 503 (or let through: "
            "pre_upload_hook_fail_open).",
            in(&Config::webhooks, &webhooks::WebhookSettings::pre_upload_hook_timeout),
            Duration{std::chrono::milliseconds(100), std::chrono::minutes(1), "between 100ms and 1m"}),
    setting("pre_upload_hook_fail_open", "S3UP_PRE_UPLOAD_HOOK_FAIL_OPEN", "false",
            "When the pre-upload hook cannot be asked (down, slow, a 5xx, an unreadable answer): let the upload through "
            "(logged) instead of refusing it with 503.",
            in(&Config::webhooks, &webhooks::WebhookSettings::pre_upload_hook_fail_open), Boolean{}),
    setting("stale_upload_age", "S3UP_STALE_UPLOAD_AGE", "24h",
            "A pending upload older than this (not being received by this instance) died with its process: the janitor "
            "cleans it up.",
            in(&Config::janitor, &JanitorSettings::stale_upload_age), Duration{}),
    setting("janitor_interval", "S3UP_JANITOR_INTERVAL", "5m",
            "How often the janitor looks for dead uploads (it also runs at start-up).",
            in(&Config::janitor, &JanitorSettings::interval), kTimeout),
    setting("default_quota", "S3UP_DEFAULT_QUOTA", "0",
            "Storage per user without a quota of their own (user add --quota); 0: unlimited.",
            in(&Config::uploads, &upload::Limits::default_quota), Quota{}),
    setting(
        "rate_limit", "S3UP_RATE_LIMIT", "0",
        "Requests per second per API token, on average (0: no limit); 429 with Retry-After beyond it. Per instance.",
        in(&Config::rate_limit, &auth::RateLimit::per_second), Rate{}),
    setting("rate_limit_burst", "S3UP_RATE_LIMIT_BURST", "0",
            "Requests a token may make at once before rate_limit applies (0: the rate, at least 1).",
            in(&Config::rate_limit, &auth::RateLimit::burst), Rate{}),
    setting("max_concurrent_uploads", "S3UP_MAX_CONCURRENT_UPLOADS", "0",
            "Uploads one user may have in progress at once (0: no limit); 429 beyond it. Per instance.",
            in(&Config::uploads, &upload::Limits::max_concurrent_uploads), Count{}),
    setting("allowed_types", "S3UP_ALLOWED_TYPES", "",
            "Content types accepted, as a list of patterns (image/*,application/pdf), decided by sniffing the first "
            "bytes; empty: all.",
            in(&Config::uploads, &upload::Limits::allowed_types), TypePatterns{}),
    setting("port_file", "S3UP_PORT_FILE", "",
            "If set, `serve` writes the port it bound to this file (useful with port 0).",
            in(&Config::service, &ServiceSettings::port_file), Text{}),
    setting("s3_endpoint", "S3UP_S3_ENDPOINT", "",
            "S3 endpoint URL; else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS for the region.",
            in(&Config::storage, &storage::StoreSettings::s3_endpoint), Url{}),
    setting("s3_region", "AWS_REGION", "", "S3 region; else AWS_DEFAULT_REGION, else us-east-1.",
            in(&Config::storage, &storage::StoreSettings::s3_region), Text{}),
    setting("s3_force_path_style", "S3UP_S3_FORCE_PATH_STYLE", "false",
            "Path-style S3 addressing (automatic for IP and localhost endpoints).",
            in(&Config::storage, &storage::StoreSettings::s3_force_path_style), Boolean{}),
    setting("s3_ca_file", "S3UP_S3_CA_FILE", "", "Extra CA bundle (PEM) to trust for the S3 endpoint.",
            in(&Config::storage, &storage::StoreSettings::s3_ca_file), Text{}),
    setting("s3_timeout", "S3UP_S3_TIMEOUT", "30s",
            "Longest the store may keep a request waiting without progress (connecting, taking the request, "
            "answering); then it is tried again, 5 times in all, and the client gets 503.",
            in(&Config::storage, &storage::StoreSettings::s3_timeout),
            Duration{std::chrono::seconds(1), std::chrono::minutes(10), "between 1s and 10m"}),
    setting("s3_part_checksum", "S3UP_S3_PART_CHECKSUM", "auto",
            "How the store checks each part's bytes: sha256 (signed x-amz-content-sha256), md5 (Content-MD5), "
            "crc32c or crc64nvme (x-amz-checksum-*, as the AWS SDKs send them: one fast pass), or auto: crc32c "
            "over HTTPS and to AWS, sha256 to a plain-HTTP endpoint.",
            in(&Config::storage, &storage::StoreSettings::s3_part_checksum),
            OneOf{{"auto", "sha256", "md5", "crc32c", "crc64nvme"}}),
    setting("part_size", "S3UP_PART_SIZE", "8MiB", "S3 multipart part size (at least 5MiB; grown to fit 10,000 parts).",
            in(&Config::storage, &storage::StoreSettings::part_size),
            Size{5 * 1024 * 1024, "S3 parts are at least 5MiB"}),
    setting("parts_in_flight", "S3UP_PARTS_IN_FLIGHT", "4", "S3 parts uploaded in parallel per upload.",
            in(&Config::storage, &storage::StoreSettings::parts_in_flight), Count{1}),
    setting("buffer_budget", "S3UP_BUFFER_BUDGET", "256MiB",
            "Memory for upload bodies in flight across all uploads (S3 parts, local-disk blocks, receive buffers); "
            "uploads wait when it is spent.",
            top(&Config::buffer_budget), Size{}),
    setting(
        "download_budget", "S3UP_DOWNLOAD_BUDGET", "64MiB",
        "Memory for download bodies in flight across all downloads (at least 1MiB); downloads wait when it is spent.",
        top(&Config::download_budget), Size{}),
};

void apply(Config& c, std::string_view key, const std::string& value, std::string_view source) {
  for (const auto& s : kSettings) {
    if (s.key != key) continue;
    s.read(c, value, [&](std::string_view why) {
      throw ConfigError(fmt::format("{}: invalid value '{}' for {} ({})", source, value, key, why));
    });
    return;
  }
  throw ConfigError(fmt::format("{}: unknown setting '{}'", source, key));
}

std::string toml_value_text(const toml::node& node, std::string_view key, const std::string& file) {
  if (auto s = node.value<std::string>(); s && node.is_string()) return *s;
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (node.is_boolean()) return *node.value<bool>() ? "true" : "false";
  throw ConfigError(fmt::format("{}: {} must be a string, an integer or a boolean", file, key));
}

}  // namespace

std::string as_toml(const Config& config) {
  std::string out = "# s3uploader's effective configuration; passwords are shown as REDACTED\n";
  for (const auto& [key, value] : describe(config)) {
    std::string quoted;
    for (const char c : value) {
      if (c == '"' || c == '\\') {
        quoted += '\\';
        quoted += c;
      } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        quoted += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
      } else {
        quoted += c;
      }
    }
    out += fmt::format("{} = \"{}\"\n", key, quoted);
  }
  return out;
}

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

namespace {

// Every setting's value is ASCII, or can be written so (a string's \u
// escapes). The TOML library Debian 12 ships (toml++ 3.3) reaches undefined
// behaviour on some non-ASCII characters (found by fuzz_config; upstream
// marzer/tomlplusplus#190, fixed after 3.3), so none reaches it.
void refuse_non_ascii(std::string_view text, const std::string& source) {
  const auto at = std::find_if(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  if (at == text.end()) return;
  const auto line = 1 + std::count(text.begin(), at, '\n');
  throw ConfigError(fmt::format("{}:{}: a non-ASCII character; write it as a \\uXXXX escape inside a string", source,
                                line));
}

}  // namespace

Config load(const Sources& sources) {
  Config c;
  for (const auto& s : kSettings) apply(c, s.key, std::string(s.default_value), "default");

  if (sources.toml_file || sources.toml_text) {
    const std::string source = sources.toml_file ? *sources.toml_file : "configuration";
    std::string text;
    if (sources.toml_text) {
      text = *sources.toml_text;
    } else {
      std::ifstream in(source, std::ios::binary);
      if (!in) throw ConfigError(fmt::format("{}: cannot be read", source));
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    refuse_non_ascii(text, source);
    toml::table table;
    try {
      table = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
      throw ConfigError(fmt::format("{}: {}", source, e.description()));
    }
    for (const auto& [k, node] : table) {
      const std::string key(k.str());
      apply(c, key, toml_value_text(node, key, source), source);
    }
  }

  const auto getenv = sources.getenv ? sources.getenv : [](const char* n) -> const char* { return std::getenv(n); };
  for (const auto& s : kSettings) {
    const std::string env(s.env);
    if (const char* v = getenv(env.c_str()); v != nullptr) apply(c, s.key, v, "environment " + env);
  }

  for (const auto& [key, value] : sources.flags) apply(c, key, value, "flag --" + key);

  // The AWS SDK conventions, where our own setting is not given.
  auto& store = c.storage;
  if (store.s3_endpoint.empty()) {
    for (const char* name : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
      if (const char* v = getenv(name); v != nullptr && *v != '\0') {
        store.s3_endpoint = v;
        break;
      }
    }
  }
  if (store.s3_region.empty()) {
    const char* v = getenv("AWS_DEFAULT_REGION");
    store.s3_region = v != nullptr && *v != '\0' ? v : "us-east-1";
  }
  if (c.downloads.redirect && !store.url.starts_with("s3://")) {
    throw ConfigError("download = redirect needs the S3 backend (storage = s3://...)");
  }
  if (c.service.tls_cert.empty() != c.service.tls_key.empty()) {
    throw ConfigError("tls_cert and tls_key go together: set both for HTTPS, or neither");
  }
  if (c.buffer_budget < 1024 * 1024) throw ConfigError("buffer_budget must be at least 1MiB");
  if (c.download_budget < 1024 * 1024) throw ConfigError("download_budget must be at least 1MiB");
  if (store.url.starts_with("s3://") && c.buffer_budget < store.part_size * 2) {
    throw ConfigError("buffer_budget must hold at least two parts (part_size)");
  }
  c.upload_links.default_lifetime = std::min(c.upload_links.default_lifetime, c.upload_links.max_lifetime);
  if (c.downloads.url_ttl > c.downloads.max_link_ttl) {
    throw ConfigError("download_url_ttl must not be longer than download_link_max_ttl");
  }
  // Keys are fetched with the S3 client's trust: the system's CAs and s3_ca_file.
  c.jwt.ca_file = store.s3_ca_file;
  if (const auto problem = c.jwt.problem(); !problem.empty()) throw ConfigError(problem);
  c.webhooks.ca_file = store.s3_ca_file;
  if (const auto problem = c.webhooks.problem(); !problem.empty()) throw ConfigError(problem);
  auto& service = c.service;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (service.threads == 0) service.threads = cores;
  // These threads mostly wait (fsync, a database round trip), and the work
  // waiting on them is what gets batched: many are cheap, few starve uploads.
  if (service.blocking_threads == 0) service.blocking_threads = std::max(16u, 8 * cores);
  // Writes are group-committed on one connection at a time, so a few more
  // serve the reads (token lookups). More connections only add database
  // processes competing for the same cores: measured in bench/small_uploads.sh.
  if (c.database.pool_size == 0) c.database.pool_size = std::max(4u, service.blocking_threads / 4);
  return c;
}

std::vector<std::pair<std::string, std::string>> describe(const Config& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : kSettings) out.emplace_back(s.key, s.show(c));
  return out;
}

}  // namespace s3up::config
