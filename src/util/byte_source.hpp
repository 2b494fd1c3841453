#pragma once
// A stream of bytes pulled in pieces, and the failures that are a request's
// own doing. Both sit this low so every layer can use them without knowing
// where the bytes come from: the upload engine reads a file from a
// ByteSource, and the HTTP layer's request body is one.
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
};

// A request ended by a rule it broke or by its client (a refused upload, a
// client that went away), not by a fault of the service: logged in one line
// at info, never as an error.
class RequestFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace s3up::util
