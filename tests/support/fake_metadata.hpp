#pragma once
// Fakes of the AWS metadata endpoints, on loopback (the real ones answer only
// inside AWS, and test traffic never leaves this host).
#include <atomic>
#include <string>

#include <fmt/format.h>

#include "fake_http_server.hpp"
#include "util/time.hpp"

namespace s3up::testing {

inline constexpr util::Micros kMinute = 60'000'000;

// The JSON both endpoints answer; no "Token" key when session_token is empty.
inline std::string credentials_json(const std::string& key, const std::string& secret, const std::string& session_token,
                                    util::Micros expires) {
  return fmt::format(R"({{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"{}","SecretAccessKey":"{}",{})"
                     R"("Expiration":"{}"}})",
                     key, secret, session_token.empty() ? "" : fmt::format(R"("Token":"{}",)", session_token),
                     util::rfc3339(expires));
}
inline std::string credentials_json(const std::string& key, util::Micros expires) {
  return credentials_json(key, "secret-" + key, "session-" + key, expires);
}

// EC2 IMDSv2 as EC2 answers it: a session token by PUT, then the role name,
// then the role's credentials; GETs without the session token are refused.
// By default each fetch hands out a new key "ASIA<n>"; with fixed_key set, it
// hands out that key and secret every time (and no session token), so a real
// S3 peer accepts them. `lifetime` says how long each is valid.
struct FakeImds {
  std::atomic<int> fetches{0};
  std::atomic<bool> broken{false};
  std::atomic<util::Micros> lifetime{60 * kMinute};
  std::string fixed_key, fixed_secret;
  FakeHttpServer server{[this](const FakeHttpServer::Request& r) -> FakeHttpServer::Reply {
    if (broken) return {500, ""};
    const std::string target(r.target());
    if (r.method() == boost::beast::http::verb::put && target == "/latest/api/token") {
      if (r["X-aws-ec2-metadata-token-ttl-seconds"].empty()) return {400, ""};
      return {200, "imds-session-token"};
    }
    if (r["X-aws-ec2-metadata-token"] != "imds-session-token") return {401, ""};
    if (target == "/latest/meta-data/iam/security-credentials/") return {200, "web-role\n"};
    if (target == "/latest/meta-data/iam/security-credentials/web-role") {
      const int n = ++fetches;
      const util::Micros expires = util::now_micros() + lifetime;
      if (!fixed_key.empty()) return {200, credentials_json(fixed_key, fixed_secret, "", expires)};
      return {200, credentials_json("ASIA" + std::to_string(n), expires)};
    }
    return {404, ""};
  }};
};

}  // namespace s3up::testing
