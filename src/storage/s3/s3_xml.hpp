#pragma once
// The few S3 XML documents the client reads and writes (pugixml).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace s3up::storage::s3 {

struct S3Error {
  std::string code;  // "NoSuchKey", "SlowDown", "AccessDenied", ...
  std::string message;
  std::string request_id;
};

// An <Error> document, or nullopt if the body is not one. S3 can answer 200 OK
// to CompleteMultipartUpload and still put an <Error> in the body.
std::optional<S3Error> parse_error(std::string_view body);

// InitiateMultipartUploadResult/UploadId
std::optional<std::string> parse_upload_id(std::string_view body);

// CompleteMultipartUploadResult/ETag
std::optional<std::string> parse_complete_etag(std::string_view body);

// A stored part as CompleteMultipartUpload names it; `checksum` (base64):
// its flexible checksum, as sent or as the store reported it, if any.
struct CompletedPart {
  int number = 0;
  std::string etag;
  std::string checksum;
};
// Each part's checksum goes under `checksum_element` ("ChecksumCRC32C",
// the upload's declared algorithm's), unless that is "".
std::string complete_multipart_body(const std::vector<CompletedPart>& parts, std::string_view checksum_element = {});

// CopyPartResult (UploadPartCopy): the part's ETag and, if the store
// reports one, its flexible checksum; nullopt without an ETag.
std::optional<CompletedPart> parse_copy_part(std::string_view body);

struct MultipartUploadEntry {
  std::string key;
  std::string upload_id;
};
// ListMultipartUploadsResult/Upload entries
std::vector<MultipartUploadEntry> parse_list_multipart_uploads(std::string_view body);

// ListPartsResult: its Part entries (number, ETag, flexible checksum) and, when truncated, the
// marker that asks for the next page.
struct ListedParts {
  std::vector<CompletedPart> parts;
  std::optional<int> next_marker;
};
ListedParts parse_list_parts(std::string_view body);

// How many ListPartsResult/Part entries the document lists.
std::size_t count_listed_parts(std::string_view body);

// ListBucketResult/Contents/Key (ListObjectsV2)
std::vector<std::string> parse_list_object_keys(std::string_view body);

}  // namespace s3up::storage::s3
