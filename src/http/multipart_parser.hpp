#pragma once
// An incremental multipart/form-data parser (RFC 7578 / RFC 2046 §5.1).
//
// It is fed the body in chunks of any size, split anywhere, and turns each chunk
// into a list of events (a part begins, part data, a part ends). Part data is
// never accumulated: each Data event points into the chunk just fed (or into a
// few bytes the parser held back because they might have been the start of a
// boundary). Events stay valid until the next call to feed().
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace s3up::http {

enum class multipart_errc {
  bad_boundary = 1,  // Content-Type has no usable boundary parameter
  bad_delimiter,     // a boundary line is followed by neither CRLF nor "--"
  header_too_large,  // a part's header block exceeds the limit
  bad_part_header,   // a header line or its Content-Disposition is malformed
  unexpected_end,    // the body ended before the closing boundary
};
std::error_code make_error_code(multipart_errc e);

// The boundary of a `multipart/form-data; boundary=...` Content-Type, or
// nullopt if the type is different or the boundary missing or invalid.
std::optional<std::string> form_data_boundary(std::string_view content_type);

struct MultipartPart {
  std::string name;                     // the form field's name
  std::optional<std::string> filename;  // present for file fields
  std::string content_type;             // as sent; empty if the part had none
};

class MultipartParser {
 public:
  enum class EventKind { part_begin, data, part_end };
  struct Event {
    EventKind kind;
    std::span<const char> data;  // for data events
    MultipartPart part;          // for part_begin events
  };

  // "A part's header block": RFC 7578 sets no limit; 16 KiB is generous for a
  // Content-Disposition and a Content-Type.
  static constexpr std::size_t max_header_block = 16 * 1024;

  explicit MultipartParser(std::string boundary);
  MultipartParser(const MultipartParser&) = delete;  // searcher_ points into delimiter_
  MultipartParser& operator=(const MultipartParser&) = delete;

  // Parses one more chunk, appending its events to `out` (cleared first).
  std::error_code feed(std::span<const char> chunk, std::vector<Event>& out);
  // The body ended: an error unless the closing boundary has been seen.
  std::error_code finish() const;
  bool done() const { return state_ == State::epilogue; }

 private:
  enum class State { preamble, body, after_delimiter, expect_dash, expect_lf, headers, epilogue, failed };

  std::error_code scan_for_delimiter(std::span<const char>& in, std::vector<Event>& out);
  void emit_data(std::span<const char> data, std::vector<Event>& out);
  std::error_code parse_headers(std::vector<Event>& out);

  std::string delimiter_;  // "\r\n--" + boundary
  // Boyer-Moore-Horspool skips up to the delimiter's length per step over file
  // bytes, several times faster than memmem on binary data.
  std::boyer_moore_horspool_searcher<std::string::const_iterator> searcher_;
  State state_ = State::preamble;
  std::string held_;     // a proper prefix of delimiter_ seen at the end of the last chunk
  std::string scratch_;  // held-back bytes released as data in this feed()
  std::string header_block_;
};

}  // namespace s3up::http

template <>
struct std::is_error_code_enum<s3up::http::multipart_errc> : std::true_type {};
