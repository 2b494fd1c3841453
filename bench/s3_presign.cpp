// Prints a presigned URL for the benchmark's direct-to-S3 baselines:
//   s3_presign METHOD BUCKET KEY [NAME=VALUE ...]
// (endpoint and keys from S3UP_S3_ENDPOINT, AWS_*). An empty KEY addresses
// the bucket itself (PUT creates it); NAME=VALUE pairs are signed into the
// query (uploads= starts a multipart upload; partNumber=N uploadId=ID).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdlib>
#include <iostream>

#include "storage/s3/s3_client.hpp"

int main(int argc, char** argv) {
  using namespace s3up::storage::s3;
  if (argc < 4) {
    std::cerr << "usage: s3_presign METHOD BUCKET KEY [NAME=VALUE ...]\n";
    return 2;
  }
  std::vector<Header> query;
  for (int i = 4; i < argc; ++i) {
    const std::string pair = argv[i];
    const auto eq = pair.find('=');
    query.emplace_back(pair.substr(0, eq), eq == std::string::npos ? "" : pair.substr(eq + 1));
  }
  boost::asio::io_context io;
  ClientOptions options;
  options.endpoint = std::getenv("S3UP_S3_ENDPOINT") ? std::getenv("S3UP_S3_ENDPOINT") : "";
  options.bucket = argv[2];
  auto client = std::make_shared<Client>(io.get_executor(), options,
                                         default_credentials_chain([](const char* n) { return std::getenv(n); }));
  auto url = boost::asio::co_spawn(io, client->presign(argv[1], argv[3], std::chrono::hours(2), query),
                                   boost::asio::use_future);
  io.run();
  std::cout << url.get() << "\n";
}
