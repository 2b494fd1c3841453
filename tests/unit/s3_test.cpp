// The S3 backend's pure pieces: XML answers, credential files, part sizes.
#include <gtest/gtest.h>

#include "storage/s3/credentials.hpp"
#include "storage/s3/s3_store.hpp"
#include "storage/s3/s3_xml.hpp"

namespace s3up::storage::s3 {
namespace {

constexpr std::uint64_t MiB = 1024 * 1024;

TEST(S3Xml, ErrorDocument) {
  const auto e = parse_error(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The resource you requested "
      "does not "
      "exist</Message><Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, "NoSuchKey");
  EXPECT_EQ(e->message, "The resource you requested does not exist");
  EXPECT_EQ(e->request_id, "4442587FB7D0A2F9");
}

TEST(S3Xml, ErrorInsideA200CompleteMultipartUpload) {
  // "a 200 OK response can contain either a success or an error" (CompleteMultipartUpload)
  const std::string body =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>InternalError</Code><Message>We encountered an "
      "internal error. Please try again.</Message></Error>";
  ASSERT_TRUE(parse_error(body));
  EXPECT_EQ(parse_error(body)->code, "InternalError");
  EXPECT_FALSE(parse_complete_etag(body));
  const std::string ok =
      "<CompleteMultipartUploadResult><Location>http://x/b/k</Location><Bucket>b</Bucket><Key>k</Key>"
      "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag></CompleteMultipartUploadResult>";
  EXPECT_FALSE(parse_error(ok));
  EXPECT_EQ(parse_complete_etag(ok).value_or(""), "\"3858f62230ac3c915f300c664312c11f-9\"");
}

TEST(S3Xml, NotXmlIsNoError) {
  EXPECT_FALSE(parse_error(""));
  EXPECT_FALSE(parse_error("<html>bad gateway</html>"));
  EXPECT_FALSE(parse_error("garbage <"));
}

TEST(S3Xml, UploadIdAndListings) {
  EXPECT_EQ(parse_upload_id("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE"
                            "</UploadId></InitiateMultipartUploadResult>")
                .value_or(""),
            "VXBsb2FkIElE");
  EXPECT_FALSE(parse_upload_id("<InitiateMultipartUploadResult></InitiateMultipartUploadResult>"));
  const auto uploads = parse_list_multipart_uploads(
      "<ListMultipartUploadsResult><Bucket>b</Bucket><Upload><Key>a/1</Key><UploadId>x1</UploadId></Upload>"
      "<Upload><Key>a/2</Key><UploadId>x2</UploadId></Upload></ListMultipartUploadsResult>");
  ASSERT_EQ(uploads.size(), 2u);
  EXPECT_EQ(uploads[1].key, "a/2");
  EXPECT_EQ(uploads[1].upload_id, "x2");
  EXPECT_EQ(count_listed_parts("<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket>"
                               "<Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag><Size>5</Size></Part>"
                               "<Part><PartNumber>2</PartNumber></Part><IsTruncated>false</IsTruncated>"
                               "</ListPartsResult>"),
            2u);
  EXPECT_EQ(count_listed_parts("<ListPartsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated></ListPartsResult>"),
            0u);
  EXPECT_EQ(count_listed_parts("not xml <"), 0u);
  EXPECT_EQ(
      complete_multipart_body({{1, "\"a\""}, {2, "\"b&c\""}}),
      "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber>"
      "<ETag>&quot;a&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b&amp;c&quot;</ETag></Part>"
      "</CompleteMultipartUpload>");
}

// A multipart upload that declared a flexible checksum is completed with
// each part's; the store reports them in ListParts and CopyPartResult.
TEST(S3Xml, PartChecksumsRoundTrip) {
  EXPECT_EQ(
      complete_multipart_body({{1, "\"a\"", "yZRlqg=="}, {2, "\"b\"", ""}}, "ChecksumCRC32C"),
      "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber>"
      "<ETag>&quot;a&quot;</ETag><ChecksumCRC32C>yZRlqg==</ChecksumCRC32C></Part><Part><PartNumber>2</PartNumber>"
      "<ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>");
  const auto listed = parse_list_parts(
      "<ListPartsResult><Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag>"
      "<ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME></Part>"
      "<Part><PartNumber>2</PartNumber><ETag>\"f\"</ETag></Part><IsTruncated>false</IsTruncated></ListPartsResult>");
  ASSERT_EQ(listed.parts.size(), 2u);
  EXPECT_EQ(listed.parts[0].checksum, "AAAAAAAAAAA=");
  EXPECT_EQ(listed.parts[1].checksum, "");
  const auto copied = parse_copy_part(
      "<CopyPartResult><LastModified>2026-12-03T00:00:00.000Z</LastModified><ETag>\"c\"</ETag>"
      "<ChecksumCRC32C>yZRlqg==</ChecksumCRC32C></CopyPartResult>");
  ASSERT_TRUE(copied);
  EXPECT_EQ(copied->etag, "\"c\"");
  EXPECT_EQ(copied->checksum, "yZRlqg==");
  EXPECT_FALSE(parse_copy_part("<CopyPartResult><ETag></ETag></CopyPartResult>"));
}

TEST(Credentials, FileProfilesCommentsAndMissingKeys) {
  const std::string file =
      "# a comment\n"
      "[default]\n"
      "aws_access_key_id = AKIADEFAULT\n"
      "aws_secret_access_key=secret-default\n"
      "\n"
      "; another comment\n"
      "[work]\r\n"
      "aws_access_key_id = AKIAWORK\r\n"
      "aws_secret_access_key = secret-work\r\n"
      "aws_session_token = token-work\r\n"
      "[profile half]\n"
      "aws_access_key_id = AKIAHALF\n";
  auto d = parse_credentials_file(file, "default");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->access_key_id, "AKIADEFAULT");
  EXPECT_EQ(d->secret_access_key, "secret-default");
  EXPECT_EQ(d->session_token, "");
  auto w = parse_credentials_file(file, "work");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->secret_access_key, "secret-work");
  EXPECT_EQ(w->session_token, "token-work");
  EXPECT_FALSE(parse_credentials_file(file, "half"));  // no secret
  EXPECT_FALSE(parse_credentials_file(file, "nope"));
  EXPECT_FALSE(parse_credentials_file("", "default"));
}

TEST(Credentials, ChainPrefersTheEnvironment) {
  auto provider = default_credentials_chain([](const char* n) -> const char* {
    if (std::string_view(n) == "AWS_ACCESS_KEY_ID") return "AKIAENV";
    if (std::string_view(n) == "AWS_SECRET_ACCESS_KEY") return "secret-env";
    if (std::string_view(n) == "AWS_SHARED_CREDENTIALS_FILE") return "/nonexistent";
    return nullptr;
  });
  EXPECT_NE(provider->describe().find("environment"), std::string::npos);
  EXPECT_EQ(provider->describe().find("secret-env"), std::string::npos) << "a secret in a description";
  EXPECT_THROW(default_credentials_chain([](const char* n) -> const char* {
                 const std::string_view name(n);
                 if (name == "AWS_EC2_METADATA_DISABLED") return "true";
                 return name == "AWS_SHARED_CREDENTIALS_FILE" ? "/nonexistent" : nullptr;
               }),
               std::runtime_error);
}

TEST(PartSize, MinimumGrowthAndCap) {
  EXPECT_EQ(choose_part_size(8 * MiB, std::nullopt), 8 * MiB);
  EXPECT_EQ(choose_part_size(1 * MiB, std::nullopt), 5 * MiB);  // never below the S3 minimum
  EXPECT_EQ(choose_part_size(8 * MiB, 1024 * MiB), 8 * MiB);
  // 100 GiB in 8 MiB parts would be 12,800 parts: grown to whole MiB so 10,000 suffice
  const auto grown = choose_part_size(8 * MiB, 100ull * 1024 * MiB);
  EXPECT_EQ(grown % MiB, 0u);
  EXPECT_LE((100ull * 1024 * MiB + grown - 1) / grown, kMaxParts);
  EXPECT_EQ(grown, 11 * MiB);
  EXPECT_EQ(choose_part_size(8 * MiB, 80'000 * MiB), 8 * MiB);  // exactly 10,000 parts
  EXPECT_EQ(choose_part_size(8 * MiB, 80'000 * MiB + 1), 9 * MiB);
  EXPECT_EQ(choose_part_size(8 * MiB, 5ull * 1024 * 1024 * MiB * 10), kMaxPartSize);  // beyond S3's 5 TiB limit
}

}  // namespace
}  // namespace s3up::storage::s3
