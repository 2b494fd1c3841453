#pragma once
// What the files API reads from a request, apart from the handlers (and fuzzed
// apart from them, tests/fuzz): the listing's page cursor and the Range and
// If-None-Match headers of a download.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "db/metadata_store.hpp"

namespace s3up::api {

// The page cursor is opaque to clients: the listing's order and the last
// row's key in it, base64url. "1:" cursors (newest first, before there were
// other orders) still work.
struct Cursor {
  db::FileListing::Order order = db::FileListing::Order::created;
  bool descending = true;
  db::FileListing::After after;
};
std::string encode_cursor(const db::FileListing& listing, const db::Upload& last);
std::optional<Cursor> decode_cursor(std::string_view cursor);

struct ByteRange {
  std::uint64_t first = 0, last = 0;  // inclusive
};
// RFC 9110 §14: "bytes=a-b", "bytes=a-", "bytes=-n". nullopt means serve
// the whole object (no Range, another unit, several ranges, or a malformed
// one, all of which a server may ignore); throws ApiError
// range_not_satisfiable (with the object's size in Content-Range) when the
// range lies wholly past the end.
std::optional<ByteRange> parse_range(std::string_view header, std::uint64_t size, std::string_view etag);

// If-None-Match: "*" or a list of entity tags, weak ones compared weakly.
bool none_match(std::string_view header, std::string_view etag);

}  // namespace s3up::api
