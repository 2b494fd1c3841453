#pragma once
// The command line: `serve` (the composition root of the running service)
// and the administrative commands (users, tokens).
#include <string>

#include <CLI/CLI.hpp>

#include "config/config.hpp"

namespace s3up::cli {

// Runs the HTTP service until SIGTERM/SIGINT; the process's exit status.
int serve(const config::Config& config);

// `user ...` and `token ...`, registered on `app`; run() runs the one parsed.
class AdminCommands {
 public:
  explicit AdminCommands(CLI::App& app);
  bool parsed() const;
  // Throws std::runtime_error (or ApiError) with a message for the user.
  int run(const config::Config& config);

 private:
  CLI::App* user_add_ = nullptr;
  CLI::App* user_quota_ = nullptr;
  CLI::App* user_list_ = nullptr;
  CLI::App* user_disable_ = nullptr;
  CLI::App* user_enable_ = nullptr;
  CLI::App* token_create_ = nullptr;
  CLI::App* token_list_ = nullptr;
  CLI::App* token_revoke_ = nullptr;
  std::string user_name_, quota_, token_user_, token_name_, expires_in_, token_id_;
  bool admin_ = false;
};

}  // namespace s3up::cli
