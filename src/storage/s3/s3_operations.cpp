// The S3 operations the service uses, each a method of the client: the
// request as the S3 API reference describes it, and its answer judged into a
// result or a storage::Error.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "storage/s3/s3_client.hpp"
#include "util/text.hpp"

namespace s3up::storage::s3 {

namespace asio = boost::asio;

namespace {
// In PartChecksum's order.
constexpr PartChecksumSpec kPartChecksums[] = {
    {PartChecksum::sha256, "sha256", "signed SHA-256", "", "", ""},
    {PartChecksum::md5, "md5", "Content-MD5", "content-md5", "", ""},
    {PartChecksum::crc32c, "crc32c", "CRC-32C", "x-amz-checksum-crc32c", "CRC32C", "ChecksumCRC32C"},
    {PartChecksum::crc64nvme, "crc64nvme", "CRC-64/NVME", "x-amz-checksum-crc64nvme", "CRC64NVME", "ChecksumCRC64NVME"},
};
}  // namespace

const PartChecksumSpec& spec_of(PartChecksum checksum) { return kPartChecksums[static_cast<int>(checksum)]; }

std::optional<PartChecksum> part_checksum_named(std::string_view name) {
  for (const auto& spec : kPartChecksums) {
    if (spec.name == name) return spec.kind;
  }
  return std::nullopt;
}

std::vector<Header> declare_checksum(PartChecksum checksum) {
  const auto& spec = spec_of(checksum);
  if (spec.algorithm.empty()) return {};
  std::vector<Header> headers{{"x-amz-checksum-algorithm", std::string(spec.algorithm)}};
  // S3 combines CRC-64/NVME parts into the whole object's CRC, its only
  // multipart kind.
  if (checksum == PartChecksum::crc64nvme) headers.emplace_back("x-amz-checksum-type", "FULL_OBJECT");
  return headers;
}

void fail(std::string_view op, const std::string& key, unsigned status, std::string_view body) {
  const auto e = parse_error(body);
  const std::string code = e ? e->code : "";
  const std::string message = e ? e->message : "";
  if (status == 403 || code == "AccessDenied" || code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId") {
    spdlog::error("s3 {} {}: access denied ({} {}): check the credentials, the region and the bucket policy", op, key,
                  code, message);
    throw Error(Failure::refused, "the object store refused access");
  }
  spdlog::error("s3 {} {}: HTTP {} {} {}", op, key, status, code, message);
  if (status >= 500) throw Error(Failure::unavailable, "the object store is unavailable");
  throw Error(Failure::rejected, "the object store answered with an error");
}

void fail(std::string_view op, const std::string& key, const Response& response) {
  fail(op, key, response.status, response.body);
}

std::vector<Header> object_headers(const ObjectMetadata& metadata) {
  std::vector<Header> h;
  h.emplace_back("content-type", metadata.content_type.empty() ? "application/octet-stream" : metadata.content_type);
  if (!metadata.file_name.empty()) {
    h.emplace_back("content-disposition", util::content_disposition_attachment(metadata.file_name));
  }
  return h;
}

namespace {
// S3 may answer 200 and still report an error in the body (CompleteMultipartUpload, UploadPartCopy).
bool succeeded(const Response& res) { return res.status == 200 && !parse_error(res.body); }
}  // namespace

asio::awaitable<Response> Client::call(Request& request, std::string_view op) {
  request.operation = op;
  try {
    co_return co_await send(request);
  } catch (const ConnectionFailure& e) {
    spdlog::error("s3 {} {}: store unreachable: {}", op, request.key, e.what());
    throw Error(Failure::unavailable, "the object store cannot be reached");
  }
}

asio::awaitable<std::string> Client::put_object(const std::string& key, const std::vector<Header>& headers,
                                                std::span<const char> body, const std::string& sha256) {
  Request r;
  r.method = "PUT";
  r.key = key;
  r.headers = headers;
  r.body = body;
  r.payload_hash = sha256;
  r.expect_continue = !body.empty();
  const auto res = co_await call(r, "PutObject");
  if (res.status != 200) fail("PutObject", key, res);
  co_return res.header("etag");
}

asio::awaitable<std::optional<ObjectInfo>> Client::head_object(const std::string& key) {
  Request r;
  r.method = "HEAD";
  r.key = key;
  const auto res = co_await call(r, "HeadObject");
  if (res.status == 404) co_return std::nullopt;
  if (res.status != 200) fail("HeadObject", key, res);
  const auto length = util::parse_integer<std::uint64_t>(res.header("content-length"));
  co_return ObjectInfo{length.value_or(0), res.header("etag")};
}

asio::awaitable<std::unique_ptr<ResponseStream>> Client::get_object(const std::string& key, std::uint64_t first,
                                                                    std::uint64_t last) {
  Request r;
  r.method = "GET";
  r.key = key;
  r.headers = {{"range", fmt::format("bytes={}-{}", first, last)}};
  r.operation = "GetObject";
  std::unique_ptr<ResponseStream> response;
  try {
    response = co_await open(r);
  } catch (const ConnectionFailure& e) {
    spdlog::error("s3 GetObject {}: store unreachable: {}", key, e.what());
    throw Error(Failure::unavailable, "the object store cannot be reached");
  }
  const unsigned status = response->status();
  if (status == 404) throw Error(Failure::not_found, "no such object");
  if (status == 416) co_return nullptr;  // the range starts past the end
  if (status != 206 && status != 200) {
    std::string body;
    try {
      body = co_await response->read_rest();
    } catch (const ConnectionFailure&) {
    }
    fail("GetObject", key, status, body);
  }
  co_return response;
}

asio::awaitable<void> Client::delete_object(const std::string& key) {
  Request r;
  r.method = "DELETE";
  r.key = key;
  const auto res = co_await call(r, "DeleteObject");
  if (res.status != 204 && res.status != 200 && res.status != 404) fail("DeleteObject", key, res);
}

asio::awaitable<std::vector<std::string>> Client::list_objects(const std::string& prefix) {
  Request r;
  r.method = "GET";
  r.query = {{"list-type", "2"}, {"prefix", prefix}};
  const auto res = co_await call(r, "ListObjectsV2");
  if (res.status != 200) fail("ListObjectsV2", prefix, res);
  co_return parse_list_object_keys(res.body);
}

asio::awaitable<std::string> Client::create_multipart_upload(const std::string& key,
                                                             const std::vector<Header>& headers) {
  Request r;
  r.method = "POST";
  r.key = key;
  r.query = {{"uploads", ""}};
  r.headers = headers;
  const auto res = co_await call(r, "CreateMultipartUpload");
  if (res.status != 200) fail("CreateMultipartUpload", key, res);
  auto id = parse_upload_id(res.body);
  if (!id) throw Error(Failure::rejected, "CreateMultipartUpload answered without an UploadId");
  co_return *id;
}

asio::awaitable<std::string> Client::upload_part(const PartUpload& part) {
  Request r;
  r.method = "PUT";
  r.key = part.key;
  r.query = {{"partNumber", std::to_string(part.number)}, {"uploadId", part.upload_id}};
  r.body = part.body;
  r.payload_hash = part.payload_hash;
  const auto& spec = spec_of(part.checksum_kind);
  if (!spec.header.empty()) r.headers = {{std::string(spec.header), part.checksum}};
  r.expect_continue = true;
  const auto res = co_await call(r, "UploadPart");
  if (res.status != 200) fail("UploadPart", part.key, res);
  std::string etag = res.header("etag");
  if (etag.empty()) throw Error(Failure::rejected, "UploadPart answered without an ETag");
  if (is_flexible(part.checksum_kind) && res.header(spec.header).empty() &&
      !ignores_flexible_checksums_.exchange(true)) {
    spdlog::warn("s3: the store answered a part without its {} header: it does not check flexible checksums{}",
                 spec.header,
                 tls_ ? " (TLS still guards the bytes on the way)"
                      : ", and over plain HTTP nothing else checks the parts' bytes: consider s3_part_checksum = "
                        "sha256 (what auto picks there)");
  }
  co_return etag;
}

asio::awaitable<CompletedPart> Client::upload_part_copy(const std::string& key, const std::string& upload_id,
                                                        int number, const std::string& source, std::uint64_t first,
                                                        std::uint64_t last) {
  Request r;
  r.method = "PUT";
  r.key = key;
  r.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
  r.headers = {{"x-amz-copy-source", "/" + options_.bucket + "/" + uri_encode(source, false)},
               {"x-amz-copy-source-range", fmt::format("bytes={}-{}", first, last)}};
  const auto res = co_await call(r, "UploadPartCopy");
  if (!succeeded(res)) fail("UploadPartCopy", key, res);
  auto part = parse_copy_part(res.body);
  if (!part) throw Error(Failure::rejected, "UploadPartCopy answered without an ETag");
  part->number = number;
  co_return *part;
}

asio::awaitable<std::string> Client::complete_multipart_upload(const std::string& key, const std::string& upload_id,
                                                               const std::vector<CompletedPart>& parts,
                                                               PartChecksum declared) {
  const std::string body = complete_multipart_body(parts, spec_of(declared).element);
  Request r;
  r.method = "POST";
  r.key = key;
  r.query = {{"uploadId", upload_id}};
  r.headers = {{"content-type", "application/xml"}};
  r.body = std::span<const char>(body.data(), body.size());
  const auto res = co_await call(r, "CompleteMultipartUpload");
  if (!succeeded(res)) fail("CompleteMultipartUpload", key, res);
  co_return parse_complete_etag(res.body).value_or("");
}

// ListParts answers 404 NoSuchUpload once an upload is aborted (radosgw,
// MinIO, AWS), and an empty list is what S3's documentation calls freed.
asio::awaitable<bool> Client::multipart_upload_holds_parts(const std::string& key, const std::string& upload_id) {
  Request r;
  r.method = "GET";
  r.key = key;
  r.query = {{"max-parts", "1"}, {"uploadId", upload_id}};
  const auto res = co_await call(r, "ListParts");
  if (res.status == 404) co_return false;
  if (res.status != 200) fail("ListParts", key, res);
  co_return count_listed_parts(res.body) > 0;
}

asio::awaitable<void> Client::abort_multipart_upload(const std::string& key, const std::string& upload_id) {
  constexpr int kAborts = 3;
  auto pause = std::chrono::milliseconds(200);
  for (int i = 0; i < kAborts; ++i) {
    if (i > 0) {
      asio::steady_timer timer(executor_, pause);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      pause *= 4;
    }
    Request r;
    r.method = "DELETE";
    r.key = key;
    r.query = {{"uploadId", upload_id}};
    const auto res = co_await call(r, "AbortMultipartUpload");
    if (res.status != 204 && res.status != 200 && res.status != 404) fail("AbortMultipartUpload", key, res);
    if (!co_await multipart_upload_holds_parts(key, upload_id)) co_return;
    spdlog::warn("s3: multipart upload {} of {} is still there after an abort", upload_id, key);
  }
  throw Error(Failure::rejected, "the object store kept a multipart upload it was asked to abort");
}

asio::awaitable<std::optional<std::vector<CompletedPart>>> Client::list_parts(const std::string& key,
                                                                              const std::string& upload_id) {
  std::vector<CompletedPart> parts;
  std::optional<int> marker;
  do {
    Request r;
    r.method = "GET";
    r.key = key;
    r.query = {{"uploadId", upload_id}};
    if (marker) r.query.emplace_back("part-number-marker", std::to_string(*marker));
    const auto res = co_await call(r, "ListParts");
    if (res.status == 404) co_return std::nullopt;
    if (res.status != 200) fail("ListParts", key, res);
    auto page = parse_list_parts(res.body);
    parts.insert(parts.end(), page.parts.begin(), page.parts.end());
    marker = page.next_marker;
  } while (marker);
  co_return parts;
}

asio::awaitable<std::vector<MultipartUploadEntry>> Client::list_multipart_uploads(const std::string& prefix) {
  Request r;
  r.method = "GET";
  r.query = {{"uploads", ""}, {"prefix", prefix}};
  const auto res = co_await call(r, "ListMultipartUploads");
  if (res.status != 200) fail("ListMultipartUploads", prefix, res);
  co_return parse_list_multipart_uploads(res.body);
}

asio::awaitable<void> Client::head_bucket() {
  Request r;
  r.method = "HEAD";
  const auto res = co_await call(r, "HeadBucket");
  if (res.status != 200) fail("HeadBucket", options_.bucket, res);
}

asio::awaitable<void> Client::create_bucket() {
  Request r;
  r.method = "PUT";
  const auto res = co_await call(r, "CreateBucket");
  if (res.status == 200) co_return;
  const auto e = parse_error(res.body);
  if (e && (e->code == "BucketAlreadyOwnedByYou" || e->code == "BucketAlreadyExists")) co_return;
  fail("CreateBucket", options_.bucket, res);
}

}  // namespace s3up::storage::s3
