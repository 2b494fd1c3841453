#include "storage/s3/credentials.hpp"

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>

#include "storage/object_store.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

namespace s3up::storage::s3 {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// The SDKs give metadata endpoints about a second: they are on the same host
// or link-local, and off AWS they do not answer at all.
constexpr auto kMetadataTimeout = 2s;
// Fetch new temporary credentials this long before the old ones expire.
constexpr util::Micros kRefreshBefore = 5 * 60 * 1'000'000LL;
constexpr std::string_view kImdsTokenTtl = "21600";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A plain-http endpoint, split once.
struct HttpEndpoint {
  std::string host, port, target;  // target: the path and query of the URL
  std::string host_header;
};

HttpEndpoint parse_http_url(const std::string& url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed || parsed->scheme() != "http" || parsed->host().empty()) {
    throw std::runtime_error("credential endpoint must be an http:// URL: " + url);
  }
  HttpEndpoint e;
  e.host = parsed->host_type() == boost::urls::host_type::ipv6 ? std::string(parsed->encoded_host_address())
                                                               : std::string(parsed->host());
  e.port = parsed->has_port() ? std::string(parsed->port()) : "80";
  e.target = std::string(parsed->encoded_path());
  if (e.target.empty()) e.target = "/";
  if (parsed->has_query()) e.target += "?" + std::string(parsed->encoded_query());
  e.host_header = std::string(parsed->encoded_host_and_port());
  return e;
}

struct MetadataResponse {
  unsigned status = 0;
  std::string body;
};

// One request on a fresh connection: these are made once per credential
// lifetime (hours), so no pool.
asio::awaitable<MetadataResponse> metadata_request(http::verb method, const HttpEndpoint& endpoint,
                                                   const std::string& target,
                                                   const std::vector<std::pair<std::string, std::string>>& headers) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(endpoint.host, endpoint.port, use_tuple);
  if (rec) throw std::runtime_error("resolving " + endpoint.host + ": " + rec.message());
  beast::tcp_stream stream(executor);
  stream.expires_after(kMetadataTimeout);
  auto [cec, connected] = co_await stream.async_connect(endpoints, use_tuple);
  if (cec) throw std::runtime_error("connecting to " + endpoint.host_header + ": " + cec.message());
  http::request<http::empty_body> req{method, target, 11};
  req.set(http::field::host, endpoint.host_header);
  req.set(http::field::user_agent, "s3uploader");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.prepare_payload();
  if (method == http::verb::put) req.set(http::field::content_length, "0");
  auto [wec, wn] = co_await http::async_write(stream, req, use_tuple);
  if (wec) throw std::runtime_error("writing to " + endpoint.host_header + ": " + wec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
  if (ec) throw std::runtime_error("reading from " + endpoint.host_header + ": " + ec.message());
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return MetadataResponse{parser.get().result_int(), std::move(parser.get().body())};
}

// Temporary credentials from an endpoint: cached, fetched again before they
// expire. One caller refreshes while the others keep using the old ones.
class RefreshingProvider : public CredentialsProvider {
 public:
  asio::awaitable<Credentials> get() override {
    const util::Micros now = util::now_micros();
    bool have_valid = false;
    Credentials current;
    {
      std::lock_guard lock(mutex_);
      if (cached_) {
        const auto expires = cached_->expires_micros;
        have_valid = !expires || now < *expires;
        current = cached_->credentials;
        const bool fresh = !expires || now < *expires - kRefreshBefore;
        if (fresh || (have_valid && refreshing_)) co_return current;
      }
      refreshing_ = true;
    }
    std::optional<ExpiringCredentials> fetched;
    std::string problem;
    try {
      fetched = co_await fetch();
    } catch (const std::exception& e) {
      problem = e.what();
    }
    std::lock_guard lock(mutex_);
    refreshing_ = false;
    if (fetched) {
      if (fetched->expires_micros && *fetched->expires_micros <= now) {
        spdlog::warn("s3 credentials from {} are already expired", describe());
      }
      cached_ = fetched;
      co_return fetched->credentials;
    }
    if (have_valid) {
      spdlog::warn("s3 credentials: refreshing from {} failed ({}); using the current ones until they expire",
                   describe(), problem);
      co_return current;
    }
    spdlog::error("s3 credentials: none from {}: {}", describe(), problem);
    throw Error(Failure::unavailable, "the object store's credentials are unavailable");
  }

 protected:
  // Throws with a reason when the endpoint does not hand out credentials.
  virtual asio::awaitable<ExpiringCredentials> fetch() = 0;

 private:
  std::mutex mutex_;
  std::optional<ExpiringCredentials> cached_;
  bool refreshing_ = false;
};

ExpiringCredentials parse_or_throw(const MetadataResponse& r, const std::string& what) {
  if (r.status != 200) throw std::runtime_error(what + " answered HTTP " + std::to_string(r.status));
  auto parsed = parse_metadata_credentials(r.body);
  if (!parsed) throw std::runtime_error(what + " answered without usable credentials");
  return std::move(*parsed);
}

