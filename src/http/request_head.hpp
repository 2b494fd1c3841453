#pragma once
// How the server reads a request's head, apart from its socket: the parser
// as the server sets it up, what RFC 9112 asks beyond Beast's checks, and
// the target in origin form. server.cpp reads heads from connections with
// these; read_request_head does the same on bytes in memory, for the fuzzer
// (tests/fuzz/request_head_fuzzer.cpp).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "http/message.hpp"

namespace s3up::http {

using RequestParser = beast_http::request_parser<beast_http::buffer_body>;

// Headers up to `max_header_bytes`, no body limit yet: Beast would refuse a
// large Content-Length before the handler could authenticate the caller
// (401 comes before 413). Handlers check Content-Length themselves.
void prepare_head_parser(RequestParser& parser, std::size_t max_header_bytes);

// A head the server answers with an error and then closes the connection.
struct Refusal {
  Status status;
  std::string code;
  std::string message;
};

// What RFC 9112 requires of a request's framing and routing headers beyond
// what Beast's parser checks (it refuses Content-Length beside
// Transfer-Encoding, and Content-Lengths that differ). A request that fails
// here is answered and the connection closed: its body cannot be trusted to
// end where we would think.
std::optional<Refusal> framing_refusal(const RequestHeader& h);

// The request target in origin form: an absolute-form target (§3.2.2,
// "GET http://host/path") becomes its path and query, its authority the Host;
// a fragment, which no client should send, is not part of the target. A
// target that is neither (but "*" for OPTIONS) is refused: no route could
// mean it.
std::optional<Refusal> normalize_target(RequestHeader& h);

// Takes an empty line (CRLF, or a bare LF) off the front of `buffer`; false
// if it does not start with one.
bool consume_empty_line(boost::beast::flat_buffer& buffer);

// A head over the limit: 414 when the request line alone is (Beast may have
// parsed the line already, `line_parsed`), else 431. `buffered`: the bytes
// the parser was given.
Refusal oversized_head(std::string_view buffered, bool line_parsed, std::size_t max_header_bytes);
// Bytes that are not an HTTP/1 request head.
Refusal malformed_head();

// What the server makes of `bytes` as the start of a connection.
struct HeadReading {
  enum class Outcome { incomplete, accepted, refused } outcome = Outcome::incomplete;
  std::optional<Refusal> refusal;  // when refused
  RequestHeader head;              // when accepted: normalized
  std::size_t consumed = 0;        // bytes of the head (and an empty line before it)
};
HeadReading read_request_head(std::string_view bytes, std::size_t max_header_bytes);

}  // namespace s3up::http
