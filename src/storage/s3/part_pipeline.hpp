#pragma once
// The parts of one multipart upload on their way to the store: each part's
// memory comes from the process's buffer budget (the writer acquires it),
// up to K parts are sent at once, their ETags come back in any order and
// are handed out in part order, and the first failure is kept and rethrown
// to the writer. Both kinds of S3 upload (single-shot and resumable) send
// their parts through it.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include "storage/s3/s3_client.hpp"
#include "util/buffer_pool.hpp"
#include "util/crypto.hpp"

namespace s3up::storage::s3 {

// The running digest of the part being filled, in the form the store will
// check it by (PartChecksum says which).
class PartDigest {
 public:
  explicit PartDigest(PartChecksum checksum);
  void update(std::string_view data);
  // The finished digest, as the part's payload hash or checksum header; the
  // digest starts over for the next part.
  void finish_into(PartUpload& part);

 private:
  PartChecksum checksum_;
  std::unique_ptr<util::NamedHash> hash_;
};

class PartPipeline {
 public:
  // The parts of `upload_id` for `key`, at most `max_in_flight` at once.
  PartPipeline(std::shared_ptr<Client> client, std::string key, std::string upload_id, int max_in_flight);
  // Parts still in flight finish on their own (their memory goes back then).
  ~PartPipeline();
  PartPipeline(const PartPipeline&) = delete;
  PartPipeline& operator=(const PartPipeline&) = delete;

  // Sends part `number` (`size` bytes of `buffer`, its digest taken from
  // `digest`) in the background, once fewer than K parts are in flight.
  // Rethrows an earlier part's failure first.
  boost::asio::awaitable<void> send(int number, util::BufferPool::Buffer buffer, std::size_t size, PartDigest& digest);
  // Appends to `parts` the parts that are stored and follow on from it
  // without a gap (part parts.size() + 1, + 2, ...). Rethrows the first
  // failure of a part.
  void take_stored(std::vector<CompletedPart>& parts);
  // Every part sent so far has landed or failed (take_stored tells which).
  boost::asio::awaitable<void> drain();
  // drain() that never throws: for a writer about to hand the upload on.
  boost::asio::awaitable<void> quiesce() noexcept;
  // Aborts the multipart upload in the background once the parts in flight
  // have landed (a writer dropped unfinished).
  void abandon();

  struct Shared;  // with the part uploads in flight

 private:
  boost::asio::awaitable<void> wait_one();
  void rethrow_failure();

  std::shared_ptr<Shared> shared_;
  int max_in_flight_;
  int in_flight_ = 0;
  std::map<int, CompletedPart> out_of_order_;  // stored parts after a gap (an earlier one still in flight)
};

}  // namespace s3up::storage::s3
