// The multipart/form-data parser, fed the same body whole and split where
// the fuzzer says: both readings must give the same parts, bytes and error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "http/multipart_parser.hpp"

namespace {

using s3up::http::MultipartParser;

// Everything a reading produced: the parts' headers and data, in order,
// and how it ended.
struct Reading {
  std::string transcript;
  std::error_code error;
};

Reading read(std::string_view body, const std::vector<std::size_t>& cuts) {
  MultipartParser parser("XyZ-boundary");
  Reading r;
  std::vector<MultipartParser::Event> events;
  std::size_t at = 0;
  for (std::size_t i = 0; i <= cuts.size() && !r.error; ++i) {
    const std::size_t end = i < cuts.size() ? std::min(body.size(), at + cuts[i]) : body.size();
    r.error = parser.feed({body.data() + at, end - at}, events);
    for (const auto& e : events) {
      switch (e.kind) {
        case MultipartParser::EventKind::part_begin:
          r.transcript += "[begin " + e.part.name + "|" + e.part.filename.value_or("<none>") + "|" +
                          e.part.content_type + "]";
          break;
        case MultipartParser::EventKind::data: r.transcript.append(e.data.data(), e.data.size()); break;
        case MultipartParser::EventKind::part_end: r.transcript += "[end]"; break;
      }
    }
    at = end;
  }
  if (!r.error) r.error = parser.finish();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The first bytes choose the chunk sizes (1 to 16 each), the rest is the body.
  const std::size_t n_cuts = size > 0 ? data[0] % 8 : 0;
  if (size < 1 + n_cuts) return 0;
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < n_cuts; ++i) cuts.push_back(1 + data[1 + i] % 16);
  const std::string_view body(reinterpret_cast<const char*>(data) + 1 + n_cuts, size - 1 - n_cuts);
  const Reading whole = read(body, {});
  const Reading split = read(body, cuts);
  if (whole.error != split.error || (!whole.error && whole.transcript != split.transcript)) __builtin_trap();
  s3up::http::form_data_boundary(body.substr(0, std::min<std::size_t>(body.size(), 200)));
  return 0;
}
