#include "http/multipart_parser.hpp"
#include "util/header_value.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace s3up::http {
namespace {

class MultipartCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "multipart"; }
  std::string message(int ev) const override {
    switch (static_cast<multipart_errc>(ev)) {
      case multipart_errc::bad_boundary: return "missing or invalid multipart boundary";
      case multipart_errc::bad_delimiter: return "malformed multipart boundary line";
      case multipart_errc::header_too_large: return "multipart part headers too large";
      case multipart_errc::bad_part_header: return "malformed multipart part header";
      case multipart_errc::unexpected_end: return "multipart body ended before the closing boundary";
    }
    return "multipart error";
  }
};

using util::trim;
std::string lower(std::string_view s) { return util::ascii_lower(s); }

}  // namespace

std::error_code make_error_code(multipart_errc e) {
  static const MultipartCategory category;
  return {static_cast<int>(e), category};
}

std::optional<std::string> form_data_boundary(std::string_view content_type) {
  auto hv = util::parse_header_value(content_type);
  if (!hv || hv->value != "multipart/form-data") return std::nullopt;
  auto it = hv->params.find("boundary");
  // RFC 2046: "boundary := 0*69<bchars> bcharsnospace", so 1..70 characters.
  if (it == hv->params.end() || it->second.empty() || it->second.size() > 70) return std::nullopt;
  return it->second;
}

MultipartParser::MultipartParser(std::string boundary)
    : delimiter_("\r\n--" + std::move(boundary)),
      searcher_(delimiter_.cbegin(), delimiter_.cend()),
      // The first boundary may open the body without a preceding CRLF: pretend
      // one was just seen, so one delimiter search serves both cases.
      held_("\r\n") {}

void MultipartParser::emit_data(std::span<const char> data, std::vector<Event>& out) {
  if (data.empty() || state_ == State::preamble) return;  // preamble is discarded
  out.push_back(Event{EventKind::data, data, {}});
}

// Consumes bytes of `in` until a full delimiter has been consumed (returns with
// state_ = after_delimiter) or `in` is exhausted (a possible delimiter prefix is
// kept in held_).
std::error_code MultipartParser::scan_for_delimiter(std::span<const char>& in, std::vector<Event>& out) {
  const std::size_t D = delimiter_.size();
  const auto finish_part = [&]() {
    if (state_ == State::body) out.push_back(Event{EventKind::part_end, {}, {}});
    state_ = State::after_delimiter;
  };

  if (!held_.empty()) {
    // Held bytes plus up to D-1 new bytes contain every delimiter that could
    // start inside the held bytes.
    scratch_ = held_;
    const std::size_t take = std::min(in.size(), D - 1);
    scratch_.append(in.data(), take);
    const std::size_t held_size = held_.size();
    held_.clear();
    const auto pos = scratch_.find(delimiter_);
    if (pos != std::string::npos) {
      emit_data({scratch_.data(), pos}, out);
      in = in.subspan(pos + D - held_size);
      finish_part();
      return {};
    }
    if (take < in.size()) {
      // No delimiter starts within the held bytes: they are plain data.
      emit_data({scratch_.data(), held_size}, out);
    } else {
      // All of `in` fits in scratch_: keep any suffix that may begin a delimiter.
      std::size_t keep_from = scratch_.size();
      for (std::size_t s = scratch_.size() > D - 1 ? scratch_.size() - (D - 1) : 0; s < scratch_.size(); ++s) {
        if (std::memcmp(scratch_.data() + s, delimiter_.data(), scratch_.size() - s) == 0) {
          keep_from = s;
          break;
        }
      }
      emit_data({scratch_.data(), keep_from}, out);
      held_.assign(scratch_, keep_from, std::string::npos);
      in = {};
      return {};
    }
  }

  const auto hit = std::search(in.begin(), in.end(), searcher_);
  if (hit != in.end()) {
    const auto pos = static_cast<std::size_t>(hit - in.begin());
    emit_data(in.first(pos), out);
    in = in.subspan(pos + D);
    finish_part();
    return {};
  }
  // No full delimiter: hold back the longest suffix that is a delimiter prefix.
  std::size_t keep_from = in.size();
  for (std::size_t s = in.size() > D - 1 ? in.size() - (D - 1) : 0; s < in.size(); ++s) {
    if (in[s] == '\r' && std::memcmp(in.data() + s, delimiter_.data(), in.size() - s) == 0) {
      keep_from = s;
      break;
    }
  }
  emit_data(in.first(keep_from), out);
  held_.assign(in.data() + keep_from, in.size() - keep_from);
  in = {};
  return {};
}

