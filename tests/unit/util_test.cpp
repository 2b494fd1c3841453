#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <set>

#include "api/error.hpp"
#include "upload/sniff.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"
#include "util/time.hpp"
#include "util/units.hpp"

namespace s3up::util {
namespace {

using upload::sniff_mime_type;
using upload::SniffPurpose;  // the sniffer lives with the uploads that use it

// A resumable upload's hash is saved with its offset and restored by the
// next request, maybe on another instance: whatever the splits, the digest
// is the whole input's.
TEST(ResumableSha256, SavedAndRestoredAtAnySplitGivesTheWholeDigest) {
  std::string data(300'000, '\0');
  std::uint32_t x = 12345;
  for (auto& c : data) c = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
  EXPECT_EQ(to_hex(ResumableSha256().digest()), sha256_hex(""));
  for (const std::size_t step : {1ul, 63ul, 64ul, 65ul, 5000ul, 99'999ul}) {
    SCOPED_TRACE(step);
    std::string saved = ResumableSha256().save();
    for (std::size_t at = 0; at < data.size(); at += step) {
      auto h = ResumableSha256::restore(saved);
      ASSERT_TRUE(h) << saved;
      h->update(std::string_view(data).substr(at, step));
      saved = h->save();
      EXPECT_EQ(h->bytes_hashed(), std::min(data.size(), at + step));
      if (step == 5000) EXPECT_LE(saved.size(), 200u);
    }
    EXPECT_EQ(to_hex(ResumableSha256::restore(saved)->digest()), sha256_hex(data));
  }
  ResumableSha256 h;
  h.update(std::string_view("abc"));
  EXPECT_EQ(to_hex(h.digest()), sha256_hex("abc"));
  h.update(std::string_view("def"));  // digest() leaves the state going on
  EXPECT_EQ(to_hex(h.digest()), sha256_hex("abcdef"));
}

TEST(ResumableSha256, TextItDidNotMakeIsRefused) {
  ResumableSha256 h;
  h.update(std::string_view("0123456789"));
  const std::string saved = h.save();
  EXPECT_TRUE(ResumableSha256::restore(saved));
  EXPECT_FALSE(ResumableSha256::restore(""));
  EXPECT_FALSE(ResumableSha256::restore("sha256.1:"));
  EXPECT_FALSE(ResumableSha256::restore("md5.1:" + saved.substr(9)));
  EXPECT_FALSE(ResumableSha256::restore(saved.substr(0, saved.size() - 2)));  // partial block shorter than the count
  EXPECT_FALSE(ResumableSha256::restore(saved + "AAAA"));
  EXPECT_FALSE(ResumableSha256::restore("sha256.1:!!!!"));
}

TEST(Sha256, KnownVectors) {
  // FIPS 180-2 examples
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;  // incremental == one shot
  h.update(std::string_view("ab"));
  h.update(std::string_view("c"));
  EXPECT_EQ(to_hex(h.finish()), sha256_hex("abc"));
}

TEST(NamedHash, TheAlgorithmsOfUploadChecksum) {
  const auto digest = [](std::string_view name, std::string_view data) {
    auto h = NamedHash::make(name);
    for (char c : data) h->update(std::string_view(&c, 1));  // piece by piece
    const auto raw = h->finish();
    return to_hex(raw);
  };
  EXPECT_EQ(digest("crc32", "123456789"), "cbf43926");  // the CRC-32 check value, big-endian
  EXPECT_EQ(digest("crc32", ""), "00000000");
  // The catalogued check values of CRC-32/ISCSI and CRC-64/NVME (S3's
  // x-amz-checksum-crc32c and -crc64nvme).
  EXPECT_EQ(digest("crc32c", "123456789"), "e3069283");
  EXPECT_EQ(digest("crc32c", ""), "00000000");
  EXPECT_EQ(digest("crc64nvme", "123456789"), "ae8b14860a799888");
  EXPECT_EQ(digest("crc64nvme", ""), "0000000000000000");
  EXPECT_EQ(digest("sha1", "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(digest("sha256", "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(digest("md5", "abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(NamedHash::make("sha512"), nullptr);
  EXPECT_EQ(NamedHash::make("CRC32"), nullptr);
}

// The CRCs run wide paths on long inputs (ISA-L's folding, crcutil's
// strides): whole and in uneven pieces, they agree.
TEST(NamedHash, CrcsOfLongInputsDoNotDependOnThePieces) {
  std::string data(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  for (const char* name : {"crc32", "crc32c", "crc64nvme"}) {
    auto whole = NamedHash::make(name);
    whole->update(data);
    auto pieces = NamedHash::make(name);
    for (std::size_t at = 0, step = 1; at < data.size(); at += step, step = step * 3 + 1) {
      pieces->update(std::string_view(data).substr(at, step));
    }
    EXPECT_EQ(to_hex(whole->finish()), to_hex(pieces->finish())) << name;
  }
}

TEST(Md5, KnownVectorsAndContentMd5Form) {
  auto md5 = [](std::string_view s) {
    Md5 h;
    h.update(s);
    return h.finish();
  };
  // RFC 1321 appendix A.5
  EXPECT_EQ(to_hex(md5("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(to_hex(md5("abc")), "900150983cd24fb0d6963f7d28e17f72");
  Md5 h;  // incremental == one shot
  h.update(std::string_view("message "));
  h.update(std::string_view("digest"));
  EXPECT_EQ(to_hex(h.finish()), "f96b697d7cb7938d525a2f31aaf161d0");
  // The Content-MD5 header of an empty body, as S3 documents it
  EXPECT_EQ(base64(md5("")), "1B2M2Y8AsgTpgAmY7PhCfg==");
}

TEST(Base64, Rfc4648Vectors) {
  auto enc = [](std::string_view s) { return base64(s); };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg==");
  EXPECT_EQ(enc("fo"), "Zm8=");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foob"), "Zm9vYg==");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
  EXPECT_EQ(enc("\xfb\xff"), "+/8=");
}

TEST(Base64Url, Rfc4648Vectors) {
  auto enc = [](std::string_view s) { return base64url(s); };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg");
  EXPECT_EQ(enc("fo"), "Zm8");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
  EXPECT_EQ(enc("\xfb\xff"), "-_8");
}

TEST(UuidV7, FormatVersionVariantAndOrder) {
  std::set<std::string> seen;
  std::string prev;
  for (int i = 0; i < 1000; ++i) {
    const auto id = uuid_v7();
    ASSERT_TRUE(is_uuid(id)) << id;
    EXPECT_EQ(id[14], '7');
    EXPECT_TRUE(std::string("89ab").find(id[19]) != std::string::npos) << id;
    EXPECT_TRUE(seen.insert(id).second);
    EXPECT_GE(id.substr(0, 13), prev.substr(0, prev.empty() ? 0 : 13));  // millisecond prefix never goes back
    prev = id;
  }
  const auto ms = static_cast<std::uint64_t>(now_micros() / 1000);
  const auto id = uuid_v7();
  const std::uint64_t stamped = std::stoull(id.substr(0, 8) + id.substr(9, 4), nullptr, 16);
  EXPECT_NEAR(static_cast<double>(stamped), static_cast<double>(ms), 5000.0);
  EXPECT_FALSE(is_uuid("not-a-uuid"));
  EXPECT_FALSE(is_uuid("01a21f6e-6370-73a5-a152-2f0b6b32782g"));
}

TEST(Rfc3339, UtcWithMilliseconds) {
  EXPECT_EQ(rfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339(1'795'000'000'123'456), "2026-11-18T11:06:40.123Z");
}

TEST(Rfc3339, ParsesWhatMetadataEndpointsWrite) {
  EXPECT_EQ(parse_rfc3339("2026-11-18T11:06:40Z"), 1'795'000'000'000'000);
  EXPECT_EQ(parse_rfc3339("2026-11-18T11:06:40.123456Z"), 1'795'000'000'123'456);
  EXPECT_EQ(parse_rfc3339("2026-11-18T11:06:40.5Z"), 1'795'000'000'500'000);
  EXPECT_EQ(parse_rfc3339("2026-11-18T12:06:40+01:00"), 1'795'000'000'000'000);
  EXPECT_EQ(parse_rfc3339("2026-11-18T10:36:40-00:30"), 1'795'000'000'000'000);
  EXPECT_EQ(parse_rfc3339(rfc3339(1'795'000'000'123'000)), 1'795'000'000'123'000);
  EXPECT_EQ(parse_rfc3339("2026-11-18 11:06:40.123456+00"), 1'795'000'000'123'456);  // PostgreSQL, ISO style
  for (const char* bad : {"", "2026-11-18", "2026-11-18T11:06:40", "2026-13-18T11:06:40Z", "2026-11-18T11:06:40.Z",
                          "2026-11-18T11:06:40Zjunk", "2026/11/18T11:06:40Z", "2026-11-18T11:06:40+0100"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

TEST(ContentDisposition, AsciiFallbackAndRfc8187Name) {
  EXPECT_EQ(content_disposition_attachment("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf");
  EXPECT_EQ(content_disposition_attachment("\xE2\x82\xAC rates \"q\".txt"),
            "attachment; filename=\"_ rates _q_.txt\"; filename*=UTF-8''%E2%82%AC%20rates%20%22q%22.txt");
}

TEST(Units, Sizes) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("1048576"), 1048576u);
  EXPECT_EQ(parse_size("5GiB"), 5ull << 30);
  EXPECT_EQ(parse_size("5 gib"), 5ull << 30);
  EXPECT_EQ(parse_size("512k"), 512u * 1024);
  EXPECT_EQ(parse_size("10MB"), 10'000'000u);
  EXPECT_EQ(parse_size("1.5MiB"), 1572864u);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("GiB"));
  EXPECT_FALSE(parse_size("5 parsecs"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("99999999999999999999TiB"));
  EXPECT_EQ(format_size(5ull << 30), "5 GiB");
  EXPECT_EQ(format_size(17), "17 B");
}

TEST(Units, Durations) {
  using namespace std::chrono_literals;
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("90"), 90s);
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("5m"), 5min);
  EXPECT_EQ(parse_duration("30d"), std::chrono::hours(24 * 30));
  EXPECT_FALSE(parse_duration("soon"));
  EXPECT_FALSE(parse_duration("5 weeks"));
}

TEST(Sniff, RecognisesCommonTypes) {
  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89", 33);
  EXPECT_EQ(sniff_mime_type(png), "image/png");
  EXPECT_EQ(sniff_mime_type("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"), "application/pdf");
  EXPECT_EQ(sniff_mime_type("hello world, plain text here\n"), "text/plain");
  EXPECT_EQ(sniff_mime_type(""), "application/octet-stream");
}

// A label (no allowed_types) looks at plain text with libmagic's cheap tests
// only; binary data and text that starts like a format get every test, so
// they are named as a decision would name them.
TEST(Sniff, LabelsAgreeWithDecisionsWhereTheyMatter) {
  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89", 33);
  const std::string html = "<!DOCTYPE html>\n<html><head><title>x</title></head><body>hi</body></html>\n";
  const std::string svg = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\"></svg>\n";
  const std::string script = "#!/bin/sh\necho hello\n";
  const std::string pdf = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
  std::string random(4096, '\0');
  unsigned state = 12345;
  for (auto& c : random) c = static_cast<char>((state = state * 1103515245 + 12345) >> 16);
  for (const auto& data : {png, html, svg, script, pdf, random}) {
    EXPECT_EQ(sniff_mime_type(data, SniffPurpose::label), sniff_mime_type(data, SniffPurpose::decide))
        << data.substr(0, 20);
  }
  EXPECT_EQ(sniff_mime_type(html, SniffPurpose::label), "text/html");
  EXPECT_EQ(sniff_mime_type(std::string(1024, 'a') + "\n", SniffPurpose::label), "text/plain");
  EXPECT_EQ(sniff_mime_type("{\"a\": [1, 2, 3]}\n", SniffPurpose::label), "application/json");
  EXPECT_EQ(sniff_mime_type(random, SniffPurpose::label), "application/octet-stream");
}

TEST(Sniff, EveryThreadGetsTheSameAnswer) {
  const std::string html = "<html><body>same everywhere</body></html>\n";
  const std::string expected = sniff_mime_type(html);
  std::vector<std::thread> threads;
  std::atomic<int> agreed{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (sniff_mime_type(html) == expected && sniff_mime_type(html, SniffPurpose::label) == expected) ++agreed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(agreed, 160);
}

TEST(ApiErrors, CodesAndStatuses) {
  EXPECT_EQ(error_status(errc::unauthorized), http::Status::unauthorized);
  EXPECT_EQ(error_status(errc::file_too_large), http::Status::payload_too_large);
  EXPECT_EQ(error_status(errc::unsupported_media_type), http::Status::unsupported_media_type);
  EXPECT_EQ(error_status(errc::headers_too_large), http::Status::request_header_fields_too_large);
  EXPECT_EQ(error_slug(errc::file_too_large), "file_too_large");
  std::error_code ec = errc::not_found;
  EXPECT_EQ(ec.message(), "not_found");
}

}  // namespace
}  // namespace s3up::util
