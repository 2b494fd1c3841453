// The tus protocol's headers: what tus-js-client and Uppy send, and what the
// protocol refuses.
#include "api/tus_headers.hpp"

#include <gtest/gtest.h>

#include "util/crypto.hpp"

namespace s3up::api::tus {
namespace {

std::string b64(std::string_view s) { return util::base64(s); }

TEST(TusMetadata, PairsAsClientsSendThem) {
  // tus-js-client: "key base64,key base64"; a value may be empty or absent.
  const auto m = parse_metadata("filename " + b64("r\xC3\xA9sum\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC.pdf") + ",filetype " +
                                b64("application/pdf") + ",is_confidential,empty ");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 4u);
  EXPECT_EQ((*m)[0],
            (std::pair<std::string, std::string>{"filename", "r\xC3\xA9sum\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC.pdf"}));
  EXPECT_EQ((*m)[1].second, "application/pdf");
  EXPECT_EQ((*m)[2], (std::pair<std::string, std::string>{"is_confidential", ""}));
  EXPECT_EQ((*m)[3], (std::pair<std::string, std::string>{"empty", ""}));
  EXPECT_TRUE(parse_metadata("")->empty());
  EXPECT_EQ(parse_metadata("a " + b64("1") + ", b " + b64("2"))->size(), 2u);  // a space after the comma
}

TEST(TusMetadata, BrokenHeadersAreRefused) {
  EXPECT_FALSE(parse_metadata("a " + b64("1") + ",a " + b64("2"))) << "a key twice";
  EXPECT_FALSE(parse_metadata(",a " + b64("1"))) << "an empty first pair";
  EXPECT_FALSE(parse_metadata("a,,b")) << "an empty pair";
  EXPECT_FALSE(parse_metadata("name not-base64!"));
  EXPECT_FALSE(parse_metadata("name QQ")) << "base64 without its padding";
  EXPECT_FALSE(parse_metadata("k\x01y " + b64("1"))) << "a control character in a key";
}

TEST(TusChecksum, AlgorithmAndDigest) {
  const auto sha1 = util::base64_decode("qvTGHdzF6KLavt4PO0gs2a6pQ00=");  // SHA-1 of "hello"
  ASSERT_TRUE(sha1);
  const auto parsed = parse_checksum("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=");
  ASSERT_TRUE(std::holds_alternative<Checksum>(parsed));
  EXPECT_EQ(std::get<Checksum>(parsed).algorithm, "sha1");
  EXPECT_EQ(std::get<Checksum>(parsed).digest, *sha1);
  EXPECT_TRUE(std::holds_alternative<Checksum>(parse_checksum("sha256 " + std::string(43, 'A') + "=")));
  EXPECT_TRUE(std::holds_alternative<Checksum>(parse_checksum("md5 " + std::string(22, 'A') + "==")));
  EXPECT_TRUE(std::holds_alternative<Checksum>(parse_checksum("crc32 AAAAAA==")));
  EXPECT_EQ(std::get<ChecksumProblem>(parse_checksum("crc32 AAAAAAA=")), ChecksumProblem::malformed) << "5 bytes";
  EXPECT_EQ(std::get<ChecksumProblem>(parse_checksum("sha512 AAAAAA==")), ChecksumProblem::unsupported);
  EXPECT_EQ(std::get<ChecksumProblem>(parse_checksum("sha1")), ChecksumProblem::malformed);
  EXPECT_EQ(std::get<ChecksumProblem>(parse_checksum("sha1 AAAA")), ChecksumProblem::malformed) << "wrong length";
  EXPECT_EQ(std::get<ChecksumProblem>(parse_checksum("sha1 !!!!")), ChecksumProblem::malformed);
}

TEST(TusDates, UploadExpiresIsAnImfFixdate) {
  EXPECT_EQ(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_date(1'796'133'600'000'000), "Tue, 01 Dec 2026 14:00:00 GMT");
  EXPECT_EQ(http_date(951'782'400'999'999), "Tue, 29 Feb 2000 00:00:00 GMT");
}

TEST(Base64, PaddedStandardAlphabet) {
  EXPECT_EQ(util::base64_decode(""), "");
  EXPECT_EQ(util::base64_decode("QQ=="), "A");
  EXPECT_EQ(util::base64_decode("QUI="), "AB");
  EXPECT_EQ(util::base64_decode("QUJD"), "ABC");
  EXPECT_EQ(util::base64_decode("+/+/"), std::string("\xfb\xff\xbf", 3));
  EXPECT_FALSE(util::base64_decode("QQ"));
  EXPECT_FALSE(util::base64_decode("Q==="));
  EXPECT_FALSE(util::base64_decode("-_-_"));
  EXPECT_FALSE(util::base64_decode("QR=="));  // non-canonical trailing bits
}

}  // namespace
}  // namespace s3up::api::tus
