// Resumable uploads over tus 1.0.0 (https://tus.io/protocols/resumable-upload):
// POST /upload/resumable creates an upload, HEAD /upload/resumable/{id}
// tells its offset, PATCH appends at it, DELETE terminates it. The rules
// (leases, durability, quota, types) are upload::Uploads'; this file
// reads and writes the protocol's headers.
#include "api/api.hpp"
#include "api/tus_headers.hpp"
#include "util/text.hpp"

namespace s3up::api {

namespace asio = boost::asio;
using boost::beast::http::field;
using boost::beast::http::verb;

namespace {

constexpr std::string_view kExtensions =
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination";
constexpr std::string_view kChunkType = "application/offset+octet-stream";
constexpr std::string_view kUploadsPath = "/upload/resumable";

// A tus header's value; nullopt if absent. Given twice it is refused (400),
// as two Content-Lengths are: which one a proxy on the way believed is
// anyone's guess.
std::optional<std::string_view> single_header(const http::Request& request, std::string_view name) {
  const auto [first, end] = request.header.equal_range(name);
  if (first == end) return std::nullopt;
  if (std::next(first) != end) throw ApiError(errc::bad_request, std::string(name) + " is given more than once");
  return first->value();
}

// A header holding a non-negative decimal integer; nullopt if absent, 400 if malformed.
std::optional<std::uint64_t> number_header(const http::Request& request, std::string_view name) {
  const auto text = single_header(request, name);
  if (!text) return std::nullopt;
  const auto value = util::parse_integer<std::uint64_t>(util::trim(*text));
  if (!value) throw ApiError(errc::bad_request, std::string(name) + " must be a non-negative integer");
  return value;
}

std::optional<upload::ChunkChecksum> checksum_header(const http::Request& request) {
  const auto text = single_header(request, "Upload-Checksum");
  if (!text) return std::nullopt;
  auto parsed = tus::parse_checksum(*text);
  if (auto* problem = std::get_if<tus::ChecksumProblem>(&parsed)) {
    if (*problem == tus::ChecksumProblem::unsupported) {
      throw ApiError(errc::bad_request,
                     "Upload-Checksum: supported algorithms are " + std::string(tus::kChecksumAlgorithms));
    }
    throw ApiError(errc::bad_request, "Upload-Checksum must be \"<algorithm> <base64 digest>\"");
  }
  auto& checksum = std::get<tus::Checksum>(parsed);
  return upload::ChunkChecksum{std::move(checksum.algorithm), std::move(checksum.digest)};
}

bool is_chunk(const http::Request& request) {
  const std::string_view type = request.header[field::content_type];
  return util::media_type_essence(type) == kChunkType;
}

// Where an upload stands, in the headers every answer about it carries.
void describe(http::Response& res, const upload::ResumableUpload& upload) {
  res.set("Upload-Offset", std::to_string(upload.state.offset));
  if (!upload.complete()) res.set("Upload-Expires", tus::http_date(upload.state.expires_at));
}

std::string_view metadata_value(const tus::Metadata& metadata, std::string_view key, std::string_view other) {
  for (const auto& [k, v] : metadata) {
    if (k == key) return v;
  }
  for (const auto& [k, v] : metadata) {
    if (k == other) return v;
  }
  return {};
}

}  // namespace

http::Middleware tus_resumable_header() {
  return [](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    const std::string_view target = request.header.target();
    const std::string_view rest =
        target.starts_with(kUploadsPath) ? target.substr(kUploadsPath.size()) : std::string_view("x");
    const bool tus_path = rest.empty() || rest.starts_with('/') || rest.starts_with('?');
    auto answer = co_await next(request);
    if (tus_path) answer.set("Tus-Resumable", tus::kVersion);
    co_return answer;
  };
}

http::Middleware tus_version() {
  return [](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    const auto given = request.header["Tus-Resumable"];
    if (given != tus::kVersion) {
      throw ApiError(errc::precondition_failed,
                     given.empty() ? "the Tus-Resumable header is missing"
                                   : "this server speaks tus " + std::string(tus::kVersion),
                     http::Headers{{"Tus-Version", std::string(tus::kVersion)}});
    }
    co_return co_await next(request);
  };
}

std::string Api::absolute_url(const http::Request& request, std::string_view path) const {
  const auto& web = deps_.web;
  if (!web.public_url.empty()) return web.public_url + std::string(path);
  std::string scheme = request.context.secure ? "https" : "http";
  std::string host(request.header[field::host]);
  const auto& proxies = web.trusted_proxies;
  if (std::find(proxies.begin(), proxies.end(), request.context.peer_address) != proxies.end()) {
    const std::string_view proto = util::trim(request.header["X-Forwarded-Proto"]);
    if (proto == "https" || proto == "http") scheme = std::string(proto);
    const std::string_view forwarded_host = util::trim(request.header["X-Forwarded-Host"]);
    if (!forwarded_host.empty()) host = std::string(forwarded_host.substr(0, forwarded_host.find(',')));
  }
  // A Host that is not a plain host[:port] would make a URL of something else.
  const bool plain = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
  });
  if (!plain) throw ApiError(errc::bad_request, "the request's Host header is not a host name");
  return scheme + "://" + host + std::string(path);
}

asio::awaitable<http::Response> Api::tus_options(http::Request&) {
  // 200, not 204: some browsers refuse a 204 answer to a preflight.
  http::Response res(http::Status::ok);  // Tus-Resumable: tus_resumable_header()
  res.set("Tus-Version", tus::kVersion);
  res.set("Tus-Extension", kExtensions);
  res.set("Tus-Max-Size", std::to_string(deps_.uploads.limits.max_upload_bytes));
  res.set("Tus-Checksum-Algorithm", tus::kChecksumAlgorithms);
  co_return res;
}

