// The metadata store contract: one suite, run against every backend.
#include "db/metadata_store.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <thread>

#include "util/api_error.hpp"

namespace s3up::db {
namespace {

struct Backend {
  std::string name;
  std::function<std::unique_ptr<MetadataStore>(const std::filesystem::path& dir)> open;
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class MetadataStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("s3up-meta-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = GetParam().open(dir_);
    store_->migrate();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  Upload pending_upload(std::int64_t user_id, std::string name = "a.txt") {
    Upload u;
    u.id = util::uuid_v7();
    u.user_id = user_id;
    u.file_name = std::move(name);
    u.storage_key = "u/" + std::to_string(user_id) + "/" + u.id;
    u.created_at = util::now_micros();
    return u;
  }

  std::filesystem::path dir_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_P(MetadataStoreContract, MigrationsAreIdempotent) {
  EXPECT_EQ(store_->migrate(), 0);
  EXPECT_FALSE(migrations_for("sqlite").empty());
}

TEST_P(MetadataStoreContract, UsersAreUniqueByName) {
  EXPECT_EQ(store_->count_users(), 0);
  const auto alice = store_->create_user("alice", false);
  const auto root = store_->create_user("root", true);
  EXPECT_NE(alice.id, root.id);
  try {
    store_->create_user("alice", true);
    FAIL() << "duplicate user accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.code(), errc::conflict);
  }
  EXPECT_EQ(store_->count_users(), 2);
  const auto found = store_->find_user("root");
  ASSERT_TRUE(found);
  EXPECT_TRUE(found->is_admin);
  EXPECT_FALSE(found->disabled);
  EXPECT_FALSE(store_->find_user("nobody"));
  EXPECT_EQ(store_->list_users().size(), 2u);
}

TEST_P(MetadataStoreContract, TokensAreFoundByHashAndRevoked) {
  const auto alice = store_->create_user("alice", false);
  ApiToken t{"tok_0123456789abcdef", alice.id, alice.name, "laptop", util::now_micros(), std::nullopt, std::nullopt};
  store_->create_token(t, "hash-1");
  auto owner = store_->find_token("hash-1");
  ASSERT_TRUE(owner);
  EXPECT_EQ(owner->token.id, t.id);
  EXPECT_EQ(owner->token.name, "laptop");
  EXPECT_EQ(owner->user.name, "alice");
  EXPECT_FALSE(owner->token.revoked_at);
  EXPECT_FALSE(store_->find_token("hash-2"));

  EXPECT_EQ(store_->list_tokens(std::nullopt).size(), 1u);
  EXPECT_EQ(store_->list_tokens(alice.id).size(), 1u);
  EXPECT_EQ(store_->list_tokens(alice.id + 1000).size(), 0u);

  EXPECT_TRUE(store_->revoke_token(t.id, util::now_micros()));
  EXPECT_FALSE(store_->revoke_token(t.id, util::now_micros()));  // already revoked
  EXPECT_FALSE(store_->revoke_token("tok_unknown", util::now_micros()));
  EXPECT_TRUE(store_->find_token("hash-1")->token.revoked_at);
}

TEST_P(MetadataStoreContract, UploadLifecyclePendingToComplete) {
  const auto alice = store_->create_user("alice", false);
  auto u = pending_upload(alice.id);
  store_->create_pending(u);
  auto got = store_->get_upload(u.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, UploadStatus::pending);
  EXPECT_EQ(store_->count_uploads(UploadStatus::pending), 1);

  u.file_size = 1234;
  u.sha256 = std::string(64, 'a');
  u.content_type = "text/plain";
  u.completed_at = util::now_micros();
  EXPECT_TRUE(store_->mark_complete(u));
  EXPECT_FALSE(store_->mark_complete(u));  // only from pending
  EXPECT_FALSE(store_->mark_failed(u.id, util::now_micros()));
  got = store_->get_upload(u.id);
  EXPECT_EQ(got->status, UploadStatus::complete);
  EXPECT_EQ(got->file_size, 1234u);
  EXPECT_EQ(got->sha256, u.sha256);
  EXPECT_EQ(got->content_type, "text/plain");
  EXPECT_EQ(got->completed_at, u.completed_at);
  EXPECT_EQ(store_->count_uploads(UploadStatus::complete), 1);
  EXPECT_EQ(store_->count_uploads(UploadStatus::pending), 0);
}

TEST_P(MetadataStoreContract, UploadLifecyclePendingToFailed) {
  const auto alice = store_->create_user("alice", false);
  const auto u = pending_upload(alice.id);
  store_->create_pending(u);
  store_->set_store_upload_id(u.id, "2~multipart-upload-id");
  EXPECT_EQ(store_->get_upload(u.id)->store_upload_id, "2~multipart-upload-id");
  EXPECT_TRUE(store_->mark_failed(u.id, util::now_micros()));
  EXPECT_FALSE(store_->mark_complete(u));
  EXPECT_EQ(store_->get_upload(u.id)->status, UploadStatus::failed);
  EXPECT_FALSE(store_->get_upload(util::uuid_v7()));
}

TEST_P(MetadataStoreContract, StalePendingListsOldPendingRowsOldestFirst) {
  const auto alice = store_->create_user("alice", false);
  auto old1 = pending_upload(alice.id), old2 = pending_upload(alice.id), fresh = pending_upload(alice.id),
       done = pending_upload(alice.id);
  old1.created_at = 1000;
  old2.created_at = 2000;
  done.created_at = 500;
  fresh.created_at = util::now_micros();
  for (const auto* u : {&old2, &fresh, &old1, &done}) store_->create_pending(*u);
  EXPECT_TRUE(store_->mark_complete(done));
  const auto stale = store_->stale_pending(10'000, 100);
  ASSERT_EQ(stale.size(), 2u);
  EXPECT_EQ(stale[0].id, old1.id);
  EXPECT_EQ(stale[1].id, old2.id);
  EXPECT_EQ(store_->stale_pending(10'000, 1).size(), 1u);
}

TEST_P(MetadataStoreContract, HostileFileNamesRoundTripVerbatim) {
  const auto alice = store_->create_user("alice", false);
  for (const std::string& name : std::vector<std::string>{"it's \"quoted\"", "back\\slash", "'; DROP TABLE uploads; --", "\xF0\x9F\x98\x80 emoji.png",
                           "../../etc/passwd", std::string(1000, 'n')}) {
    auto u = pending_upload(alice.id, name);
    store_->create_pending(u);
    EXPECT_EQ(store_->get_upload(u.id)->file_name, name);
  }
  EXPECT_EQ(store_->count_uploads(UploadStatus::pending), 6);
}

TEST_P(MetadataStoreContract, ConcurrentWritersAllLand) {
  const auto alice = store_->create_user("alice", false);
  constexpr int kThreads = 8, kEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto u = pending_upload(alice.id);
        store_->create_pending(u);
        u.completed_at = util::now_micros();
        EXPECT_TRUE(store_->mark_complete(u));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store_->count_uploads(UploadStatus::complete), kThreads * kEach);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, MetadataStoreContract,
    ::testing::Values(Backend{"sqlite",
                              [](const std::filesystem::path& dir) {
                                return open_metadata_store("sqlite://" + (dir / "meta.db").string(), 4);
                              }}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace s3up::db
