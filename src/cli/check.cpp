// `s3uploader check [URL]`: a health probe for places with no curl (the
// container image's HEALTHCHECK, an ECS task's health check).
#include <curl/curl.h>

#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "cli/cli.hpp"

namespace s3up::cli {

// /readyz of the listener S3UP_LISTEN names, asked on loopback when it
// listens on every address.
std::string own_readyz_url() {
  const char* listen = std::getenv("S3UP_LISTEN");
  auto endpoint = parse_listen(listen != nullptr && *listen != '\0' ? listen : "127.0.0.1:8080");
  if (endpoint.address().is_unspecified()) {
    endpoint.address(endpoint.address().is_v6() ? boost::asio::ip::address(boost::asio::ip::address_v6::loopback())
                                                : boost::asio::ip::address(boost::asio::ip::address_v4::loopback()));
  }
  const auto host = endpoint.address().is_v6() ? "[" + endpoint.address().to_string() + "]"
                                               : endpoint.address().to_string();
  const char* tls = std::getenv("S3UP_TLS_CERT");
  const bool https = tls != nullptr && *tls != '\0';
  return fmt::format("{}://{}:{}/readyz", https ? "https" : "http", host, endpoint.port());
}

int check(const std::string& url, const std::string& ca_file) {
  // Without a URL: this host's own listener, whose certificate names the
  // public host, not the loopback address asked here; it is not verified.
  const bool own = url.empty();
  std::string target = url;
  if (own) {
    try {
      target = own_readyz_url();
    } catch (const std::exception& e) {
      fmt::print(stderr, "check: S3UP_LISTEN: {}\n", e.what());
      return 1;
    }
  }
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    fmt::print(stderr, "check: cannot start libcurl\n");
    return 1;
  }
  const auto discard = +[](char*, size_t size, size_t n, void*) -> size_t { return size * n; };
  curl_easy_setopt(curl.get(), CURLOPT_URL, target.c_str());
  if (own) {
    curl_easy_setopt(curl.get(), CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl.get(), CURLOPT_SSL_VERIFYHOST, 0L);
  }
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  if (!ca_file.empty()) curl_easy_setopt(curl.get(), CURLOPT_CAINFO, ca_file.c_str());
  const CURLcode rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) {
    fmt::print(stderr, "check: {}: {}\n", target, curl_easy_strerror(rc));
    return 1;
  }
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) {
    fmt::print(stderr, "check: {}: HTTP {}\n", target, status);
    return 1;
  }
  return 0;
}

}  // namespace s3up::cli