std::error_code MultipartParser::parse_headers(std::vector<Event>& out) {
  // header_block_ holds the lines after the boundary line, ending in CRLF CRLF
  // (or just CRLF when the part has no headers).
  MultipartPart part;
  bool have_disposition = false;
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < header_block_.size()) {
    const auto end = header_block_.find("\r\n", start);
    if (end == std::string::npos || end == start) break;
    std::string line = header_block_.substr(start, end - start);
    if ((line[0] == ' ' || line[0] == '\t') && !lines.empty()) {
      lines.back().append(" ").append(trim(line));  // obsolete line folding
    } else {
      lines.push_back(std::move(line));
    }
    start = end + 2;
  }
  for (const auto& line : lines) {
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return multipart_errc::bad_part_header;
    const std::string name = lower(trim(std::string_view(line).substr(0, colon)));
    const std::string_view value = trim(std::string_view(line).substr(colon + 1));
    if (name == "content-disposition") {
      auto hv = util::parse_header_value(value);
      if (!hv || hv->value != "form-data") return multipart_errc::bad_part_header;
      auto n = hv->params.find("name");
      if (n == hv->params.end()) return multipart_errc::bad_part_header;
      part.name = n->second;
      if (auto f = hv->params.find("filename*"); f != hv->params.end()) {
        part.filename = f->second;
      } else if (auto f2 = hv->params.find("filename"); f2 != hv->params.end()) {
        part.filename = f2->second;
      }
      have_disposition = true;
    } else if (name == "content-type") {
      part.content_type = std::string(value);
    }
  }
  if (!have_disposition) return multipart_errc::bad_part_header;
  out.push_back(Event{EventKind::part_begin, {}, std::move(part)});
  return {};
}

std::error_code MultipartParser::feed(std::span<const char> chunk, std::vector<Event>& out) {
  out.clear();
  scratch_.clear();
  std::span<const char> in = chunk;
  const auto fail = [&](multipart_errc e) {
    state_ = State::failed;
    return make_error_code(e);
  };
  while (!in.empty()) {
    switch (state_) {
      case State::preamble:
      case State::body:
        if (auto ec = scan_for_delimiter(in, out)) return ec;
        break;
      case State::after_delimiter: {
        const char c = in[0];
        in = in.subspan(1);
        if (c == '-')
          state_ = State::expect_dash;
        else if (c == '\r')
          state_ = State::expect_lf;
        else if (c != ' ' && c != '\t')
          return fail(multipart_errc::bad_delimiter);  // transport padding
        break;
      }
      case State::expect_dash:
        if (in[0] != '-') return fail(multipart_errc::bad_delimiter);
        in = in.subspan(1);
        state_ = State::epilogue;
        break;
      case State::expect_lf:
        if (in[0] != '\n') return fail(multipart_errc::bad_delimiter);
        in = in.subspan(1);
        header_block_.clear();
        state_ = State::headers;
        break;
      case State::headers: {
        // Append up to the end of the header block, which is the first CRLF CRLF
        // or a lone CRLF at its very start.
        while (!in.empty()) {
          header_block_.push_back(in[0]);
          in = in.subspan(1);
          const std::string_view hb = header_block_;
          if (hb == "\r\n" || (hb.size() >= 4 && hb.ends_with("\r\n\r\n"))) {
            if (auto ec = parse_headers(out)) return fail(static_cast<multipart_errc>(ec.value()));
            state_ = State::body;
            break;
          }
          if (header_block_.size() > max_header_block) return fail(multipart_errc::header_too_large);
        }
        break;
      }
      case State::epilogue:
        in = {};  // RFC 2046: the epilogue is ignored
        break;
      case State::failed: return make_error_code(multipart_errc::bad_delimiter);
    }
  }
  return {};
}

std::error_code MultipartParser::finish() const {
  if (state_ == State::epilogue) return {};
  return make_error_code(multipart_errc::unexpected_end);
}

}  // namespace s3up::http
