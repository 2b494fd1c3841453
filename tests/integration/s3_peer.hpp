#pragma once
// The S3 peer as tests see it: the radosgw that scripts/test starts
// (S3UP_TEST_S3_* in the environment), a bucket of the test's own, and what
// is in it.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "storage/s3/s3_store.hpp"

namespace s3up::test {

class S3Peer {
 public:
  // Creates a fresh bucket named after the test. Throws if the peer's
  // environment is missing: these tests must run, not skip.
  S3Peer();
  ~S3Peer();

  // Environment for a ServerProcess storing into this bucket.
  std::map<std::string, std::string> server_env() const;
  const std::string& access_key() const { return access_key_; }
  const std::string& secret_key() const { return secret_key_; }

  std::vector<storage::s3::MultipartUploadEntry> multipart_uploads();
  std::vector<std::string> keys();  // every object in the bucket, as stored (objects/u/...)
  std::optional<std::uint64_t> object_size(const std::string& key);  // key as the service names it (u/...)
  std::string object_sha256(const std::string& key);                 // read back in ranges and hashed

  // Stops and starts the radosgw process (the cluster under it keeps running).
  void stop_gateway();
  void start_gateway();

  // The store's S3 client and where the store keeps `key` in the bucket.
  storage::s3::Client& client() { return store_->client(); }
  std::string bucket_key(const std::string& key) const { return store_->bucket_key(key); }

  // Runs an operation of the store or its client to its end.
  template <class T>
  T run(boost::asio::awaitable<T> op) {
    io_.restart();
    auto fut = boost::asio::co_spawn(io_, std::move(op), boost::asio::use_future);
    io_.run();
    return fut.get();
  }

 private:
  std::string endpoint_, access_key_, secret_key_, ceph_conf_, bucket_;
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_{2};
  std::unique_ptr<storage::s3::S3Store> store_;
};

}  // namespace s3up::test
