#pragma once
// Where S3 credentials come from, in the AWS SDK's order:
//   1. the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN);
//   2. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
//      ~/.aws/credentials; profile AWS_PROFILE, default "default");
//   3. the container endpoint (ECS task roles, EKS Pod Identity):
//      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI, with the
//      AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) header;
//   4. EC2 instance metadata, IMDSv2 only (session token first), at
//      AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254),
//      unless AWS_EC2_METADATA_DISABLED=true.
// 3 and 4 hand out temporary credentials; they are cached and fetched again
// five minutes before they expire (or when they have), and a failed refresh
// keeps using the old ones while they are still valid.
// Secrets are never logged; describe() names only the source.
#include <cstdint>
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
  // Throws storage::Error(unavailable) when no credentials can be had.
  virtual boost::asio::awaitable<Credentials> get() = 0;
  virtual std::string describe() const = 0;  // "environment", "file ~/.aws/credentials [default]"
};

std::shared_ptr<CredentialsProvider> static_credentials(Credentials credentials, std::string description);

using GetEnv = std::function<const char*(const char*)>;

// The chain, resolved now: the first source that is configured wins (the
// environment and the file are read now; the metadata endpoints are asked on
// the first get()). Throws std::runtime_error naming what was looked at if no
// source is configured and instance metadata is disabled.
std::shared_ptr<CredentialsProvider> default_credentials_chain(const GetEnv& getenv);

// The two metadata sources on their own (the chain builds them from the
// environment). `url` is plain http: these endpoints are link-local or loopback.
std::shared_ptr<CredentialsProvider> container_credentials(std::string url, std::string authorization,
                                                           std::string authorization_file);
std::shared_ptr<CredentialsProvider> instance_metadata_credentials(std::string endpoint);

// The JSON both metadata endpoints answer: {"AccessKeyId", "SecretAccessKey",
// "Token", "Expiration": RFC 3339}. nullopt if keys are missing or "Code" is
// not "Success".
struct ExpiringCredentials {
  Credentials credentials;
  std::optional<std::int64_t> expires_micros;  // none: never expire
};
std::optional<ExpiringCredentials> parse_metadata_credentials(std::string_view json);

// One profile of an AWS shared credentials file (INI: [profile], key = value,
// '#' or ';' comments). nullopt if the profile is missing or lacks a key.
std::optional<Credentials> parse_credentials_file(std::string_view text, std::string_view profile);

}  // namespace s3up::storage::s3
