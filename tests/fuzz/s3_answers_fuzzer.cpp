// What S3-compatible stores and credential endpoints answer: error bodies,
// CreateMultipartUpload, CompleteMultipartUpload, UploadPartCopy,
// ListMultipartUploads, ListParts and ListObjectsV2 XML, the ECS / IMDS
// credentials JSON and a shared credentials file.
#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/s3/credentials.hpp"
#include "storage/s3/s3_xml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  namespace s3 = s3up::storage::s3;
  s3::parse_error(text);
  s3::parse_upload_id(text);
  s3::parse_complete_etag(text);
  s3::parse_copy_part(text);
  s3::parse_list_multipart_uploads(text);
  s3::parse_list_parts(text);
  s3::count_listed_parts(text);
  s3::parse_list_object_keys(text);
  s3::parse_metadata_credentials(text);
  s3::parse_credentials_file(text, "default");
  return 0;
}
