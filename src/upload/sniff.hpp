#pragma once
// Content sniffing with libmagic: the MIME type of a file from its first bytes.
#include <string>
#include <string_view>

namespace s3up::upload {

// How many leading bytes are worth sniffing; libmagic looks at most at the
// first few KiB for the types that matter here.
inline constexpr std::size_t kSniffBytes = 4096;

// What the answer is for, which decides how hard to look.
enum class SniffPurpose {
  // A decision (allowed_types): every libmagic test, so a text file is told
  // apart as HTML, SVG, a script... whatever it costs.
  decide,
  // A label for a file whose client named no type: binary data gets every
  // test, text only libmagic's cheap ones (plain text, JSON, CSV). Its
  // pattern tests on text cost ~0.5 ms per KiB and would only rename a file
  // that is served as an attachment with nosniff anyway.
  label,
};

// The MIME type (no parameters) of data that starts with `head`;
// "application/octet-stream" when libmagic cannot tell or the data is empty.
// Blocking (libmagic is slow-ish): call from the blocking pool.
std::string sniff_mime_type(std::string_view head, SniffPurpose purpose = SniffPurpose::decide);

}  // namespace s3up::upload
