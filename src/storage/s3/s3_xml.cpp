#include "storage/s3/s3_xml.hpp"
#include <cstdlib>

#include <iterator>

#include <pugixml.hpp>

namespace s3up::storage::s3 {
namespace {

bool load(pugi::xml_document& doc, std::string_view body) {
  return !body.empty() && doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
}

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::optional<S3Error> parse_error(std::string_view body) {
  pugi::xml_document doc;
  if (!load(doc, body)) return std::nullopt;
  const auto e = doc.child("Error");
  if (!e) return std::nullopt;
  return S3Error{e.child_value("Code"), e.child_value("Message"), e.child_value("RequestId")};
}

std::optional<std::string> parse_upload_id(std::string_view body) {
  pugi::xml_document doc;
  if (!load(doc, body)) return std::nullopt;
  std::string id = doc.child("InitiateMultipartUploadResult").child_value("UploadId");
  if (id.empty()) return std::nullopt;
  return id;
}

std::optional<std::string> parse_complete_etag(std::string_view body) {
  pugi::xml_document doc;
  if (!load(doc, body)) return std::nullopt;
  const auto r = doc.child("CompleteMultipartUploadResult");
  if (!r) return std::nullopt;
  return std::string(r.child_value("ETag"));
}

namespace {
// The flexible checksum a Part or CopyPartResult element reports, if any.
void read_checksum(const pugi::xml_node& node, CompletedPart& part) {
  for (const char* element : {"ChecksumCRC32C", "ChecksumCRC64NVME"}) {
    if (const std::string_view value = node.child_value(element); !value.empty()) {
      part.checksum = value;
      return;
    }
  }
}
}  // namespace

std::optional<CompletedPart> parse_copy_part(std::string_view body) {
  pugi::xml_document doc;
  if (!load(doc, body)) return std::nullopt;
  const auto r = doc.child("CopyPartResult");
  if (!r || std::string_view(r.child_value("ETag")).empty()) return std::nullopt;
  CompletedPart part;
  part.etag = r.child_value("ETag");
  read_checksum(r, part);
  return part;
}

std::string complete_multipart_body(const std::vector<CompletedPart>& parts, std::string_view checksum_element) {
  const std::string element(checksum_element);
  std::string out = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const auto& p : parts) {
    out += "<Part><PartNumber>" + std::to_string(p.number) + "</PartNumber><ETag>" + escape(p.etag) + "</ETag>";
    if (!p.checksum.empty() && !element.empty()) out += "<" + element + ">" + escape(p.checksum) + "</" + element + ">";
    out += "</Part>";
  }
  out += "</CompleteMultipartUpload>";
  return out;
}

std::vector<MultipartUploadEntry> parse_list_multipart_uploads(std::string_view body) {
  std::vector<MultipartUploadEntry> out;
  pugi::xml_document doc;
  if (!load(doc, body)) return out;
  for (auto u : doc.child("ListMultipartUploadsResult").children("Upload")) {
    out.push_back({u.child_value("Key"), u.child_value("UploadId")});
  }
  return out;
}

std::size_t count_listed_parts(std::string_view body) {
  pugi::xml_document doc;
  if (!load(doc, body)) return 0;
  const auto parts = doc.child("ListPartsResult").children("Part");
  return static_cast<std::size_t>(std::distance(parts.begin(), parts.end()));
}

ListedParts parse_list_parts(std::string_view body) {
  ListedParts out;
  pugi::xml_document doc;
  if (!load(doc, body)) return out;
  const auto result = doc.child("ListPartsResult");
  for (auto p : result.children("Part")) {
    CompletedPart part;
    part.number = std::atoi(p.child_value("PartNumber"));
    part.etag = p.child_value("ETag");
    read_checksum(p, part);
    out.parts.push_back(std::move(part));
  }
  if (std::string_view(result.child_value("IsTruncated")) == "true") {
    out.next_marker = std::atoi(result.child_value("NextPartNumberMarker"));
  }
  return out;
}

std::vector<std::string> parse_list_object_keys(std::string_view body) {
  std::vector<std::string> out;
  pugi::xml_document doc;
  if (!load(doc, body)) return out;
  for (auto c : doc.child("ListBucketResult").children("Contents")) out.emplace_back(c.child_value("Key"));
  return out;
}

}  // namespace s3up::storage::s3
