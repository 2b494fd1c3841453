// The server's reading of a request head (http/request_head, as server.cpp
// uses it on every connection): Beast's parser as the server sets it up,
// RFC 9112's framing rules, the empty line before a request, the target in
// origin form. Whatever the bytes, the outcome is one of three; an accepted
// head, written out again and read again, is accepted the same.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include <boost/beast/http/write.hpp>

#include "http/request_head.hpp"

namespace {

constexpr std::size_t kMaxHead = 8 * 1024;  // small, so the limit is reached too

std::string written(const s3up::http::RequestHeader& head) {
  std::ostringstream out;
  out << head;  // Beast writes the request line and fields, then the empty line
  return out.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using s3up::http::HeadReading;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const HeadReading first = s3up::http::read_request_head(bytes, kMaxHead);
  if (first.consumed > size) __builtin_trap();
  if (first.outcome == HeadReading::Outcome::refused && !first.refusal) __builtin_trap();
  if (first.outcome != HeadReading::Outcome::accepted) return 0;

  const auto& head = first.head;
  const std::string_view target = head.target();
  if (target.find('#') != std::string_view::npos) __builtin_trap();  // fragments never reach a route
  if (head.count(boost::beast::http::field::host) > 1) __builtin_trap();
  if (head.count(boost::beast::http::field::authorization) > 1) __builtin_trap();

  // The head as the server understood it reads back the same.
  const std::string again = written(head);
  if (again.size() >= kMaxHead) return 0;
  const HeadReading second = s3up::http::read_request_head(again, kMaxHead);
  if (second.outcome != HeadReading::Outcome::accepted) __builtin_trap();
  if (second.head.method_string() != head.method_string() || second.head.target() != head.target() ||
      second.head.version() != head.version()) {
    __builtin_trap();
  }
  if (written(second.head) != again) __builtin_trap();
  return 0;
}
