// `s3uploader check [URL]`: a health probe for places with no curl (the
// container image's HEALTHCHECK, an ECS task's health check).
#include <curl/curl.h>

#include <memory>

#include <fmt/format.h>

#include "cli/cli.hpp"

namespace s3up::cli {

int check(const std::string& url, const std::string& ca_file) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    fmt::print(stderr, "check: cannot start libcurl\n");
    return 1;
  }
  const auto discard = +[](char*, size_t size, size_t n, void*) -> size_t { return size * n; };
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  if (!ca_file.empty()) curl_easy_setopt(curl.get(), CURLOPT_CAINFO, ca_file.c_str());
  const CURLcode rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) {
    fmt::print(stderr, "check: {}: {}\n", url, curl_easy_strerror(rc));
    return 1;
  }
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) {
    fmt::print(stderr, "check: {}: HTTP {}\n", url, status);
    return 1;
  }
  return 0;
}

}  // namespace s3up::cli
