// SigV4 against the examples AWS publishes in the S3 documentation:
// "Signature Calculations for the Authorization Header: Transferring Payload
// in a Single Chunk" (GET Object, PUT Object, GET Bucket Lifecycle, GET
// Bucket (List Objects)) and "Authenticating Requests: Using Query
// Parameters" (presigned GET Object).
#include "storage/s3/sigv4.hpp"

#include <gtest/gtest.h>

#include "util/crypto.hpp"

namespace s3up::storage::s3 {
namespace {

const Credentials kExample{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const std::string kHost = "examplebucket.s3.amazonaws.com";

SigningContext may_24_2013() {
  return SigningContext{"us-east-1", "s3", std::chrono::system_clock::from_time_t(1369353600)};  // 2013-05-24T00:00:00Z
}

std::string authorization_of(const SignedRequest& s) {
  for (const auto& [k, v] : s.headers) {
    if (k == "authorization") return v;
  }
  return "";
}

TEST(SigV4, GetObjectWithRange) {
  SignableRequest r{"GET", "/test.txt", {}, {{"Host", kHost}, {"Range", "bytes=0-9"}}, std::string(kEmptyPayloadHash)};
  const auto s = sign(r, kExample, may_24_2013());
  EXPECT_EQ(authorization_of(s),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(SigV4, PutObjectWithPayloadAndStorageClass) {
  const std::string payload_hash = util::sha256_hex("Welcome to Amazon S3.");
  ASSERT_EQ(payload_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SignableRequest r{
      "PUT",
      "/test$file.text",
      {},
      {{"Host", kHost}, {"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
      payload_hash};
  const auto s = sign(r, kExample, may_24_2013());
  EXPECT_EQ(s.signed_headers, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  EXPECT_EQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  EXPECT_NE(s.canonical_request.find("\n/test%24file.text\n"), std::string::npos);
}

TEST(SigV4, GetBucketLifecycleValuelessQuery) {
  SignableRequest r{"GET", "/", {{"lifecycle", ""}}, {{"Host", kHost}}, std::string(kEmptyPayloadHash)};
  const auto s = sign(r, kExample, may_24_2013());
  EXPECT_EQ(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  EXPECT_NE(s.canonical_request.find("GET\n/\nlifecycle=\n"), std::string::npos);
}

TEST(SigV4, ListObjectsSortsTheQuery) {
  SignableRequest r{
      "GET", "/", {{"prefix", "J"}, {"max-keys", "2"}}, {{"Host", kHost}}, std::string(kEmptyPayloadHash)};
  const auto s = sign(r, kExample, may_24_2013());
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  EXPECT_NE(s.canonical_request.find("\nmax-keys=2&prefix=J\n"), std::string::npos);
}

TEST(SigV4, PresignedGetObject) {
  SignableRequest r{"GET", "/test.txt", {}, {{"Host", kHost}}, ""};
  const auto q = presign_query(r, kExample, may_24_2013(), std::chrono::seconds(86400));
  EXPECT_EQ(q,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(SigV4, SessionTokenIsSignedAndSent) {
  Credentials temp = kExample;
  temp.session_token = "FwoGZXIvYXdzEXAMPLETOKEN";
  SignableRequest r{"GET", "/test.txt", {}, {{"Host", kHost}}, std::string(kEmptyPayloadHash)};
  const auto s = sign(r, temp, may_24_2013());
  EXPECT_EQ(s.signed_headers, "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
  bool sent = false;
  for (const auto& [k, v] : s.headers) sent |= (k == "x-amz-security-token" && v == temp.session_token);
  EXPECT_TRUE(sent);
  EXPECT_NE(s.signature, sign(r, kExample, may_24_2013()).signature);
}

TEST(SigV4, UriEncoding) {
  EXPECT_EQ(uri_encode("a-b_c.d~e", true), "a-b_c.d~e");
  EXPECT_EQ(uri_encode("a b/c+d=\xC3\xA9", true), "a%20b%2Fc%2Bd%3D%C3%A9");
  EXPECT_EQ(uri_encode("/bucket/u/1/x y", false), "/bucket/u/1/x%20y");
  EXPECT_EQ(amz_date(std::chrono::system_clock::from_time_t(1369353600)), "20130524T000000Z");
}

TEST(SigV4, HeaderValuesAreTrimmedAndJoined) {
  SignableRequest r{"GET", "/", {}, {{"Host", kHost}, {"X-Amz-Meta-A", "  two   spaces  "}, {"x-amz-meta-a", "b"}}, ""};
  const auto s = sign(r, kExample, may_24_2013());
  EXPECT_NE(s.canonical_request.find("\nx-amz-meta-a:two spaces,b\n"), std::string::npos) << s.canonical_request;
}

}  // namespace
}  // namespace s3up::storage::s3
