#pragma once
// Where S3 credentials come from, in the AWS SDK's order: the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then the
// shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
// ~/.aws/credentials; profile AWS_PROFILE, default "default").
// Secrets are never logged; describe() names only the source.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "storage/s3/sigv4.hpp"

namespace s3up::storage::s3 {

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Throws ApiError(storage_unavailable) when no credentials can be had.
  virtual boost::asio::awaitable<Credentials> get() = 0;
  virtual std::string describe() const = 0;  // "environment", "file ~/.aws/credentials [default]"
};

std::shared_ptr<CredentialsProvider> static_credentials(Credentials credentials, std::string description);

using GetEnv = std::function<const char*(const char*)>;

// The chain, resolved now for the sources that need no network. Throws
// std::runtime_error naming what was looked at if none has credentials.
std::shared_ptr<CredentialsProvider> default_credentials_chain(const GetEnv& getenv);

// One profile of an AWS shared credentials file (INI: [profile], key = value,
// '#' or ';' comments). nullopt if the profile is missing or lacks a key.
std::optional<Credentials> parse_credentials_file(std::string_view text, std::string_view profile);

}  // namespace s3up::storage::s3
