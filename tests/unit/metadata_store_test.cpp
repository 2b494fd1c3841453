// The metadata store contract: one suite, run against every backend.
#include "db/metadata_store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>

#include "../support/test_database.hpp"
#include "api/error.hpp"
#include "util/ids.hpp"

namespace s3up::db {
namespace {

// A backend and a way to get an empty database of it: a file in the test's
// directory, or a fresh database on the test PostgreSQL (kept alive in `keep`).
struct Backend {
  std::string name;
  std::function<std::string(const std::filesystem::path& dir, std::shared_ptr<void>& keep)> fresh_url;
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class MetadataStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    // The name of a parameterised test has a '/' ("Name/sqlite"): one level, not two,
    // so TearDown's remove_all leaves nothing behind.
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '-');
    dir_ = std::filesystem::temp_directory_path() / ("s3up-meta-" + std::to_string(::getpid()) + "-" + test);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    url_ = GetParam().fresh_url(dir_, keep_);
    store_ = open_metadata_store(url_, 4);
    store_->migrate();
  }
  void TearDown() override {
    store_.reset();
    keep_.reset();
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
  std::shared_ptr<void> keep_;
  std::string url_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_P(MetadataStoreContract, MigrationsAreIdempotent) {
  EXPECT_EQ(store_->migrate(), 0);
  EXPECT_FALSE(migrations_for(GetParam().name).empty());
  EXPECT_EQ(migrations_for("sqlite").size(), migrations_for("postgres").size()) << "the same numbered steps";
}

TEST_P(MetadataStoreContract, RacingMigrationsApplyEachStepOnce) {
  // Instances starting together on an empty database.
  std::shared_ptr<void> keep;
  const auto dir = dir_ / "race";
  std::filesystem::create_directories(dir);
  const std::string url = GetParam().fresh_url(dir, keep);
  constexpr int kInstances = 4;
  std::vector<std::unique_ptr<MetadataStore>> instances;
  for (int i = 0; i < kInstances; ++i) instances.push_back(open_metadata_store(url, 1));
  std::atomic<int> applied{0}, failures{0};
  std::vector<std::thread> threads;
  for (auto& s : instances) {
    threads.emplace_back([&, store = s.get()] {
      try {
        applied += store->migrate();
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(applied, static_cast<int>(migrations_for(GetParam().name).size()));
  // and the schema works
  const auto u = instances[0]->create_user("after-race", false);
  EXPECT_EQ(instances[kInstances - 1]->find_user("after-race")->id, u.id);
}

TEST_P(MetadataStoreContract, AJwtUserIsMadeOnFirstUseAndOnlyByItsIssuer) {
  const std::string idp = "https://idp.example";
  const auto first = store_->external_user(idp, "auth0|123", 1000);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->issuer, idp);
  EXPECT_FALSE(first->is_admin);
  EXPECT_FALSE(first->quota_bytes);
  EXPECT_EQ(store_->external_user(idp, "auth0|123", 2000)->id, first->id);
  EXPECT_EQ(store_->find_user("auth0|123")->issuer, idp);
  // A name a token user has, or another issuer's user, is not this issuer's.
  store_->create_user("alice", false);
  EXPECT_FALSE(store_->external_user(idp, "alice", 3000));
  EXPECT_FALSE(store_->find_user("alice")->issuer);
  EXPECT_FALSE(store_->external_user("https://other.example", "auth0|123", 3000));
  EXPECT_FALSE(store_->external_user("", "auth0|123", 3000)) << "no iss is an issuer of its own";
  // Instances making the same user at once make one.
  constexpr int kRacers = 4;
  std::vector<std::thread> racers;
  std::vector<std::int64_t> ids(kRacers);
  for (int i = 0; i < kRacers; ++i) {
    racers.emplace_back([&, i] { ids[i] = store_->external_user(idp, "racer", 4000)->id; });
  }
  for (auto& t : racers) t.join();
  for (const auto id : ids) EXPECT_EQ(id, ids[0]);
}

TEST_P(MetadataStoreContract, ASharedSecretIsTheFirstOneOffered) {
  EXPECT_EQ(store_->shared_secret("links", "first"), "first");
  EXPECT_EQ(store_->shared_secret("links", "second"), "first") << "every instance gets the same one";
  EXPECT_EQ(store_->shared_secret("other", "third"), "third");
}

TEST_P(MetadataStoreContract, UsersAreUniqueByName) {
  EXPECT_EQ(store_->count_users(), 0);
  const auto alice = store_->create_user("alice", false);
  const auto root = store_->create_user("root", true);
  EXPECT_NE(alice.id, root.id);
  try {
    store_->create_user("alice", true);
    FAIL() << "duplicate user accepted";
  } catch (const db::Error& e) {
    EXPECT_EQ(e.failure(), db::Failure::conflict);
  }
  EXPECT_EQ(store_->count_users(), 2);
  const auto found = store_->find_user("root");
  ASSERT_TRUE(found);
  EXPECT_TRUE(found->is_admin);
  EXPECT_FALSE(found->disabled);
  EXPECT_FALSE(store_->find_user("nobody"));
  EXPECT_EQ(store_->list_users("", 100).size(), 2u);
  EXPECT_EQ(store_->list_users("alice", 100).front().name, "root");
  EXPECT_EQ(store_->list_users("", 1).size(), 1u);
  const auto by_id = store_->get_user(found->id);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->name, "root");
  EXPECT_TRUE(store_->set_user_disabled("root", true));
  EXPECT_TRUE(store_->get_user(found->id)->disabled);
  EXPECT_FALSE(store_->get_user(found->id + 1000));
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

TEST_P(MetadataStoreContract, AUserIsDeletedInStepsThatLeaveNothing) {
  const auto frank = store_->create_user("frank", false);
  const auto other = store_->create_user("other", false);
  const auto now = util::now_micros();
  ApiToken token{.id = "tok_frank", .user_id = frank.id, .created_at = now};
  store_->create_token(token, "hash-frank");
  const auto complete = [&](std::int64_t user_id, const std::string& name) {
    auto u = pending_upload(user_id, name);
    store_->create_pending(u);
    u.file_size = 10;
    u.completed_at = now;
    EXPECT_TRUE(store_->mark_complete(u));
    return u;
  };
  const auto kept = complete(frank.id, "kept.txt");
  complete(frank.id, "second.txt");
  const auto unfinished = pending_upload(frank.id, "unfinished.txt");
  store_->create_pending(unfinished);
  const auto failed = pending_upload(frank.id, "failed.txt");
  store_->create_pending(failed);
  const auto resumable = pending_upload(frank.id, "resumable.bin");
  store_->create_pending(resumable);
  ResumableState progress;
  progress.upload_id = resumable.id;
  progress.part_size = 8 << 20;
  progress.hash_state = "sha256.1:x";
  progress.expires_at = now + 3'600'000'000;
  store_->add_resumable(progress);
  EXPECT_TRUE(store_->mark_failed(failed.id, now));
  const auto others = complete(other.id, "others.txt");

  // Nothing goes while something of theirs is left.
  EXPECT_FALSE(store_->remove_user_if_empty(frank.id));
  EXPECT_FALSE(store_->begin_user_deletion("nobody", now));
  const auto started = store_->begin_user_deletion("frank", now);
  ASSERT_TRUE(started);
  EXPECT_EQ(started->user_id, frank.id);
  EXPECT_EQ(started->files, 2);
  const auto user = store_->find_user("frank");
  EXPECT_TRUE(user->deleting);
  EXPECT_TRUE(user->disabled);
  EXPECT_TRUE(store_->find_token("hash-frank")->user.disabled);
  EXPECT_FALSE(store_->update_user("frank", UserChange{.disabled = false}))
      << "a user being deleted is not changed back";
  EXPECT_EQ(store_->get_upload(kept.id)->status, UploadStatus::deleting);
  EXPECT_EQ(store_->get_upload(unfinished.id)->status, UploadStatus::failed);
  EXPECT_EQ(store_->get_upload(others.id)->status, UploadStatus::complete);
  EXPECT_EQ(store_->uploads_with_leftovers(10).size(), 1u) << "the unfinished upload's leftovers are the janitor's";
  EXPECT_EQ(store_->get_upload(resumable.id)->status, UploadStatus::pending);
  ASSERT_EQ(store_->expired_resumable(now, 10).size(), 1u) << "a resumable one expires: the janitor ends it";
  EXPECT_TRUE(store_->mark_failed(resumable.id, now));
  EXPECT_EQ(store_->users_being_deleted(10), std::vector<std::int64_t>{frank.id});
  EXPECT_EQ(store_->begin_user_deletion("frank", now + 1)->files, 0) << "again: nothing more marked";

  // The janitor's steps: the deleting rows, then the leftovers, then the user.
  for (const auto& row : store_->deleting_uploads(10)) EXPECT_TRUE(store_->delete_upload(row.id));
  EXPECT_FALSE(store_->remove_user_if_empty(frank.id)) << "the unfinished upload's leftovers are still there";
  store_->leftovers_removed(unfinished.id);
  EXPECT_TRUE(store_->remove_user_if_empty(frank.id));
  EXPECT_FALSE(store_->find_user("frank"));
  EXPECT_FALSE(store_->find_token("hash-frank"));
  EXPECT_FALSE(store_->get_upload(failed.id));
  EXPECT_TRUE(store_->users_being_deleted(10).empty());
  EXPECT_TRUE(store_->get_upload(others.id)) << "another user's files stay";
  // A user with no files goes at once, without being marked.
  const auto empty = store_->create_user("empty", false);
  EXPECT_TRUE(store_->remove_user_if_empty(empty.id));
}

TEST_P(MetadataStoreContract, AnUploadLinkHoldsItsLimitsAndGetsFailuresBack) {
  const auto owner = store_->create_user("owner", false);
  const auto now = util::now_micros();
  UploadLink link{.id = "lnk_0123456789abcdef", .user_id = owner.id, .note = "n", .allowed_types = "image/*",
                  .max_files = 2, .max_bytes = 100, .created_at = now, .expires_at = now + 60'000'000};
  store_->create_upload_link(link, "link-hash");
  EXPECT_EQ(store_->find_upload_link("link-hash")->id, link.id);
  EXPECT_FALSE(store_->find_upload_link("other-hash"));
  const auto through = [&](const std::string& name, std::int64_t bytes, Micros at) {
    auto u = pending_upload(owner.id, name);
    u.upload_link_id = link.id;
    return std::pair(u, store_->create_pending_through_link(u, bytes, at));
  };
  const auto [first, first_ok] = through("a", 60, now);
  EXPECT_TRUE(first_ok);
  EXPECT_EQ(store_->get_upload(first.id)->upload_link_id, link.id);
  EXPECT_FALSE(through("too-big", 41, now).second) << "60 + 41 bytes is past 100";
  EXPECT_FALSE(store_->get_upload(through("too-big-2", 41, now).first.id)) << "no row for a refused upload";
  const auto [second, second_ok] = through("b", 40, now);
  EXPECT_TRUE(second_ok);
  EXPECT_FALSE(through("third", 0, now).second) << "two files at most";
  auto got = store_->get_upload_link(link.id);
  EXPECT_EQ(got->files_used, 2);
  EXPECT_EQ(got->bytes_used, 100);
  // A failed upload gives its file and bytes back; only once.
  EXPECT_TRUE(store_->mark_failed(second.id, now));
  EXPECT_FALSE(store_->mark_failed(second.id, now));
  got = store_->get_upload_link(link.id);
  EXPECT_EQ(got->files_used, 1);
  EXPECT_EQ(got->bytes_used, 60);
  EXPECT_TRUE(through("c", 40, now).second);
  // Expired, revoked: nothing more through it.
  UploadLink open = link;
  open.id = "lnk_fedcba9876543210";
  open.max_files = open.max_bytes = std::nullopt;
  store_->create_upload_link(open, "open-hash");
  link = open;
  EXPECT_TRUE(through("d", 1'000'000, now).second) << "no limits";
  EXPECT_FALSE(through("late", 1, open.expires_at).second);
  EXPECT_FALSE(store_->revoke_upload_link(open.id, owner.id + 1, now)) << "not another user's to revoke";
  EXPECT_TRUE(store_->revoke_upload_link(open.id, owner.id, now));
  EXPECT_FALSE(store_->revoke_upload_link(open.id, owner.id, now));
  EXPECT_FALSE(through("revoked", 1, now).second);
  const auto listed = store_->list_upload_links(owner.id, 10);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].allowed_types, "image/*");
  EXPECT_TRUE(listed[0].revoked_at || listed[1].revoked_at);
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
  EXPECT_FALSE(store_->get_upload("not-a-uuid"));  // no match, not a database error
  EXPECT_FALSE(store_->mark_failed("x'; --", util::now_micros()));
}

TEST_P(MetadataStoreContract, FailedUploadsWithStoreLeftoversAreListedUntilRemoved) {
  const auto alice = store_->create_user("alice", false);
  const auto clean = pending_upload(alice.id), first = pending_upload(alice.id), second = pending_upload(alice.id);
  for (const auto& u : {clean, first, second}) store_->create_pending(u);
  store_->set_store_upload_id(first.id, "2~first");
  EXPECT_TRUE(store_->mark_failed(clean.id, 100));
  EXPECT_TRUE(store_->mark_failed(second.id, 300, StoreLeftovers::remain));
  EXPECT_TRUE(store_->mark_failed(first.id, 200, StoreLeftovers::remain));
  EXPECT_FALSE(store_->mark_failed(first.id, 400, StoreLeftovers::none));  // only from pending: stays listed

  auto listed = store_->uploads_with_leftovers(10);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].id, first.id);  // oldest failure first
  EXPECT_EQ(listed[0].store_upload_id, "2~first");
  EXPECT_EQ(listed[0].status, UploadStatus::failed);
  EXPECT_EQ(listed[1].id, second.id);
  EXPECT_EQ(store_->uploads_with_leftovers(1).size(), 1u);

  store_->leftovers_removed(first.id);
  listed = store_->uploads_with_leftovers(10);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, second.id);
  EXPECT_EQ(store_->get_upload(first.id)->status, UploadStatus::failed);  // the record stays
  store_->leftovers_removed("not-a-uuid");                                // no match, not a database error
}

