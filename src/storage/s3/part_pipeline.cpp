#include "storage/s3/part_pipeline.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace s3up::storage::s3 {

namespace asio = boost::asio;

PartDigest::PartDigest(PartChecksum checksum)
    : checksum_(checksum), hash_(util::NamedHash::make(spec_of(checksum).name)) {}

void PartDigest::update(std::string_view data) { hash_->update(data); }

void PartDigest::finish_into(PartUpload& part) {
  const std::string digest = hash_->finish();
  hash_ = util::NamedHash::make(spec_of(checksum_).name);
  part.checksum_kind = checksum_;
  if (checksum_ == PartChecksum::sha256) {
    part.payload_hash = util::to_hex(digest);
    return;
  }
  part.payload_hash = std::string(kUnsignedPayload);
  part.checksum = util::base64(digest);
}

using Done = asio::experimental::concurrent_channel<void(boost::system::error_code)>;

// What the pipeline shares with its part uploads in flight, which may
// outlive it (a writer dropped while parts are on the wire).
struct PartPipeline::Shared {
  Shared(std::shared_ptr<Client> c, std::string k, std::string id, std::size_t capacity)
      : client(std::move(c)), key(std::move(k)), upload_id(std::move(id)), done(client->executor(), capacity) {}
  std::shared_ptr<Client> client;
  std::string key;
  std::string upload_id;
  std::mutex mutex;
  std::vector<CompletedPart> stored;  // landed since the writer last asked
  std::exception_ptr failure;         // the first part that failed
  Done done;                          // one message per part that finished
};

PartPipeline::PartPipeline(std::shared_ptr<Client> client, std::string key, std::string upload_id, int max_in_flight)
    : shared_(std::make_shared<Shared>(std::move(client), std::move(key), std::move(upload_id),
                                       static_cast<std::size_t>(max_in_flight) + 1)),
      max_in_flight_(max_in_flight) {}

PartPipeline::~PartPipeline() = default;

namespace {

struct PartJob {
  PartUpload part;
  util::BufferPool::Buffer buffer;  // the part's bytes; freed when the job ends
};

}  // namespace

// (A function, not a lambda: the coroutine frame then owns its arguments.)
static asio::awaitable<void> send_part(std::shared_ptr<PartPipeline::Shared> shared, std::shared_ptr<PartJob> job) {
  const auto started = std::chrono::steady_clock::now();
  CompletedPart stored;
  stored.etag = co_await shared->client->upload_part(job->part);
  stored.number = job->part.number;
  if (is_flexible(job->part.checksum_kind)) stored.checksum = job->part.checksum;
  spdlog::debug(
      "s3 {} part {}: {} bytes sent in {} ms", shared->key, stored.number, job->part.body.size(),
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  std::lock_guard lock(shared->mutex);
  shared->stored.push_back(std::move(stored));
}

asio::awaitable<void> PartPipeline::send(int number, util::BufferPool::Buffer buffer, std::size_t size,
                                         PartDigest& digest) {
  rethrow_failure();
  while (in_flight_ >= max_in_flight_) co_await wait_one();
  rethrow_failure();
  auto job = std::make_shared<PartJob>();
  job->part.key = shared_->key;
  job->part.upload_id = shared_->upload_id;
  job->part.number = number;
  job->part.body = std::span<const char>(buffer.data(), size);
  job->buffer = std::move(buffer);
  digest.finish_into(job->part);
  auto shared = shared_;
  ++in_flight_;
  asio::co_spawn(shared->client->executor(), send_part(shared, std::move(job)), [shared](std::exception_ptr e) {
    if (e) {
      std::lock_guard lock(shared->mutex);
      if (!shared->failure) shared->failure = e;
    }
    shared->done.try_send(boost::system::error_code{});
  });
}

void PartPipeline::rethrow_failure() {
  std::lock_guard lock(shared_->mutex);
  if (shared_->failure) std::rethrow_exception(shared_->failure);
}

void PartPipeline::take_stored(std::vector<CompletedPart>& parts) {
  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->failure) std::rethrow_exception(shared_->failure);
    for (auto& part : shared_->stored) out_of_order_.emplace(part.number, std::move(part));
    shared_->stored.clear();
  }
  for (auto it = out_of_order_.find(static_cast<int>(parts.size()) + 1); it != out_of_order_.end();
       it = out_of_order_.find(static_cast<int>(parts.size()) + 1)) {
    parts.push_back(std::move(it->second));
    out_of_order_.erase(it);
  }
}

asio::awaitable<void> PartPipeline::wait_one() {
  co_await shared_->done.async_receive(asio::use_awaitable);
  --in_flight_;
}

asio::awaitable<void> PartPipeline::drain() {
  while (in_flight_ > 0) co_await wait_one();
}

asio::awaitable<void> PartPipeline::quiesce() noexcept {
  while (in_flight_ > 0) {
    try {
      co_await wait_one();
    } catch (const std::exception&) {
    }
  }
}

void PartPipeline::abandon() {
  auto shared = shared_;
  const int in_flight = in_flight_;
  in_flight_ = 0;
  asio::co_spawn(
      shared->client->executor(),
      [shared, in_flight]() -> asio::awaitable<void> {
        for (int i = 0; i < in_flight; ++i) co_await shared->done.async_receive(asio::use_awaitable);
        co_await shared->client->abort_multipart_upload(shared->key, shared->upload_id);
        spdlog::info("s3: aborted abandoned multipart upload of {}", shared->key);
      },
      [shared](std::exception_ptr e) {
        // The row is still pending: the janitor aborts it once it is stale.
        if (e) {
          spdlog::warn("s3: aborting the abandoned multipart upload of {} failed; the janitor will retry", shared->key);
        }
      });
}

}  // namespace s3up::storage::s3
