#include "s3_peer.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <fstream>
#include <thread>

#include "harness.hpp"
#include "util/crypto.hpp"

namespace s3up::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {
std::string required_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    throw std::runtime_error(std::string(name) + " is not set: run the tests with scripts/test, which starts radosgw");
  }
  return v;
}
}  // namespace

S3Peer::S3Peer()
    : endpoint_(required_env("S3UP_TEST_S3_ENDPOINT")),
      access_key_(required_env("S3UP_TEST_S3_ACCESS_KEY")),
      secret_key_(required_env("S3UP_TEST_S3_SECRET_KEY")),
      ceph_conf_(required_env("S3UP_TEST_S3_CEPH_CONF")) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string test = info ? std::string(info->test_suite_name()) + "." + info->name() : "s3peer";
  bucket_ = "it-" + std::to_string(::getpid()) + "-" + util::sha256_hex(test).substr(0, 16);
  storage::StoreSettings settings;
  settings.url = "s3://" + bucket_ + "/objects";
  settings.s3_endpoint = endpoint_;
  settings.getenv = [this](const char* n) -> const char* {
    if (std::string_view(n) == "AWS_ACCESS_KEY_ID") return access_key_.c_str();
    if (std::string_view(n) == "AWS_SECRET_ACCESS_KEY") return secret_key_.c_str();
    return nullptr;
  };
  auto store = storage::open_object_store(settings, io_.get_executor(), pool_);
  store_.reset(dynamic_cast<storage::s3::S3Store*>(store.release()));
  run(store_->create_bucket());
}

S3Peer::~S3Peer() = default;

std::map<std::string, std::string> S3Peer::server_env() const {
  return {{"S3UP_STORAGE", "s3://" + bucket_ + "/objects"},
          {"S3UP_S3_ENDPOINT", endpoint_},
          {"AWS_ACCESS_KEY_ID", access_key_},
          {"AWS_SECRET_ACCESS_KEY", secret_key_},
          {"S3UP_PART_SIZE", "5MiB"}};
}

std::vector<storage::s3::MultipartUploadEntry> S3Peer::multipart_uploads() {
  return run(store_->list_multipart_uploads());
}

std::vector<std::string> S3Peer::keys() { return run(store_->list_keys()); }

std::optional<std::uint64_t> S3Peer::object_size(const std::string& key) {
  auto info = run(store_->recovery()->stat(key));
  if (!info) return std::nullopt;
  return info->size;
}

std::string S3Peer::object_sha256(const std::string& key) {
  util::Sha256 h;
  std::uint64_t offset = 0;
  for (;;) {
    auto piece = run(read_range(*store_, key, offset, 8 * 1024 * 1024));
    if (piece.empty()) break;
    offset += piece.size();
    h.update(piece);
  }
  return util::to_hex(h.finish());
}

void S3Peer::stop_gateway() {
  const auto run_dir = std::filesystem::path(ceph_conf_).parent_path() / "run";
  std::ifstream in(run_dir / "client.rgw.test.pid");
  pid_t pid = 0;
  in >> pid;
  if (pid <= 0) throw std::runtime_error("no radosgw pid file");
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(50ms);
  ::kill(pid, SIGKILL);
}

void S3Peer::start_gateway() {
  const std::string cmd = "radosgw -c " + ceph_conf_ + " -n client.rgw.test";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("restarting radosgw failed");
  const std::string probe = "curl -s -o /dev/null " + endpoint_;
  if (!eventually([&] { return std::system(probe.c_str()) == 0; }, 60s)) {
    throw std::runtime_error("radosgw did not come back");
  }
}

}  // namespace s3up::test
