// s3uploader: the composition root. Reads the configuration, opens the stores,
// and either serves HTTP or runs one administrative command.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "auth/authenticator.hpp"
#include "config/config.hpp"
#include "db/metadata_store.hpp"
#include "http/server.hpp"
#include "storage/object_store.hpp"
#include "api/api.hpp"
#include "upload/janitor.hpp"
#include "api/error.hpp"
#include "util/units.hpp"

namespace {

namespace asio = boost::asio;
using namespace s3up;

void setup_logging(bool debug) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto main_logger = std::make_shared<spdlog::logger>("s3uploader", sink);
  auto access = std::make_shared<spdlog::logger>("access", sink);
  for (auto& l : {main_logger, access}) {
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [%n] %v", spdlog::pattern_time_type::utc);
    l->set_level(debug ? spdlog::level::debug : spdlog::level::info);
    l->flush_on(spdlog::level::info);
  }
  spdlog::set_default_logger(main_logger);
  spdlog::register_logger(access);
}

asio::ip::tcp::endpoint parse_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) throw config::ConfigError("listen: '" + host + "' is not an IP address");
  const auto port_number = std::stoul(port);
  if (port_number > 65535) throw config::ConfigError("listen: port out of range");
  return {address, static_cast<unsigned short>(port_number)};
}

// A quota given on the command line: a size ("10GiB"), or "none"/"" for the default.
std::optional<std::int64_t> parse_quota(const std::string& text) {
  if (text.empty() || text == "none" || text == "default") return std::nullopt;
  const auto bytes = util::parse_size(text);
  if (!bytes || *bytes > static_cast<std::uint64_t>(db::kNoQuota)) {
    throw std::runtime_error("invalid quota '" + text + "': expected a size such as 10GiB, or none");
  }
  return static_cast<std::int64_t>(*bytes);
}

void write_port_file(const std::string& path, unsigned short port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
  }
  std::filesystem::rename(tmp, path);
}

int serve(const config::Config& cfg) {
  asio::thread_pool blocking(cfg.blocking_threads);
  auto metadata = db::open_metadata_store(cfg.database, cfg.database_pool_size);
  if (cfg.migrate_on_start) metadata->migrate();
  asio::io_context io(static_cast<int>(cfg.threads));
  storage::StoreSettings store_settings;
  store_settings.url = cfg.storage;
  store_settings.s3_endpoint = cfg.s3_endpoint;
  store_settings.s3_region = cfg.s3_region;
  store_settings.s3_force_path_style = cfg.s3_force_path_style;
  store_settings.s3_ca_file = cfg.s3_ca_file;
  store_settings.s3_part_md5 = cfg.s3_part_md5;
  store_settings.part_size = cfg.part_size;
  store_settings.parts_in_flight = static_cast<int>(cfg.parts_in_flight);
  // One memory budget for bodies in flight: the store's buffers and the
  // server's receive buffers.
  auto buffers = std::make_shared<util::BufferPool>(cfg.buffer_budget);
  store_settings.buffers = buffers;
  auto store = storage::open_object_store(store_settings, io.get_executor(), blocking);
  auth::Authenticator authenticator(*metadata, blocking);
  const upload::Services uploads{
      *store, *metadata, *metadata, blocking,
      upload::Limits{cfg.max_upload_bytes, cfg.max_concurrent_uploads, cfg.allowed_types,
                     cfg.default_quota > 0 ? std::optional(cfg.default_quota) : std::nullopt}};
  api::Api api(api::Dependencies{
      uploads, authenticator,
      api::Downloads{cfg.download_redirect, std::chrono::duration_cast<std::chrono::seconds>(cfg.download_url_ttl)},
      auth::RateLimit{cfg.rate_limit, cfg.rate_limit_burst}});
  // Clean-up after uploads of crashed processes: now, then periodically.
  upload::Janitor janitor(uploads, cfg.stale_upload_age);
  asio::co_spawn(io, janitor.run_every(cfg.janitor_interval), asio::detached);

  http::ServerOptions options;
  options.endpoint = parse_listen(cfg.listen);
  options.header_timeout = cfg.header_timeout;
  options.idle_timeout = cfg.idle_timeout;
  options.min_body_rate = cfg.min_body_rate;
  options.min_body_rate_window = cfg.min_body_rate_window;
  options.buffers = buffers;
  options.shutdown_grace = cfg.shutdown_grace;
  options.max_header_bytes = cfg.max_header_bytes;
  options.max_body_bytes = cfg.max_upload_bytes + api::kMultipartFramingAllowance;
  http::Server server(io, options,
                      http::chain({http::request_id(), http::error_answers()},
                                  [&api](http::Request& r) { return api.handle(r); }));
  server.start();
  const auto bound = server.local_endpoint();
  if (!cfg.port_file.empty()) write_port_file(cfg.port_file, bound.port());
  spdlog::info("s3uploader listening on {}:{} (storage {}, database {}, {} I/O threads, max upload {})",
               bound.address().to_string(), bound.port(), store->describe(),
               metadata->describe(), cfg.threads,
               util::format_size(cfg.max_upload_bytes));
  if (metadata->count_users() == 0) {
    spdlog::info("no users yet. Create one and a token for it:\n"
                 "    s3uploader user add alice\n"
                 "    s3uploader token create alice\n"
                 "then upload with:\n"
                 "    curl -F file=@photo.jpg -H \"Authorization: Bearer $TOKEN\" http://{}:{}/upload",
                 bound.address().to_string(), bound.port());
  }

  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        static bool first = true;
        if (!first) {
          spdlog::warn("second signal: stopping now");
          io.stop();
          return;
        }
        first = false;
        spdlog::info("received signal {}: shutting down (grace {} ms)", signo, cfg.shutdown_grace.count());
        server.shutdown([&] {
          spdlog::info("all connections closed");
          signals.cancel();
          io.stop();
        });
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < cfg.threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  blocking.join();
  spdlog::info("stopped");
  return 0;
}

