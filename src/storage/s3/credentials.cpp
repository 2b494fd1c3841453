#include "storage/s3/credentials.hpp"
#include "util/text.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace s3up::storage::s3 {
namespace {

class StaticProvider final : public CredentialsProvider {
 public:
  StaticProvider(Credentials c, std::string d) : credentials_(std::move(c)), description_(std::move(d)) {}
  boost::asio::awaitable<Credentials> get() override { co_return credentials_; }
  std::string describe() const override { return description_; }

 private:
  Credentials credentials_;
  std::string description_;
};

using util::trim;

}  // namespace

std::shared_ptr<CredentialsProvider> static_credentials(Credentials credentials, std::string description) {
  return std::make_shared<StaticProvider>(std::move(credentials), std::move(description));
}

std::optional<Credentials> parse_credentials_file(std::string_view text, std::string_view profile) {
  Credentials c;
  bool in_profile = false, found = false;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      const auto close = line.find(']');
      if (close == std::string_view::npos) continue;
      std::string_view name = trim(line.substr(1, close - 1));
      if (name.starts_with("profile ")) name = trim(name.substr(8));  // the config file's spelling
      in_profile = name == profile;
      found |= in_profile;
      continue;
    }
    if (!in_profile) continue;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = trim(line.substr(0, eq));
    const std::string value(trim(line.substr(eq + 1)));
    if (key == "aws_access_key_id") c.access_key_id = value;
    else if (key == "aws_secret_access_key") c.secret_access_key = value;
    else if (key == "aws_session_token") c.session_token = value;
  }
  if (!found || c.access_key_id.empty() || c.secret_access_key.empty()) return std::nullopt;
  return c;
}

std::shared_ptr<CredentialsProvider> default_credentials_chain(const GetEnv& getenv) {
  const auto env = [&](const char* name) -> std::string {
    const char* v = getenv(name);
    return v ? v : "";
  };
  if (!env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty()) {
    return static_credentials({env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")},
                              "environment (AWS_ACCESS_KEY_ID)");
  }
  std::string file = env("AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty() && !env("HOME").empty()) file = env("HOME") + "/.aws/credentials";
  const std::string profile = env("AWS_PROFILE").empty() ? "default" : env("AWS_PROFILE");
  if (!file.empty()) {
    std::ifstream in(file);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      if (auto c = parse_credentials_file(ss.str(), profile)) {
        return static_credentials(std::move(*c), "file " + file + " [" + profile + "]");
      }
    }
  }
  throw std::runtime_error("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile '" +
                           profile + "' in " + (file.empty() ? std::string("~/.aws/credentials") : file));
}

}  // namespace s3up::storage::s3
