// The upload module's pure pieces: allowed-type patterns and file names.
#include "upload/api.hpp"

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
}

}  // namespace
}  // namespace s3up::upload
