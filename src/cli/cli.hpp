#pragma once
// The command line: `serve` (the composition root of the running service),
// the administrative commands (users, tokens) and the client commands that
// talk to a running service (push, ls, get, rm).
#include <string>

#include <CLI/CLI.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "client/client.hpp"
#include "config/config.hpp"

namespace s3up::cli {

// Runs the HTTP service until SIGTERM/SIGINT; the process's exit status.
int serve(const config::Config& config);

// A `listen` setting (host:port, "*" or "" for every address, "localhost",
// [v6]) as an endpoint; throws config::ConfigError.
boost::asio::ip::tcp::endpoint parse_listen(const std::string& listen);

// `s3uploader check [URL]`: 0 if GET URL answers 2xx within 5 s, else 1
// (with the reason on stderr). Without a URL: /readyz of the listener that
// S3UP_LISTEN (and S3UP_TLS_CERT) describe, on loopback.
int check(const std::string& url, const std::string& ca_file);

// "0.1.0 (<git describe of the build's checkout>)".
std::string version();
// `s3uploader version` and --version: that, and the libraries' versions
// (two lines, the last without its newline).
std::string version_report();

// `user ...` and `token ...`, registered on `app`; run() runs the one parsed.
class AdminCommands {
 public:
  explicit AdminCommands(CLI::App& app);
  bool parsed() const;
  // Throws std::runtime_error (or db::Error) with a message for the user.
  int run(const config::Config& config);

 private:
  CLI::App* user_add_ = nullptr;
  CLI::App* user_quota_ = nullptr;
  CLI::App* user_list_ = nullptr;
  CLI::App* user_disable_ = nullptr;
  CLI::App* user_enable_ = nullptr;
  CLI::App* user_delete_ = nullptr;
  CLI::App* token_create_ = nullptr;
  CLI::App* token_list_ = nullptr;
  CLI::App* token_revoke_ = nullptr;
  CLI::App* webhook_list_ = nullptr;
  CLI::App* webhook_retry_ = nullptr;
  CLI::App* webhook_enable_ = nullptr;
  std::string user_name_, quota_, token_user_, token_name_, expires_in_, token_id_;
  std::string webhook_status_, event_id_, endpoint_url_;
  bool retry_dead_ = false;
  int webhook_limit_ = 50;
  int run_webhook(db::MetadataStore& metadata);
  bool admin_ = false;
  bool keep_files_ = false;
};

// `push`, `ls`, `get`, `rm`, registered on `app`. They need no service
// configuration: run() runs the one parsed against --server/S3UP_SERVER.
class ClientCommands {
 public:
  explicit ClientCommands(CLI::App& app);
  bool parsed() const;
  // The exit status; failures are printed one line each.
  int run();

 private:
  CLI::App* add(CLI::App& app, const std::string& name, const std::string& description);

  CLI::App *push_ = nullptr, *list_ = nullptr, *get_ = nullptr, *remove_ = nullptr;
  std::string server_, token_, ca_file_, chunk_size_, limit_rate_;
  client::PushOptions push_options_;
  client::GetOptions get_options_;
  std::vector<std::string> remove_ids_;
  unsigned retries_ = client::TransferOptions{}.retries;
};

}  // namespace s3up::cli
