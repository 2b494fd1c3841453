// The upload module's pure pieces: allowed-type patterns and file names.
#include "upload/engine.hpp"
#include "upload/policy.hpp"

#include <gtest/gtest.h>

namespace s3up::upload {
namespace {

TEST(AllowedTypes, PatternsMatchTheMediaTypeOnly) {
  const std::vector<std::string> patterns{"image/*", "application/pdf"};
  EXPECT_TRUE(type_allowed("image/png", patterns));
  EXPECT_TRUE(type_allowed("IMAGE/JPEG", patterns));
  EXPECT_TRUE(type_allowed("application/pdf; charset=binary", patterns));
  EXPECT_FALSE(type_allowed("text/plain", patterns));
  EXPECT_FALSE(type_allowed("imagefoo/png", patterns));
  EXPECT_FALSE(type_allowed("application/pdfx", patterns));
  EXPECT_FALSE(type_allowed("", patterns));
  EXPECT_TRUE(type_allowed("text/plain", {}));  // no list: everything
  EXPECT_TRUE(type_allowed("text/plain", {"*/*"}));
}

TEST(FileNames, AcceptedAndRefused) {
  EXPECT_TRUE(is_acceptable_file_name("r\xC3\xA9sum\xC3\xA9 (final).pdf"));
  EXPECT_TRUE(is_acceptable_file_name(std::string(1024, 'n')));
  EXPECT_FALSE(is_acceptable_file_name(std::string(1025, 'n')));
  EXPECT_FALSE(is_acceptable_file_name(""));
  EXPECT_FALSE(is_acceptable_file_name(std::string("a\0b", 3)));
  EXPECT_FALSE(is_acceptable_file_name("\xC3\x28"));
  EXPECT_FALSE(is_acceptable_file_name("tab\there"));
  // C1 controls (U+0080-U+009F) and DEL
  EXPECT_FALSE(is_acceptable_file_name("a\xC2\x80z"));
  EXPECT_FALSE(is_acceptable_file_name("a\xC2\x9Fz"));
  EXPECT_FALSE(is_acceptable_file_name("a\x7Fz"));
  EXPECT_TRUE(is_acceptable_file_name("a\xC2\xA0z"));  // U+00A0, just past C1
  // bidi embeddings, overrides, isolates and marks
  for (const char* bidi :
       {"\xE2\x80\xAA", "\xE2\x80\xAB", "\xE2\x80\xAC", "\xE2\x80\xAD", "\xE2\x80\xAE", "\xE2\x81\xA6", "\xE2\x81\xA7",
        "\xE2\x81\xA8", "\xE2\x81\xA9", "\xE2\x80\x8E", "\xE2\x80\x8F", "\xD8\x9C"}) {
    EXPECT_FALSE(is_acceptable_file_name(std::string("evil") + bidi + "gpj.exe")) << bidi;
  }
  EXPECT_TRUE(is_acceptable_file_name("\xE2\x80\xAF.txt"));                      // U+202F, a space, not a control
  EXPECT_TRUE(is_acceptable_file_name("\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D.txt"));  // Hebrew letters themselves
}

TEST(MediaTypes, NormalisedToOneTypeWithAnAllowedCharset) {
  EXPECT_EQ(normalize_media_type("image/png"), "image/png");
  EXPECT_EQ(normalize_media_type("  Image/PNG  "), "image/png");
  EXPECT_EQ(normalize_media_type("text/plain; charset=UTF-8"), "text/plain; charset=utf-8");
  EXPECT_EQ(normalize_media_type("text/plain;charset=\"utf-8\";format=flowed"), "text/plain; charset=utf-8");
  EXPECT_EQ(normalize_media_type("text/html; charset=utf-7"), "text/html");
  EXPECT_EQ(normalize_media_type("text/html;"), "text/html");
  EXPECT_EQ(normalize_media_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
  for (const char* bad :
       {"", "text", "text/", "/html", "a/b, text/html", "text/html x", "text/h\x01tml", "text/plain; charset",
        "text/plain; charset=\"utf-8", "text/plain; =x", "t\xC3\xA9xt/plain"}) {
    EXPECT_EQ(normalize_media_type(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(normalize_media_type(std::string(300, 'a') + "/b"), std::nullopt);
}

}  // namespace
}  // namespace s3up::upload

namespace s3up::upload {
namespace {

TEST(LiveUploads, ARequestForAnUploadInProgressTakesNoPlaceOfItsOwn) {
  LiveUploads live;
  ASSERT_TRUE(live.add("a", 1, 1));
  EXPECT_FALSE(live.add("b", 1, 1)) << "one upload at a time";
  EXPECT_TRUE(live.add("x", 2, 1)) << "per user";
  EXPECT_TRUE(live.add("a", 1, 1)) << "a reconnect for the same upload";
  live.remove("a");
  EXPECT_TRUE(live.contains("a")) << "its other request is still running";
  EXPECT_FALSE(live.add("b", 1, 1));
  live.remove("a");
  EXPECT_FALSE(live.contains("a"));
  EXPECT_TRUE(live.add("c", 1, 1)) << "the place is free again";
  live.remove("c");
  live.remove("c");  // more removes than adds change nothing
  EXPECT_TRUE(live.add("d", 1, 1));
  EXPECT_FALSE(live.add("e", 1, 1));
}

}  // namespace
}  // namespace s3up::upload
