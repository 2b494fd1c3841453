#include <curl/curl.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <zlib.h>

#include <boost/version.hpp>
#include <fmt/format.h>
#include <spdlog/version.h>

#include "cli/cli.hpp"

namespace s3up::cli {

std::string version() { return fmt::format("{} ({})", S3UP_VERSION, S3UP_BUILD_ID); }

std::string version_report() {
  const int pq = PQlibVersion();  // e.g. 150010: 15.10
  const std::string boost = fmt::format("{}.{}.{}", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000,
                                        BOOST_VERSION % 100);
  // The libraries as loaded where the runtime can say (libcurl, OpenSSL,
  // libpq, SQLite, zlib), else as built against (Boost, spdlog, fmt).
  return fmt::format(
      "s3uploader {}\n"
      "libraries: Boost {}, libcurl {}, {}, libpq {}.{}, SQLite {}, zlib {}, spdlog {}.{}.{}, fmt {}.{}.{}",
      version(), boost, curl_version_info(CURLVERSION_NOW)->version, OpenSSL_version(OPENSSL_VERSION), pq / 10000,
      pq % 100, sqlite3_libversion(), zlibVersion(), SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH,
      FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
}

}  // namespace s3up::cli