asio::awaitable<http::Response> Api::tus_create(http::Request& request) {
  const auto& principal = caller(request);
  const auto length = number_header(request, "Upload-Length");
  const auto defer = single_header(request, "Upload-Defer-Length").value_or("");
  if (!defer.empty() && defer != "1") throw ApiError(errc::bad_request, "Upload-Defer-Length must be 1");
  if (length.has_value() == (defer == "1")) {
    throw ApiError(errc::bad_request, "give either Upload-Length or Upload-Defer-Length: 1");
  }
  const std::string metadata_text(single_header(request, "Upload-Metadata").value_or(""));
  const auto metadata = tus::parse_metadata(metadata_text);
  if (!metadata) throw ApiError(errc::bad_request, "Upload-Metadata must be comma-separated \"key base64\" pairs");
  // creation-with-upload: a body is the first chunk.
  const auto body_length = request.body.content_length();
  const bool with_body = (body_length && *body_length > 0) ||
                         (!body_length && request.header.find(field::transfer_encoding) != request.header.end());
  if (with_body && !is_chunk(request)) {
    throw ApiError(errc::unsupported_media_type, "a creation request's body must be application/offset+octet-stream");
  }
  // An empty upload has no room for a first chunk, as a chunk longer than
  // a non-zero length has none for its end.
  if (with_body && length == std::optional<std::uint64_t>(0)) {
    throw ApiError(errc::file_too_large, "the body goes past the upload's Upload-Length of 0");
  }
  const auto checksum = checksum_header(request);
  const upload::ResumablePlan plan{std::string(metadata_value(*metadata, "filename", "name")),
                                   std::string(metadata_value(*metadata, "filetype", "type")), length, metadata_text,
                                   requester(request, "tus")};
  // The whole file in the creation request: stored in one pass, as PUT is.
  if (with_body && !checksum && length && *length > 0 && body_length == length) {
    const auto whole = co_await uploads_.create_whole(principal, plan, request.body);
    http::Response res(http::Status::created);
    res.set(field::location, absolute_url(request, std::string(kUploadsPath) + "/" + whole.upload.id));
    describe(res, whole);
    co_return res;
  }
  auto created = co_await uploads_.create(principal, plan);
  if (with_body && !created.complete()) {
    const std::uint64_t at_start = 0;
    const std::optional<std::uint64_t> no_new_length;
    std::exception_ptr failure;
    try {
      created = co_await uploads_.append(principal, created.upload.id, at_start, no_new_length, checksum, request.body);
    } catch (const upload::Error& e) {
      // A chunk the upload can never take ends it (append() has ended one
      // of a refused type already). One that failed its checksum counts for
      // nothing, but the upload exists: 201 with its Location and offset, so
      // the client sends the chunk again by PATCH. Other failures leave it to
      // resume (or to expire).
      using upload::Failure;
      if (e.failure() == Failure::type_refused) throw;
      if (e.failure() == Failure::too_large || e.failure() == Failure::quota_exceeded) {
        failure = std::current_exception();
      } else if (e.failure() != Failure::checksum_mismatch) {
        throw;
      }
    }
    if (failure) {
      co_await uploads_.terminate(principal, created.upload.id);
      std::rethrow_exception(failure);
    }
  }
  http::Response res(http::Status::created);
  res.set(field::location, absolute_url(request, std::string(kUploadsPath) + "/" + created.upload.id));
  describe(res, created);
  co_return res;
}

asio::awaitable<http::Response> Api::tus_head(http::Request& request) {
  const std::string id(request.param("id"));
  const auto upload = co_await uploads_.status(caller(request), id);
  http::Response res(http::Status::ok);
  describe(res, upload);
  if (upload.state.upload_length) {
    res.set("Upload-Length", std::to_string(*upload.state.upload_length));
  } else {
    res.set("Upload-Defer-Length", "1");
  }
  if (!upload.state.metadata.empty()) res.set("Upload-Metadata", upload.state.metadata);
  res.set(field::cache_control, "no-store");
  co_return res;
}

asio::awaitable<http::Response> Api::tus_patch(http::Request& request) {
  if (!is_chunk(request)) throw ApiError(errc::unsupported_media_type, "PATCH takes application/offset+octet-stream");
  const auto offset = number_header(request, "Upload-Offset");
  if (!offset) throw ApiError(errc::bad_request, "Upload-Offset is missing");
  const auto length = number_header(request, "Upload-Length");
  const auto checksum = checksum_header(request);
  const std::string id(request.param("id"));
  const auto upload = co_await uploads_.append(caller(request), id, *offset, length, checksum, request.body);
  http::Response res(http::Status::no_content);
  describe(res, upload);
  co_return res;
}

asio::awaitable<http::Response> Api::tus_delete(http::Request& request) {
  const std::string id(request.param("id"));
  co_await uploads_.terminate(caller(request), id);
  co_return http::Response(http::Status::no_content);
}

asio::awaitable<http::Response> Api::tus_override(http::Request& request) {
  const auto method = util::ascii_lower(util::trim(request.header["X-HTTP-Method-Override"]));
  if (method == "patch") co_return co_await tus_patch(request);
  if (method == "delete") co_return co_await tus_delete(request);
  if (method == "head") co_return co_await tus_head(request);
  throw ApiError(errc::method_not_allowed, "POST to an upload needs X-HTTP-Method-Override: PATCH, DELETE or HEAD",
                 http::Headers{{"Allow", "HEAD, PATCH, DELETE, OPTIONS, POST"}});
}

}  // namespace s3up::api
