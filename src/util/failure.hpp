#pragma once
// An error that says which of a layer's failures it is: each layer names its
// own kinds (storage::Failure, db::Failure, upload::Failure) and throws
// KindedError<its Failure>; only the API turns them into statuses.
#include <stdexcept>
#include <string>

namespace s3up::util {

template <class Kind, class Base = std::runtime_error>
class KindedError : public Base {
 public:
  KindedError(Kind failure, const std::string& message) : Base(message), failure_(failure) {}
  Kind failure() const { return failure_; }

 private:
  Kind failure_;
};

}  // namespace s3up::util
