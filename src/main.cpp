// s3uploader: reads the command line and the configuration, then runs
// `serve` (cli/serve.cpp), an administrative command (cli/admin.cpp),
// `migrate` or `config`; or, without the service's configuration, a client
// command against a running service (cli/client.cpp).
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "cli/cli.hpp"
#include "config/config.hpp"
#include "db/metadata_store.hpp"
#include "util/logging.hpp"

using namespace s3up;

#if defined(S3UP_WITH_JEMALLOC)
// jemalloc (DESIGN.md §6) reads its settings from this symbol. A crowd of
// connections leaves freed memory between the small records that outlive
// it; jemalloc keeps those records apart from the large frames and hands
// the freed pages back from a background thread after two quiet seconds.
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:2000";
}
#endif

int main(int argc, char** argv) {
  CLI::App app{"s3uploader: authenticated, streaming file uploads into S3 or local disk"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", [] { return cli::version_report(); });
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
  auto* config_cmd = app.add_subcommand("config", "Print the effective configuration (as TOML that --config reads)");
  auto* version_cmd = app.add_subcommand("version", "Print the version and the libraries' versions");
  auto* check_cmd = app.add_subcommand("check", "Exit 0 if the URL answers 2xx (a health probe without curl)");
  std::string check_url, check_ca_file;
  check_cmd->add_option("url", check_url,
                        "What to GET (default: /readyz of this host's listener, from S3UP_LISTEN and S3UP_TLS_CERT)");
  check_cmd->add_option("--ca-file", check_ca_file, "CA certificate(s) to trust for an https URL")
      ->check(CLI::ExistingFile);
  // The settings are options of the program, given before or after the
  // command; the service's commands list them in their own help too.
  std::string settings_help = "\nSettings (each also from its environment variable or --config FILE):\n";
  for (const auto& s : config::settings()) {
    std::string flag(s.key);
    std::replace(flag.begin(), flag.end(), '_', '-');
    settings_help += fmt::format("  --{:<26} {} [env {}, default '{}']\n", flag, s.description, s.env, s.default_value);
  }
  for (auto* cmd : {serve_cmd, migrate_cmd, config_cmd}) cmd->footer(settings_help);
  cli::AdminCommands admin(app);
  cli::ClientCommands client(app);
  // An unknown command is named as such (CLI11 would only say that one is required).
  std::vector<std::string> names;
  for (const auto* cmd : app.get_subcommands([](CLI::App*) { return true; })) names.push_back(cmd->get_name());
  if (argc > 1 && argv[1][0] != '-' && std::find(names.begin(), names.end(), argv[1]) == names.end()) {
    fmt::print(stderr, "error: unknown command '{}'; the commands are {}\n", argv[1], fmt::join(names, ", "));
    return 2;
  }

  // A usage error exits 2, as the documentation says, whatever CLI11's own
  // code for it (105 to 109); --help and --version exit 0.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int shown = app.exit(e);
    return shown == 0 ? 0 : 2;
  }
  if (check_cmd->parsed()) return cli::check(check_url, check_ca_file);
  if (version_cmd->parsed()) {
    fmt::print("{}\n", cli::version_report());
    return 0;
  }
  if (client.parsed()) {
    // The service's settings mean nothing to a client: say so rather than ignore them.
    for (const auto& [key, opt] : flag_options) {
      if (opt->count() > 0) {
        fmt::print(stderr, "error: {} is a setting of the service, not of this client command\n", opt->get_name());
        return 2;
      }
    }
    if (!config_file.empty()) {
      fmt::print(stderr, "error: --config is the service's configuration file, not this client command's\n");
      return 2;
    }
    return client.run();
  }

  try {
    if (!config_file.empty()) sources.toml_file = config_file;
    for (const auto& [key, opt] : flag_options) {
      if (opt->count() > 0) sources.flags[key] = flag_values[key];
    }
    const auto cfg = config::load(sources);
    util::setup_logging(cfg.service.log_format == "json" ? util::LogFormat::json : util::LogFormat::text,
                        cfg.service.debug ? "debug" : cfg.service.log_level);

    if (serve_cmd->parsed()) return cli::serve(cfg);
    if (config_cmd->parsed()) {
      fmt::print("{}", config::as_toml(cfg));
      return 0;
    }
    if (migrate_cmd->parsed()) {
      auto metadata = db::open_metadata_store(cfg.database.url, 1);
      const int n = metadata->migrate();
      fmt::print("{} migration(s) applied\n", n);
      return 0;
    }
    if (admin.parsed()) {
      // An admin command works on the service's database; it does not make
      // one (a relative default path, run from another directory, would).
      if (const auto missing = db::missing_sqlite_file(cfg.database.url)) {
        fmt::print(stderr,
                   "error: no database at {} (the database setting, S3UP_DATABASE or --database, is {}); run the "
                   "command where the service runs, or point it at the service's database\n",
                   missing->string(), config::redact_database_url(cfg.database.url));
        return 1;
      }
      return admin.run(cfg);
    }
  } catch (const config::ConfigError& e) {
    fmt::print(stderr, "configuration error: {}\n", e.what());
    return 2;
  } catch (const s3up::db::Error& e) {
    if (e.failure() == s3up::db::Failure::conflict) {
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
