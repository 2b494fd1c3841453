// Temporary credentials from the AWS metadata endpoints (ECS/EKS container
// endpoint, EC2 IMDSv2), against a fake endpoint on loopback: the real ones
// exist only inside AWS, and tests never send traffic off this host.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "../support/fake_metadata.hpp"
#include "api/api.hpp"
#include "storage/s3/credentials.hpp"
#include "util/time.hpp"

namespace s3up::storage::s3 {
namespace {

namespace asio = boost::asio;
using testing::credentials_json;
using testing::FakeHttpServer;
using testing::FakeImds;
using testing::kMinute;

Credentials get_now(CredentialsProvider& provider) {
  asio::io_context io;
  auto fut = asio::co_spawn(io, provider.get(), asio::use_future);
  io.run();
  return fut.get();
}

TEST(MetadataCredentials, ParsesTheEndpointsJson) {
  auto c = parse_metadata_credentials(
      R"({"Code":"Success","AccessKeyId":"ASIAX","SecretAccessKey":"s","Token":"t","Expiration":"2026-11-28T08:00:00Z"})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->credentials.access_key_id, "ASIAX");
  EXPECT_EQ(c->credentials.secret_access_key, "s");
  EXPECT_EQ(c->credentials.session_token, "t");
  EXPECT_EQ(c->expires_micros, util::parse_rfc3339("2026-11-28T08:00:00Z"));
  // The container endpoint sends no Code; without an Expiration they never expire.
  auto forever = parse_metadata_credentials(R"({"AccessKeyId":"A","SecretAccessKey":"s"})");
  ASSERT_TRUE(forever);
  EXPECT_FALSE(forever->expires_micros);
  EXPECT_FALSE(
      parse_metadata_credentials(R"({"Code":"AssumeRoleUnauthorizedAccess","AccessKeyId":"A","SecretAccessKey":"s"})"));
  EXPECT_FALSE(parse_metadata_credentials(R"({"AccessKeyId":"A"})"));
  EXPECT_FALSE(parse_metadata_credentials(R"({"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"tomorrow"})"));
  EXPECT_FALSE(parse_metadata_credentials("not json"));
}

TEST(MetadataCredentials, ImdsV2TokenRoleCredentialsThenCached) {
  FakeImds imds;
  auto provider = instance_metadata_credentials(imds.server.url());
  const auto first = get_now(*provider);
  EXPECT_EQ(first.access_key_id, "ASIA1");
  EXPECT_EQ(first.secret_access_key, "secret-ASIA1");
  EXPECT_EQ(first.session_token, "session-ASIA1");
  const auto second = get_now(*provider);
  EXPECT_EQ(second.access_key_id, "ASIA1") << "valid for an hour: no second fetch";
  EXPECT_EQ(imds.fetches, 1);
  const auto requests = imds.server.requests();
  ASSERT_EQ(requests.size(), 3u);  // token, role, credentials
  EXPECT_EQ(requests[0].method(), boost::beast::http::verb::put);
  EXPECT_EQ(provider->describe().find("secret"), std::string::npos);
}

TEST(MetadataCredentials, RefreshedBeforeTheyExpire) {
  FakeImds imds;
  imds.lifetime = 4 * kMinute;  // inside the five-minute refresh window
  auto provider = instance_metadata_credentials(imds.server.url());
  EXPECT_EQ(get_now(*provider).access_key_id, "ASIA1");
  EXPECT_EQ(get_now(*provider).access_key_id, "ASIA2");
  imds.lifetime = 60 * kMinute;
  EXPECT_EQ(get_now(*provider).access_key_id, "ASIA3");
  EXPECT_EQ(get_now(*provider).access_key_id, "ASIA3");
  EXPECT_EQ(imds.fetches, 3);
}

TEST(MetadataCredentials, FailedRefreshKeepsValidOnesAndExpiredOnesAreNotUsed) {
  FakeImds imds;
  imds.lifetime = 4 * kMinute;
  auto provider = instance_metadata_credentials(imds.server.url());
  EXPECT_EQ(get_now(*provider).access_key_id, "ASIA1");
  imds.broken = true;
  EXPECT_EQ(get_now(*provider).access_key_id, "ASIA1") << "still valid for minutes";

  FakeImds expired;
  expired.lifetime = -kMinute;
  auto stale = instance_metadata_credentials(expired.server.url());
  get_now(*stale);  // handed out expired: used once, fetched again next time
  expired.broken = true;
  try {
    get_now(*stale);
    FAIL() << "expired credentials were used";
  } catch (const storage::Error& failure) {
    const auto e = api::api_error(failure);  // what a client would see
    EXPECT_EQ(e.code(), errc::storage_unavailable);
  }
}

TEST(MetadataCredentials, ContainerEndpointSendsTheAuthorizationTokenFromItsFile) {
  std::atomic<int> calls{0};
  FakeHttpServer ecs([&](const FakeHttpServer::Request& r) -> FakeHttpServer::Reply {
    ++calls;
    if (r.target() != "/v2/credentials/abc?x=1") return {404, ""};
    if (r[boost::beast::http::field::authorization] != "token-" + std::to_string(calls.load())) return {401, ""};
    return {200, credentials_json("ASIAECS" + std::to_string(calls.load()), util::now_micros() + 4 * kMinute)};
  });
  const std::string token_file = ::testing::TempDir() + "/ecs-token";
  const auto write_token = [&](const std::string& t) { std::ofstream(token_file) << t << "\n"; };
  write_token("token-1");
  const std::string url = ecs.url() + "/v2/credentials/abc?x=1";
  auto chain = default_credentials_chain([&](const char* n) -> const char* {
    const std::string_view name(n);
    if (name == "AWS_SHARED_CREDENTIALS_FILE") return "/nonexistent";
    if (name == "AWS_CONTAINER_CREDENTIALS_FULL_URI") return url.c_str();
    if (name == "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") return token_file.c_str();
    return nullptr;
  });
  EXPECT_NE(chain->describe().find("container"), std::string::npos);
  EXPECT_EQ(get_now(*chain).access_key_id, "ASIAECS1");
  write_token("token-2");  // the platform rotates it; the next fetch reads it again
  EXPECT_EQ(get_now(*chain).access_key_id, "ASIAECS2");
}

TEST(MetadataCredentials, ChainOrderAndWhereTheTokenMayGo) {
  const auto chain_with = [](std::vector<std::pair<std::string, std::string>> vars) {
    vars.emplace_back("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    return default_credentials_chain([vars](const char* n) -> const char* {
      for (const auto& [k, v] : vars) {
        if (k == n) return v.c_str();
      }
      return nullptr;
    });
  };
  // The environment beats the container endpoint; the container beats IMDS.
  EXPECT_NE(chain_with({{"AWS_ACCESS_KEY_ID", "A"},
                        {"AWS_SECRET_ACCESS_KEY", "s"},
                        {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x"}})
                ->describe()
                .find("environment"),
            std::string::npos);
  EXPECT_NE(chain_with({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x"}})->describe().find("169.254.170.2"),
            std::string::npos);
  EXPECT_NE(chain_with({})->describe().find("instance metadata http://169.254.169.254"), std::string::npos);
  EXPECT_NE(chain_with({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"}})->describe().find("127.0.0.1:9"),
            std::string::npos);
  EXPECT_THROW(chain_with({{"AWS_EC2_METADATA_DISABLED", "true"}}), std::runtime_error);
  EXPECT_THROW(chain_with({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.com/creds"}}), std::runtime_error);
  EXPECT_THROW(chain_with({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://127.0.0.1/creds"}}), std::runtime_error);
}

TEST(MetadataCredentials, UnreachableEndpointIsStorageUnavailable) {
  // A port nothing listens on (bound, then closed): refused at once.
  std::string url;
  {
    FakeHttpServer gone([](const FakeHttpServer::Request&) { return FakeHttpServer::Reply{}; });
    url = gone.url();
  }
  auto provider = instance_metadata_credentials(url);
  try {
    get_now(*provider);
    FAIL() << "no credentials from nowhere";
  } catch (const storage::Error& failure) {
    const auto e = api::api_error(failure);  // what a client would see
    EXPECT_EQ(e.code(), errc::storage_unavailable);
  }
}

}  // namespace
}  // namespace s3up::storage::s3
