// The object store contract: one suite, run against every backend.
#include "storage/object_store.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "util/api_error.hpp"

namespace s3up::storage {
namespace {

namespace asio = boost::asio;

struct Backend {
  std::string name;
  std::function<std::string(const std::filesystem::path& dir)> url;
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class ObjectStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("s3up-objects-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    store_ = open_object_store(GetParam().url(dir_), pool_);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Runs a coroutine to completion on a fresh io_context.
  template <class T>
  T run(asio::awaitable<T> op) {
    asio::io_context io;
    auto fut = asio::co_spawn(io, std::move(op), asio::use_future);
    io.run();
    return fut.get();
  }
  void run(asio::awaitable<void> op) {
    asio::io_context io;
    auto fut = asio::co_spawn(io, std::move(op), asio::use_future);
    io.run();
    fut.get();
  }

  static std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  }

  asio::awaitable<CommittedObject> put(const std::string& key, const std::string& data, std::size_t piece) {
    const ObjectMetadata meta{"application/octet-stream", "x.bin"};
    auto w = co_await store_->open_writer(key, meta);
    for (std::size_t off = 0; off < data.size(); off += piece) {
      co_await w->write(std::span<const char>(data.data() + off, std::min(piece, data.size() - off)));
    }
    co_return co_await w->commit();
  }

  std::size_t files_under_root() const {
    std::size_t n = 0;
    if (!std::filesystem::exists(dir_)) return 0;
    for (auto& e : std::filesystem::recursive_directory_iterator(dir_)) n += e.is_regular_file();
    return n;
  }

  std::string read_local(const std::string& key) const {
    std::ifstream in(dir_ / key, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  asio::thread_pool pool_{4};
  std::filesystem::path dir_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_P(ObjectStoreContract, WriteCommitStatRemove) {
  for (std::size_t size : {0ul, 1ul, 1000ul, 512ul * 1024, 3ul * 1024 * 1024 + 7}) {
    SCOPED_TRACE(size);
    const std::string key = "u/1/obj-" + std::to_string(size);
    const auto data = random_bytes(size, static_cast<unsigned>(size));
    const auto committed = run(put(key, data, 100'000));
    EXPECT_EQ(committed.size, size);
    const auto info = run(store_->stat(key));
    ASSERT_TRUE(info);
    EXPECT_EQ(info->size, size);
    EXPECT_EQ(read_local(key), data);
    run(store_->remove(key));
    EXPECT_FALSE(run(store_->stat(key)));
    run(store_->remove(key));  // removing twice is fine
  }
  EXPECT_EQ(files_under_root(), 0u);
}

TEST_P(ObjectStoreContract, AbortLeavesNothing) {
  run([this]() -> asio::awaitable<void> {
    const ObjectMetadata meta{"text/plain", "a.txt"};
    auto w = co_await store_->open_writer("u/1/aborted", meta);
    const std::string data(2 * 1024 * 1024, 'x');
    co_await w->write(data);
    co_await w->abort();
  }());
  EXPECT_FALSE(run(store_->stat("u/1/aborted")));
  EXPECT_EQ(files_under_root(), 0u);
}

TEST_P(ObjectStoreContract, DestroyingAnUncommittedWriterLeavesNothing) {
  run([this]() -> asio::awaitable<void> {
    const ObjectMetadata meta{"text/plain", "a.txt"};
    auto w = co_await store_->open_writer("u/1/dropped", meta);
    const std::string data(700 * 1024, 'y');
    co_await w->write(data);
  }());
  EXPECT_FALSE(run(store_->stat("u/1/dropped")));
  EXPECT_EQ(files_under_root(), 0u);
}

TEST_P(ObjectStoreContract, NothingIsVisibleBeforeCommit) {
  run([this]() -> asio::awaitable<void> {
    const ObjectMetadata meta{"text/plain", "a.txt"};
    auto w = co_await store_->open_writer("u/1/later", meta);
    const std::string data(600 * 1024, 'z');
    co_await w->write(data);
    EXPECT_FALSE(co_await store_->stat("u/1/later"));
    co_await w->commit();
    EXPECT_TRUE(co_await store_->stat("u/1/later"));
  }());
}

TEST(ObjectKeys, OnlyServiceShapedKeysAreValid) {
  EXPECT_TRUE(is_valid_key("u/1/01a21f6e-6370-73a5-a152-2f0b6b327828"));
  EXPECT_FALSE(is_valid_key(""));
  EXPECT_FALSE(is_valid_key("/etc/passwd"));
  EXPECT_FALSE(is_valid_key("u/../../etc/passwd"));
  EXPECT_FALSE(is_valid_key("u//x"));
  EXPECT_FALSE(is_valid_key("u/./x"));
  EXPECT_FALSE(is_valid_key("u/x y"));
}

INSTANTIATE_TEST_SUITE_P(Backends, ObjectStoreContract,
                         ::testing::Values(Backend{"local",
                                                   [](const std::filesystem::path& dir) {
                                                     return "file://" + dir.string();
                                                   }}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace s3up::storage
