// Where the client's server, token and CA bundle come from: flags, then the
// environment, then ~/.config/s3uploader/client.toml.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "client/client.hpp"

namespace s3up::client {

namespace {

constexpr const char* kDefaultServer = "http://127.0.0.1:8080";

std::filesystem::path home_dir() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') throw UsageError("HOME is not set: cannot find the client's files");
  return home;
}

// $XDG_<NAME>_HOME when set to an absolute path (as the XDG spec asks), else ~/<fallback>.
std::filesystem::path xdg_dir(const char* variable, const char* fallback) {
  const char* value = std::getenv(variable);
  if (value != nullptr && *value == '/') return std::filesystem::path(value) / "s3uploader";
  return home_dir() / fallback / "s3uploader";
}

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

struct FileSettings {
  std::optional<std::string> server, token, ca_file;
};

FileSettings read_config_file(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  if ((st.st_mode & 077) != 0) {
    throw UsageError(fmt::format("{} holds a token but can be read by others (mode {:04o}); run: chmod 600 {}",
                                 path.string(), st.st_mode & 07777, path.string()));
  }
  toml::table table;
  try {
    table = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    throw UsageError(fmt::format("{}: {} (line {})", path.string(), e.description(), e.source().begin.line));
  }
  FileSettings settings;
  for (const auto& [key, node] : table) {
    const auto value = node.value<std::string>();
    if (!value) throw UsageError(fmt::format("{}: {} must be a string", path.string(), key.str()));
    if (key == "server") {
      settings.server = *value;
    } else if (key == "token") {
      settings.token = *value;
    } else if (key == "ca_file") {
      settings.ca_file = *value;
    } else {
      throw UsageError(fmt::format("{}: unknown key {} (expected server, token, ca_file)", path.string(), key.str()));
    }
  }
  return settings;
}

}  // namespace

std::filesystem::path config_file_path() { return xdg_dir("XDG_CONFIG_HOME", ".config") / "client.toml"; }

std::filesystem::path cache_dir() { return xdg_dir("XDG_CACHE_HOME", ".cache"); }

Endpoint resolve_endpoint(const EndpointFlags& flags) {
  const auto path = config_file_path();
  const auto file = read_config_file(path);
  const auto pick = [](const std::optional<std::string>& flag, const char* env,
                       const std::optional<std::string>& from_file) -> std::optional<std::string> {
    if (flag) return flag;
    if (auto value = environment(env)) return value;
    return from_file;
  };
  Endpoint endpoint;
  endpoint.server = pick(flags.server, "S3UP_SERVER", file.server).value_or(kDefaultServer);
  while (endpoint.server.ends_with('/')) endpoint.server.pop_back();
  if (!endpoint.server.starts_with("http://") && !endpoint.server.starts_with("https://")) {
    throw UsageError("the server must be an http:// or https:// URL, not '" + endpoint.server + "'");
  }
  const auto token = pick(flags.token, "S3UP_TOKEN", file.token);
  if (!token || token->empty()) {
    throw UsageError("no API token: pass --token, set S3UP_TOKEN, or put token = \"...\" in " + path.string());
  }
  if (std::any_of(token->begin(), token->end(), [](unsigned char c) { return c <= 0x20 || c >= 0x7f; })) {
    throw UsageError("the API token has spaces or control characters in it; copy it again");
  }
  endpoint.token = *token;
  endpoint.ca_file = pick(flags.ca_file, "S3UP_CA_FILE", file.ca_file).value_or("");
  return endpoint;
}

}  // namespace s3up::client
