// The client commands' flags; the work is in client/.
#include <curl/curl.h>

#include <limits>

#include <fmt/format.h>

#include "cli/cli.hpp"
#include "util/units.hpp"

namespace s3up::cli {

namespace {

std::uint64_t parse_size_flag(const std::string& flag, const std::string& text) {
  const auto bytes = util::parse_size(text);
  if (!bytes) throw client::UsageError(fmt::format("{} takes a size such as 64MiB, not '{}'", flag, text));
  return *bytes;
}

}  // namespace

CLI::App* ClientCommands::add(CLI::App& app, const std::string& name, const std::string& description) {
  auto* cmd = app.add_subcommand(name, description);
  cmd->add_option("--server", server_,
                  "Service URL [env S3UP_SERVER, client.toml server, default http://127.0.0.1:8080]");
  cmd->add_option("--token", token_, "API token [env S3UP_TOKEN, client.toml token]");
  cmd->add_option("--ca-file", ca_file_,
                  "PEM bundle to verify an https:// server with [env S3UP_CA_FILE, client.toml ca_file]");
  cmd->add_option("--retries", retries_, "Retries after a failure that may pass (network, 5xx, 423, 429)")
      ->capture_default_str();
  return cmd;
}

ClientCommands::ClientCommands(CLI::App& app) {
  push_ = add(app, "push", "Upload files (tus, resumable: run it again after an interruption)");
  push_->add_option("files", push_options_.files, "Files to upload")->required();
  push_->add_option("-j,--jobs", push_options_.jobs, "Files uploaded at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  push_->add_option("--chunk-size", chunk_size_, "Bytes per request, each with its own checksum (default 64MiB)");
  push_
      ->add_option("--checksum", push_options_.checksum,
                   "Checksum per chunk: auto (the cheapest the server offers), crc32, sha256, sha1, md5, or none "
                   "(one request per file unless --chunk-size)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "crc32", "sha256", "sha1", "md5", "none"}));
  push_->add_option("--limit-rate", limit_rate_, "Most bytes per second per file, e.g. 10MiB (default: no limit)");

  list_ = add(app, "ls", "List your files, newest first");

  get_ = add(app, "get", "Download a file (resumed with Range after an interruption, checked by its SHA-256)");
  get_->add_option("id", get_options_.id, "File id")->required();
  get_->add_option("-o,--output", get_options_.output,
                   "Where to write it: a path, or - for stdout (default: its name, here)");
  get_->add_flag("--force", get_options_.force, "Replace the output file if it exists");

  remove_ = add(app, "rm", "Delete files");
  remove_->add_option("ids", remove_ids_, "File ids")->required();
}

bool ClientCommands::parsed() const {
  return push_->parsed() || list_->parsed() || get_->parsed() || remove_->parsed();
}

int ClientCommands::run() {
  try {
    client::EndpointFlags flags;
    for (auto [option, value, target] :
         {std::tuple{"--server", &server_, &flags.server}, std::tuple{"--token", &token_, &flags.token},
          std::tuple{"--ca-file", &ca_file_, &flags.ca_file}}) {
      for (const auto* cmd : {push_, list_, get_, remove_}) {
        if (cmd->parsed() && cmd->get_option(option)->count() > 0) *target = *value;
      }
    }
    const auto endpoint = client::resolve_endpoint(flags);
    client::TransferOptions transfer;
    transfer.retries = retries_;
    if (!limit_rate_.empty()) transfer.max_send_rate = parse_size_flag("--limit-rate", limit_rate_);

    // Before any thread starts: libcurl's global state is not thread-safe to set up.
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int status = 1;
    if (push_->parsed()) {
      push_options_.transfer = transfer;
      if (push_options_.checksum == "none" && chunk_size_.empty()) {
        push_options_.chunk_size = std::numeric_limits<std::uint64_t>::max();
      }
      if (!chunk_size_.empty()) {
        push_options_.chunk_size = parse_size_flag("--chunk-size", chunk_size_);
        if (push_options_.chunk_size < (64u << 10)) throw client::UsageError("--chunk-size must be at least 64KiB");
      }
      status = client::push(endpoint, push_options_);
    } else if (list_->parsed()) {
      status = client::list(endpoint, transfer);
    } else if (get_->parsed()) {
      get_options_.transfer = transfer;
      status = client::get(endpoint, get_options_);
    } else if (remove_->parsed()) {
      status = client::remove(endpoint, remove_ids_, transfer);
    }
    curl_global_cleanup();
    return status;
  } catch (const client::UsageError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
}

}  // namespace s3up::cli
