// The administrative commands: users (add, quota, list, disable, enable, delete),
// API tokens (create, list, revoke) and webhook deliveries (list, retry,
// enable an endpoint), run against the configured database.
#include <cstdio>

#include <fmt/format.h>

#include "auth/authenticator.hpp"
#include "cli/cli.hpp"
#include "db/metadata_store.hpp"
#include "upload/policy.hpp"
#include "util/text.hpp"
#include "util/units.hpp"

namespace s3up::cli {

namespace {

// A quota given on the command line: a size ("10GiB"), or "none"/"" for the default.
std::optional<std::int64_t> parse_quota(const std::string& text) {
  if (text.empty() || text == "none" || text == "default") return std::nullopt;
  const auto bytes = util::parse_size(text);
  if (!bytes || *bytes > static_cast<std::uint64_t>(db::kNoQuota)) {
    throw std::runtime_error("invalid quota '" + text + "': expected a size such as 10GiB, or none");
  }
  return static_cast<std::int64_t>(*bytes);
}

std::unique_ptr<db::MetadataStore> open_for_cli(const config::Config& cfg) {
  auto metadata = db::open_metadata_store(cfg.database.url, 1);
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

AdminCommands::AdminCommands(CLI::App& app) {
  auto* user_cmd = app.add_subcommand("user", "Manage users")->require_subcommand(1);
  user_add_ = user_cmd->add_subcommand("add", "Create a user");
  user_add_->add_option("name", user_name_, "User name")->required();
  user_add_->add_flag("--admin", admin_, "May manage every user's files");
  user_add_->add_option("--quota", quota_, "Storage quota, e.g. 10GiB (default: the service's default_quota)");
  user_quota_ = user_cmd->add_subcommand("quota", "Set a user's storage quota (a size, or none for the default)");
  user_quota_->add_option("name", user_name_, "User name")->required();
  user_quota_->add_option("size", quota_, "e.g. 10GiB, or none")->required();
  user_list_ = user_cmd->add_subcommand("list", "List users");
  user_disable_ = user_cmd->add_subcommand("disable", "Disable a user: their tokens stop working at once");
  user_disable_->add_option("name", user_name_, "User name")->required();
  user_enable_ = user_cmd->add_subcommand("enable", "Enable a disabled user again");
  user_enable_->add_option("name", user_name_, "User name")->required();
  user_delete_ = user_cmd->add_subcommand(
      "delete", "Delete a user, their tokens and their files (the service's janitor removes the files)");
  user_delete_->add_option("name", user_name_, "User name")->required();
  user_delete_->add_flag("--keep-files", keep_files_, "Only if they have no files: refuse otherwise");

  auto* token_cmd = app.add_subcommand("token", "Manage API tokens")->require_subcommand(1);
  token_create_ = token_cmd->add_subcommand("create", "Create an API token for a user and print it once");
  token_create_->add_option("user", token_user_, "User name")->required();
  token_create_->add_option("--name", token_name_, "A label for the token, e.g. laptop");
  token_create_->add_option("--expires-in", expires_in_, "Lifetime, e.g. 30d, 12h (default: never expires)");
  token_list_ = token_cmd->add_subcommand("list", "List tokens (all, or one user's)");
  token_list_->add_option("user", token_user_, "User name");
  token_revoke_ = token_cmd->add_subcommand("revoke", "Revoke a token by its id");
  token_revoke_->add_option("token-id", token_id_, "Token id (tok_...)")->required();

  auto* webhook_cmd = app.add_subcommand("webhook", "Webhook deliveries: list, retry, enable an endpoint")
                          ->require_subcommand(1);
  webhook_list_ = webhook_cmd->add_subcommand("list", "List webhook deliveries, newest first");
  webhook_list_->add_option("--status", webhook_status_, "Only these: pending, delivered or dead")
      ->check(CLI::IsMember({"pending", "delivered", "dead"}));
  webhook_list_->add_option("--limit", webhook_limit_, "How many (default 50)")->check(CLI::Range(1, 100000));
  webhook_retry_ = webhook_cmd->add_subcommand("retry", "Send an event again now (ID), or every dead one (--dead)");
  auto* id = webhook_retry_->add_option("event-id", event_id_, "The event's webhook-id (msg_...)");
  auto* dead = webhook_retry_->add_flag("--dead", retry_dead_, "Every dead delivery");
  id->excludes(dead);
  webhook_retry_->require_option(1);
  webhook_enable_ = webhook_cmd->add_subcommand("enable", "Send to an endpoint a 410 Gone disabled again");
  webhook_enable_->add_option("url", endpoint_url_, "The endpoint's URL, as in webhook_urls")->required();
}

bool AdminCommands::parsed() const {
  for (const auto* cmd :
       {user_add_, user_quota_, user_list_, user_disable_, user_enable_, user_delete_, token_create_, token_list_,
        token_revoke_, webhook_list_, webhook_retry_, webhook_enable_}) {
    if (cmd->parsed()) return true;
  }
  return false;
}

int AdminCommands::run_webhook(db::MetadataStore& metadata) {
  if (webhook_list_->parsed()) {
    const auto status = db::delivery_status_from(webhook_status_);
    fmt::print("{:<8} {:<18} {:<10} {:<8} {:<24} {:<24} {}\n", "SEQ", "EVENT", "STATUS", "ATTEMPTS", "CREATED",
               "NEXT ATTEMPT", "ENDPOINT / EVENT ID / LAST ERROR");
    std::optional<std::int64_t> before;
    int left = webhook_limit_;
    while (left > 0) {
      const auto page = metadata.list_deliveries(status, before, std::min(left, 1000));
      for (const auto& d : page) {
        const bool done = d.status == db::DeliveryStatus::delivered;
        fmt::print("{:<8} {:<18} {:<10} {:<8} {:<24} {:<24} {}\n         {}{}\n", d.seq, d.event_type,
                   db::to_string(d.status), d.attempts, util::rfc3339(d.created_at),
                   done ? "-" : util::rfc3339(d.next_attempt_at), util::redact_url_userinfo(d.endpoint), d.event_id,
                   d.last_error.empty() ? "" : "  (" + d.last_error + ")");
      }
      left -= static_cast<int>(page.size());
      if (page.size() < 1000) break;
      before = page.back().seq;
    }
    for (const auto& e : metadata.disabled_endpoints()) {
      fmt::print("disabled since {} ({}): {}; `webhook enable URL` sends to it again\n", util::rfc3339(e.disabled_at),
                 e.reason, util::redact_url_userinfo(e.url));
    }
    return 0;
  }
  if (webhook_retry_->parsed()) {
    const auto n = metadata.retry_deliveries(retry_dead_ ? std::nullopt : std::optional(event_id_), util::now_micros());
    if (!retry_dead_ && n == 0) throw std::runtime_error("no undelivered event with id " + event_id_);
    fmt::print("{} deliver{} due again now: a running service sends {} within a second\n", n, n == 1 ? "y is" : "ies are",
               n == 1 ? "it" : "them");
    return 0;
  }
  if (webhook_enable_->parsed()) {
    if (!metadata.enable_endpoint(endpoint_url_)) {
      throw std::runtime_error("that endpoint is not disabled (webhook list names the disabled ones)");
    }
    fmt::print("enabled {}: its waiting events go out again\n", util::redact_url_userinfo(endpoint_url_));
    return 0;
  }
  return 0;
}

int AdminCommands::run(const config::Config& cfg) {
  auto metadata = open_for_cli(cfg);
  if (webhook_list_->parsed() || webhook_retry_->parsed() || webhook_enable_->parsed()) return run_webhook(*metadata);
  if (user_add_->parsed()) {
    if (!auth::is_valid_user_name(user_name_)) {
      throw std::runtime_error("user names are 1-255 bytes of text without control characters");
    }
    const auto quota_bytes = parse_quota(quota_);
    const auto user = metadata->create_user(user_name_, admin_);
    if (quota_bytes) metadata->set_user_quota(user_name_, quota_bytes);
    fmt::print("created user {} (id {}){}{}\n", user.name, user.id, admin_ ? ", admin" : "",
               quota_bytes ? ", quota " + util::format_size(static_cast<std::uint64_t>(*quota_bytes)) : "");
    return 0;
  }
  if (user_quota_->parsed()) {
    const auto quota_bytes = parse_quota(quota_);
    if (!metadata->set_user_quota(user_name_, quota_bytes)) throw std::runtime_error("no user named " + user_name_);
    fmt::print("user {}: quota {}\n", user_name_,
               quota_bytes ? util::format_size(static_cast<std::uint64_t>(*quota_bytes)) : "the default");
    return 0;
  }
  if (user_disable_->parsed() || user_enable_->parsed()) {
    const bool disable = user_disable_->parsed();
    if (!metadata->set_user_disabled(user_name_, disable)) throw std::runtime_error("no user named " + user_name_);
    fmt::print("user {} {}\n", user_name_, disable ? "disabled: their tokens no longer work" : "enabled");
    return 0;
  }
  if (user_list_->parsed()) {
    fmt::print("{:<8} {:<24} {:<6} {:<9} {:<12} {:<12} {}\n", "ID", "NAME", "ADMIN", "DISABLED", "QUOTA", "USED",
               "CREATED");
    std::string after;
    for (;;) {
      const auto page = metadata->list_users(after, 1000);
      for (const auto& u : page) {
        fmt::print("{:<8} {:<24} {:<6} {:<9} {:<12} {:<12} {}\n", u.id, u.name, u.is_admin ? "yes" : "no",
                   u.deleting ? "deleting" : u.disabled ? "yes" : "no",
                   u.quota_bytes ? util::format_size(static_cast<std::uint64_t>(*u.quota_bytes)) : "default",
                   util::format_size(static_cast<std::uint64_t>(u.used_bytes)), util::rfc3339(u.created_at));
      }
      if (page.size() < 1000) break;
      after = page.back().name;
    }
    return 0;
  }
  if (user_delete_->parsed()) {
    const auto user = require_user(*metadata, user_name_);
    if (keep_files_) {
      if (!metadata->remove_user_if_empty(user.id)) {
        throw std::runtime_error("user " + user_name_ + " still has files; without --keep-files they are deleted too");
      }
      fmt::print("deleted user {}\n", user_name_);
      return 0;
    }
    const auto started = metadata->begin_user_deletion(user_name_, util::now_micros());
    if (!started) throw std::runtime_error("no such user: " + user_name_);
    if (metadata->remove_user_if_empty(started->user_id)) {
      fmt::print("deleted user {}\n", user_name_);
      return 0;
    }
    fmt::print(
        "user {} is disabled and being deleted: the service's janitor deletes their {} file(s), then the user "
        "(within janitor_interval)\n",
        user_name_, started->files);
    return 0;
  }
  if (token_create_->parsed()) {
    std::optional<std::chrono::milliseconds> ttl;
    if (!expires_in_.empty()) {
      ttl = util::parse_duration(expires_in_);
      if (!ttl || ttl->count() <= 0) throw std::runtime_error("--expires-in: expected a duration such as 30d or 12h");
    }
    const auto user = require_user(*metadata, token_user_);
    const auto issued = auth::issue_token(*metadata, user, token_name_, ttl);
    // The secret alone on stdout (scripts: TOKEN=$(s3uploader token create alice)); the rest on stderr.
    fmt::print(stderr, "token {} for {} (expires {}). It is shown only now; store it safely:\n", issued.record.id,
               user.name, optional_time(issued.record.expires_at));
    fmt::print("{}\n", issued.secret);
    return 0;
  }
  if (token_list_->parsed()) {
    std::optional<std::int64_t> uid;
    if (!token_user_.empty()) uid = require_user(*metadata, token_user_).id;
    fmt::print("{:<20} {:<16} {:<16} {:<24} {:<24} {}\n", "ID", "USER", "NAME", "CREATED", "EXPIRES", "REVOKED");
    for (const auto& t : metadata->list_tokens(uid)) {
      fmt::print("{:<20} {:<16} {:<16} {:<24} {:<24} {}\n", t.id, t.user_name, t.name.empty() ? "-" : t.name,
                 util::rfc3339(t.created_at), optional_time(t.expires_at), optional_time(t.revoked_at));
    }
    return 0;
  }
  if (token_revoke_->parsed()) {
    if (!metadata->revoke_token(token_id_, util::now_micros())) {
      throw std::runtime_error("no active token with id " + token_id_);
    }
    fmt::print("revoked {}\n", token_id_);
    return 0;
  }
  return 0;
}

}  // namespace s3up::cli
