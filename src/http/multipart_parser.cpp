#include "http/multipart_parser.hpp"
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

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 8187 ext-value: charset'[language]'pct-encoded. UTF-8 and ISO-8859-1.
std::optional<std::string> decode_ext_value(std::string_view v) {
  const auto q1 = v.find('\'');
  if (q1 == std::string_view::npos) return std::nullopt;
  const auto q2 = v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return std::nullopt;
  const std::string charset = lower(v.substr(0, q1));
  if (charset != "utf-8" && charset != "iso-8859-1") return std::nullopt;
  std::string raw;
  for (std::size_t i = q2 + 1; i < v.size(); ++i) {
    if (v[i] == '%') {
      if (i + 2 >= v.size()) return std::nullopt;
      const int hi = hex_value(v[i + 1]), lo = hex_value(v[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      raw.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      raw.push_back(v[i]);
    }
  }
  if (charset == "utf-8") return raw;
  std::string utf8;  // ISO-8859-1 code points map 1:1 onto U+0000..U+00FF
  for (unsigned char c : raw) {
    if (c < 0x80) {
      utf8.push_back(static_cast<char>(c));
    } else {
      utf8.push_back(static_cast<char>(0xC0 | (c >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return utf8;
}

}  // namespace

std::error_code make_error_code(multipart_errc e) {
  static const MultipartCategory category;
  return {static_cast<int>(e), category};
}

std::optional<HeaderValue> parse_header_value(std::string_view text) {
  HeaderValue out;
  std::size_t i = 0;
  const auto semi = text.find(';');
  out.value = lower(trim(text.substr(0, semi)));
  if (out.value.empty()) return std::nullopt;
  if (semi == std::string_view::npos) return out;
  i = semi + 1;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == ';')) ++i;
    if (i >= text.size()) break;
    const auto eq = text.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    std::string name = lower(trim(text.substr(i, eq - i)));
    if (name.empty()) return std::nullopt;
    i = eq + 1;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    std::string value;
    if (i < text.size() && text[i] == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        const char c = text[i];
        // A quoted-pair only for '"' and '\': browsers send Windows paths
        // ("C:\dir\a.txt") with bare backslashes.
        if (c == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) {
          value.push_back(text[i + 1]);
          i += 2;
          continue;
        }
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        value.push_back(c);
        ++i;
      }
      if (!closed) return std::nullopt;
    } else {
      const auto end = text.find(';', i);
      value = std::string(trim(text.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i)));
      i = end == std::string_view::npos ? text.size() : end;
    }
    if (!name.empty() && name.back() == '*') {
      auto decoded = decode_ext_value(value);
      if (!decoded) return std::nullopt;
      value = std::move(*decoded);
    }
    out.params[std::move(name)] = std::move(value);
  }
  return out;
}

std::optional<std::string> form_data_boundary(std::string_view content_type) {
  auto hv = parse_header_value(content_type);
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
      auto hv = parse_header_value(value);
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
        if (c == '-') state_ = State::expect_dash;
        else if (c == '\r') state_ = State::expect_lf;
        else if (c != ' ' && c != '\t') return fail(multipart_errc::bad_delimiter);  // transport padding
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
      case State::failed:
        return make_error_code(multipart_errc::bad_delimiter);
    }
  }
  return {};
}

std::error_code MultipartParser::finish() const {
  if (state_ == State::epilogue) return {};
  return make_error_code(multipart_errc::unexpected_end);
}

}  // namespace s3up::http
