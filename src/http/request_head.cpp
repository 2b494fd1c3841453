#include "http/request_head.hpp"

#include <algorithm>
#include <vector>

#include <boost/beast/http/error.hpp>
#include <boost/range/iterator_range.hpp>
#include <boost/url/parse.hpp>

#include "util/text.hpp"

namespace s3up::http {

namespace {
constexpr Status kBadRequest = Status::bad_request;
}  // namespace

void prepare_head_parser(RequestParser& parser, std::size_t max_header_bytes) {
  parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
  parser.body_limit(boost::none);
}

std::optional<Refusal> framing_refusal(const RequestHeader& h) {
  // §6.1, §6.3: chunked must be the final coding and appear once; we
  // implement no other, and HTTP/1.0 has no Transfer-Encoding at all.
  std::vector<std::string> codings;
  bool has_transfer_encoding = false;
  for (const auto& f : boost::make_iterator_range(h.equal_range(beast_http::field::transfer_encoding))) {
    has_transfer_encoding = true;
    std::string_view list = f.value();
    while (!list.empty()) {
      const auto comma = list.find(',');
      const auto element = util::trim(list.substr(0, comma));
      if (!element.empty()) codings.push_back(util::ascii_lower(element));
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
  }
  if (has_transfer_encoding) {
    if (h.version() < 11) return Refusal{kBadRequest, "bad_request", "Transfer-Encoding is not allowed in HTTP/1.0"};
    if (codings.empty() || codings.back() != "chunked" || std::count(codings.begin(), codings.end(), "chunked") != 1) {
      return Refusal{kBadRequest, "bad_request", "Transfer-Encoding must end with chunked, given once"};
    }
    if (codings.size() > 1) {
      return Refusal{Status::not_implemented, "not_implemented",
                     "transfer coding " + codings.front() + " is not implemented"};
    }
  }
  // §3.2: exactly one Host in HTTP/1.1, at most one before.
  const auto hosts = h.count(beast_http::field::host);
  if (hosts > 1) return Refusal{kBadRequest, "bad_request", "more than one Host header"};
  if (hosts == 0 && h.version() >= 11)
    return Refusal{kBadRequest, "bad_request", "HTTP/1.1 request without a Host header"};
  // Two credentials: which one would be meant is anyone's guess.
  if (h.count(beast_http::field::authorization) > 1) {
    return Refusal{kBadRequest, "bad_request", "more than one Authorization header"};
  }
  return std::nullopt;
}

std::optional<Refusal> normalize_target(RequestHeader& h) {
  std::string_view target = h.target();
  if (const auto hash = target.find('#'); hash != std::string_view::npos) {
    h.target(std::string(target.substr(0, hash)));
    target = h.target();
  }
  if (target.starts_with('/')) return std::nullopt;
  if (target == "*" && h.method() == beast_http::verb::options) return std::nullopt;  // §3.2.4
  const auto uri = boost::urls::parse_absolute_uri(target);
  // An http(s) URL names a host (RFC 9110 §4.2.1) and its path is absolute.
  if (!uri || (uri->scheme_id() != boost::urls::scheme::http && uri->scheme_id() != boost::urls::scheme::https) ||
      !uri->has_authority() || uri->encoded_host().empty() ||
      !(uri->encoded_path().empty() || uri->encoded_path().starts_with('/'))) {
    return Refusal{kBadRequest, "bad_request", "the request target must be a path or an http(s) URL"};
  }
  std::string origin(uri->encoded_path().empty() ? "/" : std::string_view(uri->encoded_path()));
  if (uri->has_query()) origin += "?" + std::string(uri->encoded_query());
  const std::string authority(uri->encoded_authority());
  h.set(beast_http::field::host, authority);
  h.target(origin);
  return std::nullopt;
}

bool consume_empty_line(boost::beast::flat_buffer& buffer) {
  const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
  const std::size_t length = data.starts_with("\r\n") ? 2 : data.starts_with('\n') ? 1 : 0;
  buffer.consume(length);
  return length > 0;
}

Refusal oversized_head(std::string_view buffered, bool line_parsed, std::size_t max_header_bytes) {
  const auto line_end = buffered.find('\n');
  const bool line_too_long = !line_parsed && (line_end == std::string_view::npos || line_end >= max_header_bytes);
  if (line_too_long) return Refusal{Status::uri_too_long, "uri_too_long", "request line too long"};
  return Refusal{Status::request_header_fields_too_large, "headers_too_large", "request headers too large"};
}

Refusal malformed_head() { return Refusal{kBadRequest, "bad_request", "malformed HTTP request"}; }

HeadReading read_request_head(std::string_view bytes, std::size_t max_header_bytes) {
  HeadReading out;
  boost::beast::flat_buffer buffer;
  const auto space = buffer.prepare(bytes.size());
  std::copy(bytes.begin(), bytes.end(), static_cast<char*>(space.data()));
  buffer.commit(bytes.size());
  const std::size_t total = bytes.size();

  RequestParser parser;
  // As Beast's read_header: the parser is given what is buffered until the
  // head is done, needs more, or fails.
  const auto parse = [&](RequestParser& p) {
    prepare_head_parser(p, max_header_bytes);
    boost::system::error_code ec;
    while (!p.is_header_done()) {
      const std::size_t used = p.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec || used == 0) break;
    }
    return ec;
  };
  auto ec = parse(parser);
  std::optional<RequestParser> again;
  if (ec && ec != beast_http::error::need_more && consume_empty_line(buffer)) {
    again.emplace();
    ec = parse(*again);
  }
  RequestParser& used = again ? *again : parser;
  out.consumed = total - buffer.size();
  if (ec == beast_http::error::need_more || (!ec && !used.is_header_done())) return out;  // a socket would read on
  if (ec) {
    out.outcome = HeadReading::Outcome::refused;
    const std::string_view seen(static_cast<const char*>(buffer.data().data()), buffer.size());
    out.refusal = ec == beast_http::error::header_limit
                      ? oversized_head(seen, !used.get().target().empty(), max_header_bytes)
                      : malformed_head();
    return out;
  }
  if (auto refusal = framing_refusal(used.get().base())) {
    out.outcome = HeadReading::Outcome::refused;
    out.refusal = std::move(refusal);
    return out;
  }
  out.head = used.get().base();
  if (auto refusal = normalize_target(out.head)) {
    out.outcome = HeadReading::Outcome::refused;
    out.refusal = std::move(refusal);
    return out;
  }
  out.outcome = HeadReading::Outcome::accepted;
  return out;
}

}  // namespace s3up::http
