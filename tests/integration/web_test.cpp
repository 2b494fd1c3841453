// The web page as the binary serves it: the page and its assets, with the
// security headers a browser needs, validators and caching (raw HTTP and
// curl). The page in a real browser: tests/web (puppeteer).
#include <gtest/gtest.h>

#include <regex>

#include <fmt/format.h>

#include "harness.hpp"

namespace s3up::test {
namespace {

void expect_security_headers(const Response& r, const std::string& what) {
  const auto csp = r.header("content-security-policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << what << ": " << csp;
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << what;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << what;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << what;
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff") << what;
  EXPECT_EQ(r.header("referrer-policy"), "no-referrer") << what;
}

TEST(WebPage, ThePageAndItsAssetsWithSecurityHeadersAndCaching) {
  ServerProcess server;
  const auto page = request(server.port(), "GET", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.header("cache-control"), "no-cache");
  expect_security_headers(page, "/");
  EXPECT_EQ(page.body.find("<script>"), std::string::npos) << "no inline script";
  std::smatch js, css;
  ASSERT_TRUE(std::regex_search(page.body, js, std::regex(R"(/assets/app-[A-Z0-9]+\.js)")));
  ASSERT_TRUE(std::regex_search(page.body, css, std::regex(R"(/assets/app-[A-Z0-9]+\.css)")));

  for (const auto& [path, type] :
       {std::pair{js.str(), "text/javascript; charset=utf-8"}, std::pair{css.str(), "text/css; charset=utf-8"}}) {
    const auto asset = request(server.port(), "GET", path);
    ASSERT_EQ(asset.status, 200) << path;
    EXPECT_EQ(asset.header("content-type"), type);
    EXPECT_EQ(asset.header("cache-control"), "public, max-age=31536000, immutable")
        << "content-hashed: cached for good";
    EXPECT_GT(asset.body.size(), 1000u);
    expect_security_headers(asset, path);
    const auto etag = asset.header("etag");
    ASSERT_FALSE(etag.empty());
    const auto again = request(server.port(), "GET", path, {{"If-None-Match", etag}});
    EXPECT_EQ(again.status, 304);
    EXPECT_TRUE(again.body.empty());
  }
  EXPECT_EQ(request(server.port(), "GET", "/assets/nothing.js").status, 404);
  EXPECT_EQ(request(server.port(), "GET", "/assets/..%2Fs3uploader.db").status, 404);
  EXPECT_EQ(request(server.port(), "HEAD", "/").status, 200);

  // curl agrees.
  const auto cmd = fmt::format("curl -sS -D - -o /dev/null http://127.0.0.1:{}/ 2>&1", server.port());
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  EXPECT_NE(out.find("Content-Security-Policy: default-src 'none'"), std::string::npos) << out;
}

}  // namespace
}  // namespace s3up::test
