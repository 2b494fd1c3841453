// A configuration file (TOML) as `serve --config` reads it: every setting's
// parser behind it (sizes, durations, URLs, lists, choices). Whatever the
// bytes, the answer is a configuration or a ConfigError naming the problem;
// a configuration written out (`s3uploader config`) reads back the same.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.hpp"

namespace {

s3up::config::Sources from_text(std::string text) {
  s3up::config::Sources sources;
  sources.toml_text = std::move(text);
  sources.getenv = [](const char*) -> const char* { return nullptr; };  // the file alone
  return sources;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using s3up::config::ConfigError;
  std::string written;
  try {
    written = s3up::config::as_toml(s3up::config::load(from_text(std::string(reinterpret_cast<const char*>(data), size))));
  } catch (const ConfigError&) {
    return 0;
  }
  try {
    if (s3up::config::as_toml(s3up::config::load(from_text(written))) != written) __builtin_trap();
  } catch (const ConfigError&) {
    // Secrets are written as REDACTED, which need not be a valid secret.
    if (written.find("REDACTED") == std::string::npos) __builtin_trap();
  }
  return 0;
}