std::unique_ptr<db::MetadataStore> open_for_cli(const config::Config& cfg) {
  auto metadata = db::open_metadata_store(cfg.database, 1);
  metadata->migrate();
  return metadata;
}

db::User require_user(db::MetadataStore& metadata, const std::string& name) {
  auto user = metadata.find_user(name);
  if (!user) throw std::runtime_error("no such user: " + name);
  return *user;
}

std::string optional_time(const std::optional<util::Micros>& t) { return t ? util::rfc3339(*t) : "-"; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"s3uploader: authenticated, streaming file uploads into S3 or local disk"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_help_all_flag("--help-all", "Show help for every subcommand");

  config::Sources sources;
  std::string config_file;
  app.add_option("--config", config_file, "TOML configuration file")->check(CLI::ExistingFile);
  // Every setting is also a flag: --max-upload-bytes 1GiB, --listen 0.0.0.0:8080, ...
  std::map<std::string, std::string> flag_values;
  std::vector<std::pair<std::string, CLI::Option*>> flag_options;
  for (const auto& s : config::settings()) {
    std::string flag(s.key);
    std::replace(flag.begin(), flag.end(), '_', '-');
    auto* opt = app.add_option("--" + flag, flag_values[std::string(s.key)],
                               fmt::format("{} [env {}, default '{}']", s.description, s.env, s.default_value));
    flag_options.emplace_back(std::string(s.key), opt);
  }

  auto* serve_cmd = app.add_subcommand("serve", "Run the HTTP service");
  auto* migrate_cmd = app.add_subcommand("migrate", "Apply database migrations and exit");
  auto* config_cmd = app.add_subcommand("config", "Print the effective configuration");

  auto* user_cmd = app.add_subcommand("user", "Manage users")->require_subcommand(1);
  std::string user_name;
  bool admin = false;
  auto* user_add = user_cmd->add_subcommand("add", "Create a user");
  user_add->add_option("name", user_name, "User name")->required();
  user_add->add_flag("--admin", admin, "May manage every user's files");
  std::string quota;
  user_add->add_option("--quota", quota, "Storage quota, e.g. 10GiB (default: the service's default_quota)");
  auto* user_quota = user_cmd->add_subcommand("quota", "Set a user's storage quota (a size, or none for the default)");
  user_quota->add_option("name", user_name, "User name")->required();
  user_quota->add_option("size", quota, "e.g. 10GiB, or none")->required();
  auto* user_list = user_cmd->add_subcommand("list", "List users");
  auto* user_disable = user_cmd->add_subcommand("disable", "Disable a user: their tokens stop working at once");
  user_disable->add_option("name", user_name, "User name")->required();
  auto* user_enable = user_cmd->add_subcommand("enable", "Enable a disabled user again");
  user_enable->add_option("name", user_name, "User name")->required();

  auto* token_cmd = app.add_subcommand("token", "Manage API tokens")->require_subcommand(1);
  std::string token_user, token_name, expires_in, token_id;
  auto* token_create = token_cmd->add_subcommand("create", "Create an API token for a user and print it once");
  token_create->add_option("user", token_user, "User name")->required();
  token_create->add_option("--name", token_name, "A label for the token, e.g. laptop");
  token_create->add_option("--expires-in", expires_in, "Lifetime, e.g. 30d, 12h (default: never expires)");
  auto* token_list = token_cmd->add_subcommand("list", "List tokens (all, or one user's)");
  token_list->add_option("user", token_user, "User name");
  auto* token_revoke = token_cmd->add_subcommand("revoke", "Revoke a token by its id");
  token_revoke->add_option("token-id", token_id, "Token id (tok_...)")->required();

  CLI11_PARSE(app, argc, argv);

  try {
    if (!config_file.empty()) sources.toml_file = config_file;
    for (const auto& [key, opt] : flag_options) {
      if (opt->count() > 0) sources.flags[key] = flag_values[key];
    }
    const auto cfg = config::load(sources);
    setup_logging(cfg.debug);

    if (serve_cmd->parsed()) return serve(cfg);

    if (config_cmd->parsed()) {
      for (const auto& [k, v] : config::describe(cfg)) fmt::print("{} = {}\n", k, v);
      return 0;
    }
    if (migrate_cmd->parsed()) {
      auto metadata = db::open_metadata_store(cfg.database, 1);
      const int n = metadata->migrate();
      fmt::print("{} migration(s) applied\n", n);
      return 0;
    }
    auto metadata = open_for_cli(cfg);
    if (user_add->parsed()) {
      if (!upload::is_acceptable_file_name(user_name) || user_name.size() > 64) {
        throw std::runtime_error("user names are 1-64 printable characters");
      }
      const auto quota_bytes = parse_quota(quota);
      const auto user = metadata->create_user(user_name, admin);
      if (quota_bytes) metadata->set_user_quota(user_name, quota_bytes);
      fmt::print("created user {} (id {}){}{}\n", user.name, user.id, admin ? ", admin" : "",
                 quota_bytes ? ", quota " + util::format_size(static_cast<std::uint64_t>(*quota_bytes)) : "");
      return 0;
    }
    if (user_quota->parsed()) {
      const auto quota_bytes = parse_quota(quota);
      if (!metadata->set_user_quota(user_name, quota_bytes)) throw std::runtime_error("no user named " + user_name);
      fmt::print("user {}: quota {}\n", user_name,
                 quota_bytes ? util::format_size(static_cast<std::uint64_t>(*quota_bytes)) : "the default");
      return 0;
    }
    if (user_disable->parsed() || user_enable->parsed()) {
      const bool disable = user_disable->parsed();
      if (!metadata->set_user_disabled(user_name, disable)) throw std::runtime_error("no user named " + user_name);
      fmt::print("user {} {}\n", user_name, disable ? "disabled: their tokens no longer work" : "enabled");
      return 0;
    }
    if (user_list->parsed()) {
      fmt::print("{:<8} {:<24} {:<6} {:<9} {:<12} {:<12} {}\n", "ID", "NAME", "ADMIN", "DISABLED", "QUOTA", "USED",
                 "CREATED");
      for (const auto& u : metadata->list_users()) {
        fmt::print("{:<8} {:<24} {:<6} {:<9} {:<12} {:<12} {}\n", u.id, u.name, u.is_admin ? "yes" : "no",
                   u.disabled ? "yes" : "no",
                   u.quota_bytes ? util::format_size(static_cast<std::uint64_t>(*u.quota_bytes)) : "default",
                   util::format_size(static_cast<std::uint64_t>(u.used_bytes)), util::rfc3339(u.created_at));
      }
      return 0;
    }
    if (token_create->parsed()) {
      std::optional<std::chrono::milliseconds> ttl;
      if (!expires_in.empty()) {
        ttl = util::parse_duration(expires_in);
        if (!ttl || ttl->count() <= 0) throw std::runtime_error("--expires-in: expected a duration such as 30d or 12h");
      }
      const auto user = require_user(*metadata, token_user);
      const auto issued = auth::issue_token(*metadata, user, token_name, ttl);
      // The secret alone on stdout (scripts: TOKEN=$(s3uploader token create alice)); the rest on stderr.
      fmt::print(stderr, "token {} for {} (expires {}). It is shown only now; store it safely:\n", issued.record.id,
                 user.name, optional_time(issued.record.expires_at));
      fmt::print("{}\n", issued.secret);
      return 0;
    }
    if (token_list->parsed()) {
      std::optional<std::int64_t> uid;
      if (!token_user.empty()) uid = require_user(*metadata, token_user).id;
      fmt::print("{:<20} {:<16} {:<16} {:<24} {:<24} {}\n", "ID", "USER", "NAME", "CREATED", "EXPIRES", "REVOKED");
      for (const auto& t : metadata->list_tokens(uid)) {
        fmt::print("{:<20} {:<16} {:<16} {:<24} {:<24} {}\n", t.id, t.user_name, t.name.empty() ? "-" : t.name,
                   util::rfc3339(t.created_at), optional_time(t.expires_at), optional_time(t.revoked_at));
      }
      return 0;
    }
    if (token_revoke->parsed()) {
      if (!metadata->revoke_token(token_id, util::now_micros())) {
        throw std::runtime_error("no active token with id " + token_id);
      }
      fmt::print("revoked {}\n", token_id);
      return 0;
    }
  } catch (const config::ConfigError& e) {
    fmt::print(stderr, "configuration error: {}\n", e.what());
    return 2;
  } catch (const s3up::ApiError& e) {
    if (e.code() == s3up::errc::conflict) {
      fmt::print(stderr, "error: already exists\n");
    } else {
      fmt::print(stderr, "error: {}\n", e.what());
    }
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
