// What the files API reads from a request (file_requests.hpp).
#include "api/file_requests.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "api/error.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"

namespace s3up::api {

namespace {

char order_letter(db::FileListing::Order order) {
  switch (order) {
    case db::FileListing::Order::created: return 'c';
    case db::FileListing::Order::name: return 'n';
    case db::FileListing::Order::size: return 's';
  }
  return 'c';
}

}  // namespace

std::string encode_cursor(const db::FileListing& listing, const db::Upload& last) {
  std::string key;
  switch (listing.order) {
    case db::FileListing::Order::created: key = std::to_string(last.created_at); break;
    case db::FileListing::Order::name: key = last.file_name; break;
    case db::FileListing::Order::size: key = std::to_string(last.file_size); break;
  }
  // The key goes last: a name may hold any character.
  return util::base64url(
      fmt::format("2:{}{}:{}:{}", order_letter(listing.order), listing.descending ? 'd' : 'a', last.id, key));
}

std::optional<Cursor> decode_cursor(std::string_view cursor) {
  const auto raw = util::base64url_decode(cursor);
  if (!raw) return std::nullopt;
  const std::string_view text(*raw);
  Cursor c;
  std::string_view key;
  if (text.starts_with("1:")) {  // 1:<created_at>:<id>
    const auto colon = text.find(':', 2);
    if (colon == std::string_view::npos) return std::nullopt;
    key = text.substr(2, colon - 2);
    c.after.upload_id = text.substr(colon + 1);
  } else if (text.starts_with("2:") && text.size() > 5 && text[4] == ':') {  // 2:<order><a|d>:<id>:<key>
    const char order = text[2];
    const char direction = text[3];
    if (order == 'n') {
      c.order = db::FileListing::Order::name;
    } else if (order == 's') {
      c.order = db::FileListing::Order::size;
    } else if (order != 'c') {
      return std::nullopt;
    }
    if (direction != 'a' && direction != 'd') return std::nullopt;
    c.descending = direction == 'd';
    const auto colon = text.find(':', 5);
    if (colon == std::string_view::npos) return std::nullopt;
    c.after.upload_id = text.substr(5, colon - 5);
    key = text.substr(colon + 1);
  } else {
    return std::nullopt;
  }
  if (!util::is_uuid(c.after.upload_id)) return std::nullopt;
  if (c.order == db::FileListing::Order::name) {
    c.after.file_name = key;
    return c;
  }
  const auto number = util::parse_integer<std::int64_t>(key);
  if (!number) return std::nullopt;
  (c.order == db::FileListing::Order::created ? c.after.created_at : c.after.file_size) = *number;
  return c;
}

namespace {

// A position in a Range header: digits, and a number too large for 64 bits
// is still a number (past any object's end), not a malformed range.
std::optional<std::uint64_t> range_position(std::string_view digits) {
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  return util::parse_integer<std::uint64_t>(digits).value_or(UINT64_MAX);
}

}  // namespace

std::optional<ByteRange> parse_range(std::string_view header, std::uint64_t size, std::string_view etag) {
  const auto unsatisfiable = [&] {
    return ApiError(errc::range_not_satisfiable, "range not satisfiable",
                    {{"Content-Range", fmt::format("bytes */{}", size)},
                     {"ETag", std::string(etag)},
                     {"Cache-Control", "private, no-cache"}});
  };
  header = util::trim(header);
  if (!header.starts_with("bytes=")) return std::nullopt;
  const std::string_view spec = util::trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return std::nullopt;
  const auto dash = spec.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const std::string_view a_text = util::trim(spec.substr(0, dash)), b_text = util::trim(spec.substr(dash + 1));
  const auto a = range_position(a_text), b = range_position(b_text);
  const bool a_given = !a_text.empty(), b_given = !b_text.empty();
  if ((a_given && !a) || (b_given && !b)) return std::nullopt;  // malformed: ignored
  if (!a_given) {                                               // suffix: the last n bytes
    if (!b) return std::nullopt;
    if (*b == 0 || size == 0) throw unsatisfiable();
    return ByteRange{size - std::min(*b, size), size - 1};
  }
  if (b && *b < *a) return std::nullopt;  // malformed: ignored
  if (*a >= size) throw unsatisfiable();
  return ByteRange{*a, b ? std::min(*b, size - 1) : size - 1};
}

bool none_match(std::string_view header, std::string_view etag) {
  header = util::trim(header);
  if (header == "*") return true;
  std::size_t pos = 0;
  while (pos < header.size()) {
    auto comma = header.find(',', pos);
    if (comma == std::string_view::npos) comma = header.size();
    std::string_view tag = util::trim(header.substr(pos, comma - pos));
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
    pos = comma + 1;
  }
  return false;
}

}  // namespace s3up::api