TEST_P(MetadataStoreContract, TimestampsKeepTheirMicroseconds) {
  const auto alice = store_->create_user("alice", false);
  EXPECT_NEAR(static_cast<double>(alice.created_at), static_cast<double>(util::now_micros()), 60e6);
  EXPECT_EQ(store_->find_user("alice")->created_at, alice.created_at);
  auto u = pending_upload(alice.id);
  u.created_at = 1'795'000'000'123'457;  // an odd microsecond
  store_->create_pending(u);
  u.completed_at = u.created_at + 1;
  store_->mark_complete(u);
  const auto got = store_->get_upload(u.id);
  EXPECT_EQ(got->created_at, 1'795'000'000'123'457);
  EXPECT_EQ(got->completed_at, 1'795'000'000'123'458);
  ApiToken t{"tok_0123456789abcdef", alice.id, "alice", "laptop", 1'795'000'000'000'001, 1'895'000'000'000'002, {}};
  store_->create_token(t, "hash");
  const auto found = store_->find_token("hash");
  EXPECT_EQ(found->token.created_at, t.created_at);
  EXPECT_EQ(found->token.expires_at, t.expires_at);
  EXPECT_FALSE(found->token.revoked_at);
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

// The janitor pages through stale rows: each page starts after the last row
// of the one before, same created_at or not, so a row it cannot clean is not
// fetched (and counted) again in the same run.
TEST_P(MetadataStoreContract, StalePendingPagesAfterACursor) {
  const auto alice = store_->create_user("alice", false);
  std::vector<Upload> rows;
  for (int i = 0; i < 5; ++i) {
    auto u = pending_upload(alice.id);
    u.created_at = i < 3 ? 1000 : 2000 + i;  // three share a time: the id breaks the tie
    store_->create_pending(u);
    rows.push_back(u);
  }
  std::vector<std::string> seen;
  std::optional<ListPosition> after;
  for (;;) {
    const auto page = store_->stale_pending(10'000, after, 2);
    for (const auto& u : page) seen.push_back(u.id);
    if (page.size() < 2) break;
    after = ListPosition{page.back().created_at, page.back().id};
  }
  std::sort(rows.begin(), rows.end(), [](const Upload& a, const Upload& b) {
    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
  });
  ASSERT_EQ(seen.size(), rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(seen[i], rows[i].id) << i;
}

// A resumable upload created with its progress in one write: both there,
// as create_pending and add_resumable would have left them; a progress row
// for another upload is refused and leaves nothing.
TEST_P(MetadataStoreContract, AResumableUploadIsCreatedWithItsProgressAtOnce) {
  const auto alice = store_->create_user("alice", false);
  const auto u = pending_upload(alice.id);
  ResumableState r;
  r.upload_id = u.id;
  r.upload_length = 1024;
  r.metadata = "filename YS5iaW4=";
  r.part_size = 8 << 20;
  r.hash_state = "sha256.1:x";
  r.expires_at = 5'000'000;
  r.lease_token = 3;
  r.lease_expires_at = 2'000'000;
  store_->create_pending_resumable(u, r);
  const auto row = store_->get_upload(u.id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->status, UploadStatus::pending);
  EXPECT_EQ(row->file_name, u.file_name);
  const auto got = store_->get_resumable(u.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->upload_length, 1024u);
  EXPECT_EQ(got->metadata, r.metadata);
  EXPECT_EQ(got->part_size, r.part_size);
  EXPECT_EQ(got->hash_state, r.hash_state);
  EXPECT_EQ(got->expires_at, r.expires_at);
  EXPECT_EQ(got->lease_token, 3);
  EXPECT_EQ(got->lease_expires_at, 2'000'000);

  const auto other = pending_upload(alice.id);
  EXPECT_THROW(store_->create_pending_resumable(other, r), std::invalid_argument);
  EXPECT_FALSE(store_->get_upload(other.id));
}

// A resumable upload's progress: stored and read back whole, one writer at
// a time through the lease, progress recorded only under the current one.
TEST_P(MetadataStoreContract, ResumableProgressUnderAFencedLease) {
  const auto alice = store_->create_user("alice", false);
  const auto u = pending_upload(alice.id);
  store_->create_pending(u);
  ResumableState r;
  r.upload_id = u.id;
  r.metadata = "filename ZsOpLnR4dA==";
  r.part_size = 8 << 20;
  r.hash_state = "sha256.1:x";
  r.expires_at = 5'000'000;
  store_->add_resumable(r);
  auto got = store_->get_resumable(u.id);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->upload_length);  // deferred
  EXPECT_EQ(got->offset, 0u);
  EXPECT_EQ(got->metadata, r.metadata);
  EXPECT_EQ(got->part_size, r.part_size);
  EXPECT_EQ(got->hash_state, r.hash_state);
  EXPECT_EQ(got->expires_at, r.expires_at);
  EXPECT_EQ(got->lease_token, 0);
  EXPECT_FALSE(got->lease_expires_at);
  EXPECT_FALSE(store_->get_resumable(pending_upload(alice.id).id));

  // A writer takes the lease (token 1); a second one cannot while it holds.
  EXPECT_TRUE(store_->take_lease(u.id, 0, 1'000'000, 2'000'000));
  EXPECT_FALSE(store_->take_lease(u.id, 0, 1'000'000, 2'000'000)) << "the same token twice";
  EXPECT_FALSE(store_->take_lease(u.id, 1, 1'500'000, 2'500'000)) << "held until 2s";
  EXPECT_TRUE(store_->holds_lease(u.id, 1));
  EXPECT_FALSE(store_->holds_lease(u.id, 0)) << "the token before the take";
  EXPECT_FALSE(store_->holds_lease("no-such-upload", 1));
  ResumableState progress = *store_->get_resumable(u.id);
  EXPECT_EQ(progress.lease_token, 1);
  progress.offset = 10 << 20;
  progress.upload_length = 30 << 20;
  progress.store_state = "{\"parts\":[1]}";
  progress.hash_state = "sha256.1:y";
  progress.expires_at = 9'000'000;
  progress.lease_expires_at = 3'000'000;
  EXPECT_TRUE(store_->save_progress(progress));
  got = store_->get_resumable(u.id);
  EXPECT_EQ(got->offset, 10u << 20);
  EXPECT_EQ(got->upload_length, 30u << 20);
  EXPECT_EQ(got->store_state, progress.store_state);
  EXPECT_EQ(got->hash_state, "sha256.1:y");
  EXPECT_EQ(got->expires_at, 9'000'000);
  EXPECT_EQ(got->lease_expires_at, 3'000'000);
  EXPECT_EQ(got->lease_token, 2) << "a save moves the token on";
  EXPECT_FALSE(store_->save_progress(progress)) << "saved twice under one token";
  EXPECT_FALSE(store_->take_lease(u.id, 1, 3'500'000, 4'000'000)) << "taken from a state read before the save";
  progress.lease_token = 2;

  // The lease lapses (a half-open connection sends nothing, or the store is
  // slow): while nobody takes it, its holder may still renew it.
  progress.lease_expires_at = 3'050'000;
  EXPECT_TRUE(store_->save_progress(progress)) << "a lapsed lease nobody took is still its holder's";
  progress.lease_token = 3;
  // Once a new writer takes it, the old one's progress is refused.
  EXPECT_FALSE(store_->take_lease(u.id, 3, 3'000'000, 4'000'000)) << "held until 3.05s";
  EXPECT_TRUE(store_->take_lease(u.id, 3, 3'100'000, 4'000'000));
  EXPECT_EQ(store_->get_resumable(u.id)->lease_expires_at, 4'000'000);
  progress.offset = 20 << 20;
  EXPECT_FALSE(store_->save_progress(progress)) << "a fenced writer recorded progress";
  EXPECT_FALSE(store_->holds_lease(u.id, 3)) << "a fenced writer's fence held";
  EXPECT_TRUE(store_->holds_lease(u.id, 4));
  EXPECT_EQ(store_->get_resumable(u.id)->offset, 10u << 20);
  // Released: the next writer need not wait for the lapse, and sees that
  // the last one is done (no expiry). A release moves the token on too.
  store_->release_lease(u.id, 3);  // an old token releases nothing
  EXPECT_FALSE(store_->take_lease(u.id, 4, 3'300'000, 5'000'000));
  store_->release_lease(u.id, 4);
  got = store_->get_resumable(u.id);
  EXPECT_FALSE(got->lease_expires_at);
  EXPECT_EQ(got->lease_token, 5);
  EXPECT_FALSE(store_->holds_lease(u.id, 5)) << "a lease given up is nobody's";
  EXPECT_FALSE(store_->take_lease(u.id, 4, 3'300'000, 5'000'000)) << "taken from a state read before the release";
  EXPECT_TRUE(store_->take_lease(u.id, 5, 3'300'000, 5'000'000));
  // Saved with its release: free, and versioned, in one write.
  progress.lease_token = 6;
  progress.lease_expires_at.reset();
  EXPECT_TRUE(store_->save_progress(progress));
  got = store_->get_resumable(u.id);
  EXPECT_FALSE(got->lease_expires_at);
  EXPECT_EQ(got->lease_token, 7);
  EXPECT_EQ(got->offset, 20u << 20);
  progress.lease_token = 7;
  EXPECT_FALSE(store_->save_progress(progress)) << "saved after giving the lease up";
  EXPECT_TRUE(store_->take_lease(u.id, 7, 3'500'000, 5'000'000));
}

// Resumable uploads wait for their expiry, not for stale_upload_age, and
// the janitor finds them only when expired and not being written.
TEST_P(MetadataStoreContract, ResumableUploadsExpireInsteadOfGoingStale) {
  const auto alice = store_->create_user("alice", false);
  auto single = pending_upload(alice.id), paused = pending_upload(alice.id), writing = pending_upload(alice.id),
       fresh = pending_upload(alice.id);
  for (auto* u : {&single, &paused, &writing, &fresh}) {
    u->created_at = 1000;
    store_->create_pending(*u);
  }
  const auto add = [&](const Upload& u, Micros expires) {
    ResumableState r;
    r.upload_id = u.id;
    r.part_size = 5 << 20;
    r.hash_state = "sha256.1:x";
    r.expires_at = expires;
    store_->add_resumable(r);
  };
  add(paused, 50'000);
  add(writing, 50'000);
  add(fresh, 500'000);
  EXPECT_TRUE(store_->take_lease(writing.id, 0, 90'000, 200'000));
  const auto stale = store_->stale_pending(10'000, 100);
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].id, single.id);
  const auto expired = store_->expired_resumable(100'000, 100);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].id, paused.id);
  EXPECT_EQ(store_->expired_resumable(300'000, 100).size(), 2u);  // the lease lapsed at 200'000
  // A finished upload is not expired, and its progress goes with its row.
  EXPECT_TRUE(store_->mark_failed(paused.id, 100'000));
  EXPECT_EQ(store_->expired_resumable(300'000, 100).size(), 1u);
  EXPECT_TRUE(store_->delete_upload(paused.id));
  EXPECT_FALSE(store_->get_resumable(paused.id));
}

TEST_P(MetadataStoreContract, HostileFileNamesRoundTripVerbatim) {
  const auto alice = store_->create_user("alice", false);
  for (const std::string& name :
       std::vector<std::string>{"it's \"quoted\"", "back\\slash", "'; DROP TABLE uploads; --",
                                "\xF0\x9F\x98\x80 emoji.png", "../../etc/passwd", std::string(1000, 'n')}) {
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

TEST_P(MetadataStoreContract, FilesAreListedNewestFirstInStablePages) {
  const auto alice = store_->create_user("alice", false);
  const auto bob = store_->create_user("bob", false);
  std::vector<Upload> alices;
  for (int i = 0; i < 7; ++i) {
    auto u = pending_upload(i % 3 == 2 ? bob.id : alice.id);
    u.created_at = 1'000'000 + (i == 4 ? 3 : i) * 1000;  // rows 3 and 4 tie on time: the id decides
    store_->create_pending(u);
    u.completed_at = u.created_at + 1;
    store_->mark_complete(u);
    if (u.user_id == alice.id) alices.push_back(u);
  }
  store_->create_pending(pending_upload(alice.id));  // pending: never listed
  std::sort(alices.begin(), alices.end(), [](const Upload& a, const Upload& b) {
    return std::tie(a.created_at, a.id) > std::tie(b.created_at, b.id);
  });

  std::vector<std::string> seen;
  std::optional<FileListing::After> after;
  for (int page = 0; page < 10; ++page) {
    const auto rows = store_->list_files({.user_id = alice.id, .after = after, .limit = 2});
    for (const auto& r : rows) {
      seen.push_back(r.id);
      EXPECT_EQ(r.status, UploadStatus::complete);
      EXPECT_EQ(r.user_id, alice.id);
    }
    if (rows.size() < 2) break;
    after = FileListing::After{.created_at = rows.back().created_at, .upload_id = rows.back().id};
    // A new upload while paging is newer than any page: it shifts nothing.
    auto fresh = pending_upload(alice.id);
    store_->create_pending(fresh);
    fresh.completed_at = util::now_micros();
    store_->mark_complete(fresh);
  }
  std::vector<std::string> expected;
  for (const auto& u : alices) expected.push_back(u.id);
  EXPECT_EQ(seen, expected);

  const auto everyone = store_->list_files({.limit = 1000});
  EXPECT_EQ(everyone.size(), 7u + 2u);  // bob's two, alice's five, and the two fresh ones made while paging
  EXPECT_TRUE(std::is_sorted(everyone.begin(), everyone.end(), [](const Upload& a, const Upload& b) {
    return std::tie(a.created_at, a.id) > std::tie(b.created_at, b.id);
  }));
  const auto rest = store_->list_files(
      {.after = FileListing::After{.created_at = everyone[3].created_at, .upload_id = everyone[3].id}, .limit = 1000});
  ASSERT_EQ(rest.size(), everyone.size() - 4);
  EXPECT_EQ(rest.front().id, everyone[4].id);
  EXPECT_TRUE(
      store_->list_files({.user_id = alice.id, .after = FileListing::After{.upload_id = "not-a-uuid"}, .limit = 10})
          .empty());
}

TEST_P(MetadataStoreContract, FilesAreSearchedAndOrderedByNameOrSizeInStablePages) {
  const auto alice = store_->create_user("alice", false);
  const auto bob = store_->create_user("bob", false);
  // Names that differ only in case tie (the id decides), sizes that tie, and
  // names holding LIKE's own wildcards.
  const std::vector<std::pair<std::string, std::uint64_t>> files = {
      {"Report.pdf", 300}, {"report.PDF", 100}, {"apple.png", 300}, {"Zebra.txt", 5},  {"100%_sure.txt", 100},
      {"1000_sure.txt", 7}, {"notes.md", 300}, {"b.bin", 0},         {"REPORT-2.pdf", 9}, {"a\\b.txt", 1},
  };
  std::vector<Upload> alices;
  for (const auto& [name, size] : files) {
    auto u = pending_upload(alice.id);
    u.file_name = name;
    u.file_size = size;
    store_->create_pending(u);
    store_->mark_complete(u);
    alices.push_back(u);
  }
  auto theirs = pending_upload(bob.id);
  theirs.file_name = "report-of-bob.pdf";
  store_->create_pending(theirs);
  store_->mark_complete(theirs);

  const auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  // Every page of `listing`, `page` rows at a time, as ids.
  const auto walk = [&](FileListing listing, std::int64_t page) {
    std::vector<std::string> ids;
    listing.limit = page;
    for (int i = 0; i < 50; ++i) {
      const auto rows = store_->list_files(listing);
      for (const auto& r : rows) ids.push_back(r.id);
      if (static_cast<std::int64_t>(rows.size()) < page) break;
      const auto& last = rows.back();
      listing.after = FileListing::After{last.created_at, last.file_name, static_cast<std::int64_t>(last.file_size), last.id};
    }
    return ids;
  };
  const auto expect_order = [&](FileListing::Order order, bool descending, auto key) {
    auto sorted = alices;
    std::sort(sorted.begin(), sorted.end(), [&](const Upload& a, const Upload& b) {
      const auto ka = std::make_pair(key(a), a.id);
      const auto kb = std::make_pair(key(b), b.id);
      return descending ? ka > kb : ka < kb;
    });
    std::vector<std::string> expected;
    for (const auto& u : sorted) expected.push_back(u.id);
    for (const std::int64_t page : {1, 3, 100}) {
      EXPECT_EQ(walk({.user_id = alice.id, .order = order, .descending = descending}, page), expected)
          << "order " << static_cast<int>(order) << (descending ? " desc" : " asc") << ", pages of " << page;
    }
  };
  for (const bool descending : {false, true}) {
    expect_order(FileListing::Order::name, descending, [&](const Upload& u) { return lower(u.file_name); });
    expect_order(FileListing::Order::size, descending, [](const Upload& u) { return u.file_size; });
  }

  const auto names = [&](std::string_view contains, FileListing::Order order = FileListing::Order::name) {
    std::vector<std::string> out;
    for (const auto& id : walk({.user_id = alice.id, .name_contains = std::string(contains), .order = order,
                                .descending = false},
                               2)) {
      out.push_back(store_->get_upload(id)->file_name);
    }
    return out;
  };
  EXPECT_EQ(names("report").size(), 3u) << "case is ignored, and bob's file is not alice's";
  EXPECT_EQ(names("rEpOrT"), names("report"));
  EXPECT_EQ(names("%"), std::vector<std::string>{"100%_sure.txt"}) << "% is a character, not a wildcard";
  EXPECT_EQ(names("0_"), std::vector<std::string>{"1000_sure.txt"}) << "_ is a character, not a wildcard";
  EXPECT_EQ(names("a\\b"), std::vector<std::string>{"a\\b.txt"});
  EXPECT_EQ(names(".pdf", FileListing::Order::size).size(), 3u);
  EXPECT_TRUE(names("nothing-like-this").empty());
  // Everyone's (admins), searched.
  EXPECT_EQ(store_->list_files({.name_contains = "report", .limit = 100}).size(), 4u);
}

TEST_P(MetadataStoreContract, WebhookEventsAreRecordedWithTheirChangeAndClaimedInOrder) {
  const auto alice = store_->create_user("alice", false);
  const std::vector<std::string> endpoints{"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"};
  store_->record_events(endpoints, {"upload.created", "upload.completed", "upload.failed", "upload.deleted"});
  const auto now = util::now_micros();
  const auto claim = [&](db::Micros at = 0) {
    return store_->claim_deliveries(at ? at : util::now_micros(), util::now_micros() + 60'000'000, 100);
  };
  const auto types = [](const std::vector<WebhookDelivery>& ds) {
    std::vector<std::string> out;
    for (const auto& d : ds) out.push_back(d.event_type + "@" + d.endpoint.substr(d.endpoint.size() - 1));
    std::sort(out.begin(), out.end());
    return out;
  };

  auto u = pending_upload(alice.id, "report.pdf");
  store_->create_pending(u);
  u.file_size = 42;
  u.content_type = "application/pdf";
  u.sha256 = std::string(64, 'a');
  u.completed_at = now;
  ASSERT_TRUE(store_->mark_complete(u));
  EXPECT_FALSE(store_->mark_complete(u)) << "not pending any more";
  EXPECT_FALSE(store_->mark_failed(u.id, now)) << "a complete upload does not fail";
  EXPECT_EQ(store_->count_deliveries(DeliveryStatus::pending), 4) << "created and completed, for two endpoints, once";

  // The completion waits for the creation, per endpoint.
  const auto first = claim();
  EXPECT_EQ(types(first), (std::vector<std::string>{"upload.created@a", "upload.created@b"}));
  EXPECT_TRUE(claim().empty()) << "claimed: nobody else takes them, and the completions wait";
  for (const auto& d : first) {
    EXPECT_EQ(d.attempts, 1);
    EXPECT_EQ(d.upload.id, u.id);
    EXPECT_EQ(d.upload.status, UploadStatus::pending);
    EXPECT_EQ(d.user_name, "alice");
    EXPECT_EQ(d.event_id, first.front().event_id) << "one webhook-id for every endpoint";
    store_->delivery_succeeded(d.seq, util::now_micros());
  }
  const auto second = claim();
  ASSERT_EQ(types(second), (std::vector<std::string>{"upload.completed@a", "upload.completed@b"}));
  EXPECT_EQ(second[0].upload.file_size, 42u);
  EXPECT_EQ(second[0].upload.sha256, std::string(64, 'a'));
  EXPECT_EQ(second[0].upload.completed_at, now);
  EXPECT_NE(second[0].event_id, first[0].event_id);

  // A failure comes back when asked, counted; with no next time it is dead.
  const auto& to_a = second[0].endpoint.ends_with("a") ? second[0] : second[1];
  const auto& to_b = second[0].endpoint.ends_with("a") ? second[1] : second[0];
  store_->delivery_failed(to_a.seq, util::now_micros() + 1'000'000, "HTTP 500");
  store_->delivery_failed(to_b.seq, std::nullopt, "HTTP 500 for too long");
  EXPECT_TRUE(claim().empty()) << "not due yet";
  const auto again = claim(util::now_micros() + 2'000'000);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].seq, to_a.seq);
  EXPECT_EQ(again[0].attempts, 2);
  EXPECT_EQ(store_->count_deliveries(DeliveryStatus::dead), 1);
  store_->delivery_succeeded(again[0].seq, util::now_micros());

  // Deleted: recorded from the row as it was; an endpoint that said 410 gets nothing.
  store_->disable_endpoint(endpoints[1], now, "410 Gone");
  ASSERT_TRUE(store_->mark_deleting(u.id));
  ASSERT_TRUE(store_->delete_upload(u.id));
  const auto deleted = claim();
  ASSERT_EQ(types(deleted), (std::vector<std::string>{"upload.deleted@a"}));
  EXPECT_EQ(deleted[0].upload.file_name, "report.pdf");
  EXPECT_EQ(deleted[0].upload.status, UploadStatus::deleting);
  store_->delivery_succeeded(deleted[0].seq, util::now_micros());

  // A failed upload: failed, and its removal is no file deleted.
  auto f = pending_upload(alice.id, "broken.bin");
  store_->create_pending(f);
  ASSERT_TRUE(store_->mark_failed(f.id, now));
  ASSERT_TRUE(store_->delete_upload(f.id));
  const auto failed = claim();
  EXPECT_EQ(types(failed), (std::vector<std::string>{"upload.created@a"}));
  for (const auto& d : failed) store_->delivery_succeeded(d.seq, util::now_micros());
  EXPECT_EQ(types(claim()), (std::vector<std::string>{"upload.failed@a"}));

  // For operators: the dead one listed, tried again; the disabled endpoint enabled.
  const auto dead = store_->list_deliveries(DeliveryStatus::dead, std::nullopt, 10);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].seq, to_b.seq);
  EXPECT_EQ(dead[0].last_error, "HTTP 500 for too long");
  EXPECT_EQ(dead[0].event_type, "upload.completed");
  EXPECT_EQ(store_->list_deliveries(std::nullopt, std::nullopt, 100).size(), 10u);
  const auto newest = store_->list_deliveries(std::nullopt, std::nullopt, 2);
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_GT(newest[0].seq, newest[1].seq);
  EXPECT_EQ(store_->list_deliveries(std::nullopt, newest[1].seq, 100).size(), 8u) << "the next page";
  EXPECT_EQ(store_->retry_deliveries(std::nullopt, util::now_micros()), 1);
  EXPECT_EQ(store_->count_deliveries(DeliveryStatus::dead), 0);
  EXPECT_EQ(store_->retry_deliveries(dead[0].event_id, util::now_micros()), 1) << "b's: a's was delivered";
  ASSERT_EQ(store_->disabled_endpoints().size(), 1u);
  EXPECT_EQ(store_->disabled_endpoints()[0].url, endpoints[1]);
  EXPECT_TRUE(store_->enable_endpoint(endpoints[1]));
  EXPECT_FALSE(store_->enable_endpoint(endpoints[1]));
  store_->disable_endpoint(endpoints[1], now, "410 Gone");  // as the rest of this test expects

  // Delivered ones are pruned after their retention; only the types asked for are recorded.
  EXPECT_EQ(store_->prune_deliveries(util::now_micros() + 1, 1000), 5);
  // Pending: the claimed upload.failed, the completion to b tried again,
  // and three more for b (disabled), kept for when it is enabled.
  EXPECT_EQ(store_->count_deliveries(DeliveryStatus::pending), 5);
  store_->record_events(endpoints, {"upload.completed"});
  store_->create_pending(pending_upload(alice.id));
  EXPECT_EQ(store_->count_deliveries(DeliveryStatus::pending), 5);
  store_->record_events({}, {"upload.created"});
  store_->create_pending(pending_upload(alice.id));
  EXPECT_EQ(store_->count_deliveries(DeliveryStatus::pending), 5);
}

TEST_P(MetadataStoreContract, DeliveriesRecordedHereAreHandedToThisDeliverer) {
  const auto alice = store_->create_user("alice", false);
  const std::string endpoint = "http://127.0.0.1:1/a";
  store_->record_events({endpoint}, {"upload.created", "upload.completed"});
  std::vector<WebhookDelivery> handed;
  store_->hand_claimed_to([&](std::vector<WebhookDelivery> claimed) {
    for (auto& d : claimed) handed.push_back(std::move(d));
  }, 60'000'000);
  const auto claim = [&] {
    return store_->claim_deliveries(util::now_micros(), util::now_micros() + 60'000'000, 100);
  };
  const auto completed = [&](Upload u) {
    u.file_size = 1;
    u.content_type = "text/plain";
    u.sha256 = std::string(64, 'b');
    u.completed_at = util::now_micros();
    return u;
  };

  // Recorded: claimed in the same transaction and handed over, not left for a claim.
  auto u = pending_upload(alice.id, "first.txt");
  store_->create_pending(u);
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0].event_type, "upload.created");
  EXPECT_EQ(handed[0].attempts, 1);
  EXPECT_EQ(handed[0].upload.id, u.id);
  EXPECT_TRUE(claim().empty()) << "claimed by the deliverer it was handed to";

  // The completion waits (held) for the creation still under way...
  ASSERT_TRUE(store_->mark_complete(completed(u)));
  EXPECT_EQ(handed.size(), 1u);
  EXPECT_TRUE(claim().empty());
  EXPECT_EQ(store_->release_held_deliveries(), 0) << "its wait is not over";
  // ...and is handed over by the delivery that ends its wait.
  store_->delivery_succeeded(handed[0].seq, util::now_micros());
  ASSERT_EQ(handed.size(), 2u);
  EXPECT_EQ(handed[1].event_type, "upload.completed");
  EXPECT_EQ(handed[1].attempts, 1);
  EXPECT_TRUE(claim().empty());
  store_->delivery_succeeded(handed[1].seq, util::now_micros());

  // Nothing before it pending: handed over at once.
  auto v = pending_upload(alice.id, "second.txt");
  store_->create_pending(v);
  ASSERT_EQ(handed.size(), 3u);
  store_->delivery_succeeded(handed[2].seq, util::now_micros());
  ASSERT_TRUE(store_->mark_complete(completed(v)));
  ASSERT_EQ(handed.size(), 4u);
  EXPECT_EQ(handed[3].event_type, "upload.completed");
  store_->delivery_succeeded(handed[3].seq, util::now_micros());

  // A dead delivery releases what waited behind it, too.
  auto w = pending_upload(alice.id, "third.txt");
  store_->create_pending(w);
  ASSERT_EQ(handed.size(), 5u);
  ASSERT_TRUE(store_->mark_complete(completed(w)));
  store_->delivery_failed(handed[4].seq, std::nullopt, "HTTP 500 for too long");
  ASSERT_EQ(handed.size(), 6u);
  EXPECT_EQ(handed[5].upload.id, w.id);
  EXPECT_EQ(handed[5].event_type, "upload.completed");

  // A disabled endpoint's deliveries are held until it is enabled; then a
  // claim finds them.
  store_->disable_endpoint(endpoint, util::now_micros(), "410 Gone");
  store_->create_pending(pending_upload(alice.id, "fourth.txt"));
  EXPECT_EQ(handed.size(), 6u);
  EXPECT_TRUE(claim().empty());
  EXPECT_TRUE(store_->enable_endpoint(endpoint));
  const auto after_enable = claim();
  ASSERT_EQ(after_enable.size(), 1u) << "the fourth's creation (the third's completion is still claimed)";
  EXPECT_EQ(after_enable[0].upload.file_name, "fourth.txt");

  // Handed to a deliverer with no room for it: given back, due for a claim.
  auto y = pending_upload(alice.id, "sixth.txt");
  store_->create_pending(y);
  ASSERT_EQ(handed.size(), 7u);
  store_->unclaim_deliveries({handed[6].seq}, util::now_micros());
  const auto given_back = claim();
  ASSERT_EQ(given_back.size(), 1u);
  EXPECT_EQ(given_back[0].upload.id, y.id);
  EXPECT_EQ(given_back[0].attempts, 1) << "a claim that was given back is no attempt";
  store_->delivery_succeeded(given_back[0].seq, util::now_micros());

  // No deliverer here any more: what is recorded waits for a claim.
  store_->hand_claimed_to(nullptr, 0);
  auto x = pending_upload(alice.id, "fifth.txt");
  store_->create_pending(x);
  EXPECT_EQ(handed.size(), 7u);
  const auto claimed = claim();
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].upload.id, x.id);
  EXPECT_EQ(claimed[0].attempts, 1);
}

TEST_P(MetadataStoreContract, AUsersDeletionRecordsTheFailuresItMakes) {
  store_->record_events({"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"}, {"upload.failed"});
  const auto bob = store_->create_user("bob", false);
  auto unfinished = pending_upload(bob.id, "in-flight.bin");
  store_->create_pending(unfinished);
  auto done = pending_upload(bob.id, "done.bin");
  store_->create_pending(done);
  ASSERT_TRUE(store_->mark_complete(done));
  ASSERT_TRUE(store_->begin_user_deletion("bob", util::now_micros()));
  std::vector<std::string> seen;
  for (const auto& e : store_->list_deliveries(std::nullopt, std::nullopt, 100)) {
    seen.push_back(e.event_type + "@" + e.endpoint.substr(e.endpoint.size() - 1) + (e.upload_id == unfinished.id ? "" : "?"));
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"upload.failed@a", "upload.failed@b"}));
  ASSERT_TRUE(store_->begin_user_deletion("bob", util::now_micros()));  // again: nothing more
  EXPECT_EQ(store_->count_deliveries(DeliveryStatus::pending), 2);
}

TEST_P(MetadataStoreContract, DeletingUploadsAndDisablingUsers) {
  const auto alice = store_->create_user("alice", false);
  auto u = pending_upload(alice.id);
  store_->create_pending(u);
  store_->mark_complete(u);
  EXPECT_TRUE(store_->delete_upload(u.id));
  EXPECT_FALSE(store_->delete_upload(u.id));
  EXPECT_FALSE(store_->get_upload(u.id));
  EXPECT_FALSE(store_->delete_upload("not-a-uuid"));
  EXPECT_TRUE(store_->list_files({.user_id = alice.id, .limit = 10}).empty());

  EXPECT_FALSE(store_->find_user("alice")->disabled);
  EXPECT_TRUE(store_->set_user_disabled("alice", true));
  EXPECT_TRUE(store_->find_user("alice")->disabled);
  ApiToken t{"tok_00000000000000aa", alice.id, "alice", "", util::now_micros(), {}, {}};
  store_->create_token(t, "hash-disabled");
  EXPECT_TRUE(store_->find_token("hash-disabled")->user.disabled);
  EXPECT_TRUE(store_->set_user_disabled("alice", false));
  EXPECT_FALSE(store_->find_user("alice")->disabled);
  EXPECT_FALSE(store_->set_user_disabled("nobody", true));
}

TEST_P(MetadataStoreContract, OnlyOneHolderOfANamedLock) {
  // Two instances on one database: the second cannot take the lock until the
  // first lets go.
  auto other = open_metadata_store(url_, 1);
  auto held = store_->try_lock("janitor");
  ASSERT_TRUE(held);
  EXPECT_FALSE(other->try_lock("janitor"));
  EXPECT_FALSE(store_->try_lock("janitor")) << "not even the same instance twice";
  auto unrelated = other->try_lock("something-else");
  EXPECT_TRUE(unrelated);
  held.reset();
  EXPECT_TRUE(other->try_lock("janitor"));
}

TEST_P(MetadataStoreContract, QuotaReservationsAreSettledByEveryOutcome) {
  const auto alice = store_->create_user("alice", false);
  EXPECT_FALSE(store_->find_user("alice")->quota_bytes);
  ASSERT_TRUE(store_->set_user_quota("alice", 1000));
  EXPECT_EQ(store_->find_user("alice")->quota_bytes, 1000);
  EXPECT_FALSE(store_->set_user_quota("nobody", 1));
  const auto used = [&] { return store_->find_user("alice")->used_bytes; };

  auto a = pending_upload(alice.id), b = pending_upload(alice.id), c = pending_upload(alice.id);
  for (const auto* u : {&a, &b, &c}) store_->create_pending(*u);
  EXPECT_TRUE(store_->reserve_quota(a.id, alice.id, 600, kNoQuota));
  EXPECT_FALSE(store_->reserve_quota(b.id, alice.id, 500, kNoQuota)) << "600 + 500 > 1000";
  EXPECT_TRUE(store_->reserve_quota(b.id, alice.id, 300, kNoQuota));
  EXPECT_EQ(used(), 900);
  a.file_size = 550;  // a finished smaller than it reserved: the rest is given back
  a.completed_at = util::now_micros();
  EXPECT_TRUE(store_->mark_complete(a));
  EXPECT_EQ(used(), 850);
  EXPECT_TRUE(store_->mark_failed(b.id, util::now_micros()));  // its 300 come back
  EXPECT_EQ(used(), 550);
  EXPECT_TRUE(store_->reserve_quota(c.id, alice.id, 450, kNoQuota));
  EXPECT_FALSE(store_->reserve_quota(c.id, alice.id, 1, kNoQuota)) << "exactly full";
  EXPECT_TRUE(store_->mark_failed(c.id, util::now_micros()));
  EXPECT_TRUE(store_->delete_upload(a.id));
  EXPECT_TRUE(store_->delete_upload(b.id));  // failed: its reservation was already returned
  EXPECT_EQ(used(), 0);
  EXPECT_FALSE(store_->reserve_quota(util::uuid_v7(), alice.id, 1, kNoQuota)) << "no such pending upload";
  EXPECT_EQ(used(), 0);

  // Without a quota of their own, the default applies.
  ASSERT_TRUE(store_->set_user_quota("alice", std::nullopt));
  auto d = pending_upload(alice.id);
  store_->create_pending(d);
  EXPECT_FALSE(store_->reserve_quota(d.id, alice.id, 101, 100));
  EXPECT_TRUE(store_->reserve_quota(d.id, alice.id, 100, 100));
}

TEST_P(MetadataStoreContract, ConcurrentReservationsCannotOvershootTheQuota) {
  const auto alice = store_->create_user("alice", false);
  store_->set_user_quota("alice", 10 * 1024);
  constexpr int kThreads = 8, kEach = 5;
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        const auto u = pending_upload(alice.id);
        store_->create_pending(u);
        if (store_->reserve_quota(u.id, alice.id, 1024, kNoQuota)) ++granted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted, 10);
  EXPECT_EQ(store_->find_user("alice")->used_bytes, 10 * 1024);
}

TEST_P(MetadataStoreContract, AConflictInABatchFailsOnlyItself) {
  // Writes from many threads are group-committed; a duplicate id among them
  // (a conflict) must fail alone, and every other write must land.
  const auto alice = store_->create_user("alice", false);
  auto taken = pending_upload(alice.id);
  store_->create_pending(taken);
  constexpr int kThreads = 16, kEach = 20;
  std::atomic<int> conflicts{0}, other_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto u = (t + i) % 5 == 0 ? taken : pending_upload(alice.id);
        try {
          store_->create_pending(u);
          u.completed_at = util::now_micros();
          if (!store_->mark_complete(u)) ++other_errors;
        } catch (const db::Error& e) {
          (e.failure() == db::Failure::conflict ? conflicts : other_errors)++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other_errors, 0);
  int duplicates = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) duplicates += (t + i) % 5 == 0;
  }
  EXPECT_EQ(conflicts, duplicates);
  EXPECT_EQ(store_->count_uploads(UploadStatus::complete), kThreads * kEach - duplicates);
  EXPECT_EQ(store_->count_uploads(UploadStatus::pending), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, MetadataStoreContract,
                         ::testing::Values(Backend{"sqlite",
                                                   [](const std::filesystem::path& dir, std::shared_ptr<void>&) {
                                                     return "sqlite://" + (dir / "meta.db").string();
                                                   }},
                                           Backend{"postgres",
                                                   [](const std::filesystem::path&, std::shared_ptr<void>& keep) {
                                                     auto db = std::make_shared<testing::TestDatabase>();
                                                     keep = db;
                                                     return db->url();
                                                   }}),
                         [](const auto& info) { return info.param.name; });

// TCP connections to the test server must use TLS (its pg_hba.conf rejects
// the rest): a store connects with verification when asked, and refuses a
// server it cannot verify.
TEST(PostgresTls, VerifiedWhenAskedAndRefusedWithoutTheCa) {
  testing::TestDatabase db;
  auto store = open_metadata_store(db.url(), 1);  // sslmode=verify-full with the test CA
  EXPECT_NE(store->describe().find("TLS on"), std::string::npos) << store->describe();
  EXPECT_EQ(store->describe().find("password"), std::string::npos);
  EXPECT_EQ(store->migrate(), static_cast<int>(migrations_for("postgres").size()));
  std::string plain = db.url();
  plain = plain.substr(0, plain.find('?'));
  EXPECT_THROW(open_metadata_store(plain + "?sslmode=disable", 1), std::runtime_error);
  // verify-full against a CA bundle that did not sign the server's certificate
  EXPECT_THROW(open_metadata_store(plain + "?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt", 1),
               std::runtime_error);
  EXPECT_NO_THROW(open_metadata_store(plain + "?sslmode=require", 1));
}

TEST(PostgresUrl, LibpqKeywordStringsAndEnvironmentWork) {
  testing::TestDatabase db;
  const std::string url = testing::required_env("S3UP_TEST_PG_URL");  // postgresql://postgres@127.0.0.1:PORT/postgres
  const auto at = url.find('@'), colon = url.rfind(':'), slash = url.rfind('/');
  const std::string host = url.substr(at + 1, colon - at - 1), port = url.substr(colon + 1, slash - colon - 1);
  auto store =
      open_metadata_store("host=" + host + " port=" + port + " user=postgres dbname=" + db.name() +
                              " sslmode=verify-full sslrootcert=" + testing::required_env("S3UP_TEST_PG_CA_FILE"),
                          1);
  EXPECT_NE(store->describe().find("/" + db.name()), std::string::npos) << store->describe();
  EXPECT_THROW(open_metadata_store("mysql://nope", 1), std::invalid_argument);
}

}  // namespace
}  // namespace s3up::db