// ECS task roles and EKS Pod Identity: one GET, with an Authorization header
// when the platform gives a token (read from the file each time: it rotates).
class ContainerProvider final : public RefreshingProvider {
 public:
  ContainerProvider(std::string url, std::string authorization, std::string authorization_file)
      : endpoint_(parse_http_url(url)),
        authorization_(std::move(authorization)),
        authorization_file_(std::move(authorization_file)) {}
  std::string describe() const override { return "container endpoint http://" + endpoint_.host_header; }

 protected:
  asio::awaitable<ExpiringCredentials> fetch() override {
    std::vector<std::pair<std::string, std::string>> headers;
    std::string token = authorization_;
    if (!authorization_file_.empty()) token = std::string(util::trim(read_file(authorization_file_)));
    if (!token.empty()) headers.emplace_back("Authorization", token);
    const auto r = co_await metadata_request(http::verb::get, endpoint_, endpoint_.target, headers);
    co_return parse_or_throw(r, "the container endpoint");
  }

 private:
  HttpEndpoint endpoint_;
  std::string authorization_;
  std::string authorization_file_;
};

// EC2 IMDSv2: a session token by PUT, then the role name, then its credentials.
class InstanceMetadataProvider final : public RefreshingProvider {
 public:
  explicit InstanceMetadataProvider(std::string endpoint) : endpoint_(parse_http_url(endpoint)) {}
  std::string describe() const override { return "EC2 instance metadata http://" + endpoint_.host_header; }

 protected:
  asio::awaitable<ExpiringCredentials> fetch() override {
    const std::vector<std::pair<std::string, std::string>> token_headers{
        {"X-aws-ec2-metadata-token-ttl-seconds", std::string(kImdsTokenTtl)}};
    const std::string token_path = "/latest/api/token";
    const auto token = co_await metadata_request(http::verb::put, endpoint_, token_path, token_headers);
    if (token.status != 200 || token.body.empty()) {
      throw std::runtime_error("IMDSv2 token request answered HTTP " + std::to_string(token.status));
    }
    const std::vector<std::pair<std::string, std::string>> headers{{"X-aws-ec2-metadata-token", token.body}};
    const std::string roles_path = "/latest/meta-data/iam/security-credentials/";
    const auto roles = co_await metadata_request(http::verb::get, endpoint_, roles_path, headers);
    if (roles.status != 200) {
      throw std::runtime_error("no IAM role on this instance (HTTP " + std::to_string(roles.status) + ")");
    }
    const std::string role(util::trim(std::string_view(roles.body).substr(0, roles.body.find('\n'))));
    if (role.empty()) throw std::runtime_error("no IAM role on this instance");
    const std::string role_path = roles_path + role;
    const auto r = co_await metadata_request(http::verb::get, endpoint_, role_path, headers);
    co_return parse_or_throw(r, "instance metadata for role " + role);
  }

 private:
  HttpEndpoint endpoint_;
};

class StaticProvider final : public CredentialsProvider {
 public:
  StaticProvider(Credentials c, std::string d) : credentials_(std::move(c)), description_(std::move(d)) {}
  boost::asio::awaitable<Credentials> get() override { co_return credentials_; }
  std::string describe() const override { return description_; }

 private:
  Credentials credentials_;
  std::string description_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> static_credentials(Credentials credentials, std::string description) {
  return std::make_shared<StaticProvider>(std::move(credentials), std::move(description));
}

std::shared_ptr<CredentialsProvider> container_credentials(std::string url, std::string authorization,
                                                           std::string authorization_file) {
  return std::make_shared<ContainerProvider>(std::move(url), std::move(authorization), std::move(authorization_file));
}

std::shared_ptr<CredentialsProvider> instance_metadata_credentials(std::string endpoint) {
  return std::make_shared<InstanceMetadataProvider>(std::move(endpoint));
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
    if (auto c = parse_credentials_file(read_file(file), profile)) {
      return static_credentials(std::move(*c), "file " + file + " [" + profile + "]");
    }
  }
  // ECS: the relative URI is on the task metadata address; EKS Pod Identity
  // and local tools give a full URI.
  const std::string relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const std::string full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!relative.empty() || !full.empty()) {
    const std::string url = relative.empty() ? full : "http://169.254.170.2" + relative;
    // As the SDKs do: the authorization token goes only to the platform's
    // addresses or this host, never to an arbitrary server.
    const std::string host = parse_http_url(url).host;
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    const bool allowed = host == "localhost" || (!ec && address.is_loopback()) || host == "169.254.170.2" ||
                         host == "169.254.170.23" || host == "fd00:ec2::23";
    if (!allowed)
      throw std::runtime_error(
          "AWS_CONTAINER_CREDENTIALS_FULL_URI must point at loopback or the container "
          "credential address, not " +
          host);
    return container_credentials(url, env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
                                 env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
  }
  if (util::ascii_lower(env("AWS_EC2_METADATA_DISABLED")) != "true") {
    const std::string imds = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    return instance_metadata_credentials(imds.empty() ? "http://169.254.169.254" : imds);
  }
  throw std::runtime_error("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile '" +
                           profile + "' in " + (file.empty() ? std::string("~/.aws/credentials") : file) +
                           " (container and instance metadata are not configured or disabled)");
}

}  // namespace s3up::storage::s3
