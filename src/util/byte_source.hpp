#pragma once
// A stream of bytes pulled in pieces, and the failures that are a request's
// own doing. Both sit this low so every layer can use them without knowing
// where the bytes come from: the upload engine reads a file from a
// ByteSource, and the HTTP layer's request body is one.
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include <boost/asio/awaitable.hpp>

namespace s3up::util {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // The next piece (valid until the next call); empty at the end.
  virtual boost::asio::awaitable<std::span<const char>> read_some() = 0;

  // Reading in place, for a source that can put its bytes straight into
  // the caller's memory (a request body of known length): how many bytes
  // are still to come, or nullopt if it cannot. Then read_into() fills at
  // most `room.size()` of them into `room` (at least one while any are
  // left) instead of read_some(); the two are not mixed.
  virtual std::optional<std::uint64_t> left_to_read_in_place() const { return std::nullopt; }
  virtual boost::asio::awaitable<std::size_t> read_into(std::span<char> room) {
    throw std::logic_error("this source cannot read in place");
    co_return room.size();
  }
};

// A request ended by a rule it broke or by its client (a refused upload, a
// client that went away), not by a fault of the service: logged in one line
// at info, never as an error.
class RequestFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace s3up::util
