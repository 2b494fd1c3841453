#include "http/multipart_parser.hpp"

#include <gtest/gtest.h>

#include <random>

namespace s3up::http {
namespace {

struct ParsedPart {
  MultipartPart part;
  std::string data;
  bool ended = false;
};

struct Result {
  std::vector<ParsedPart> parts;
  std::error_code error;
};

// Feeds `body` split at the given offsets and gathers what the events say.
Result parse_split(const std::string& boundary, const std::string& body, const std::vector<std::size_t>& cuts) {
  MultipartParser parser(boundary);
  Result r;
  std::vector<MultipartParser::Event> events;
  std::size_t prev = 0;
  auto feed = [&](std::size_t from, std::size_t to) {
    if (r.error) return;
    r.error = parser.feed(std::span<const char>(body.data() + from, to - from), events);
    for (auto& ev : events) {
      switch (ev.kind) {
        case MultipartParser::EventKind::part_begin: r.parts.push_back(ParsedPart{ev.part, "", false}); break;
        case MultipartParser::EventKind::data:
          EXPECT_FALSE(r.parts.empty());
          r.parts.back().data.append(ev.data.data(), ev.data.size());
          break;
        case MultipartParser::EventKind::part_end: r.parts.back().ended = true; break;
      }
    }
  };
  for (auto cut : cuts) {
    feed(prev, cut);
    prev = cut;
  }
  feed(prev, body.size());
  if (!r.error) r.error = parser.finish();
  return r;
}

Result parse_whole(const std::string& boundary, const std::string& body) { return parse_split(boundary, body, {}); }

const std::string kBoundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

std::string two_part_body(const std::string& file_content) {
  return "--" + kBoundary +
         "\r\n"
         "Content-Disposition: form-data; name=\"title\"\r\n"
         "\r\n"
         "holiday\r\n"
         "--" +
         kBoundary +
         "\r\n"
         "Content-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n"
         "Content-Type: image/jpeg\r\n"
         "\r\n" +
         file_content + "\r\n--" + kBoundary + "--\r\n";
}

void expect_two_parts(const Result& r, const std::string& file_content) {
  ASSERT_FALSE(r.error) << r.error.message();
  ASSERT_EQ(r.parts.size(), 2u);
  EXPECT_EQ(r.parts[0].part.name, "title");
  EXPECT_FALSE(r.parts[0].part.filename.has_value());
  EXPECT_EQ(r.parts[0].data, "holiday");
  EXPECT_EQ(r.parts[1].part.name, "file");
  EXPECT_EQ(r.parts[1].part.filename.value_or("<none>"), "photo.jpg");
  EXPECT_EQ(r.parts[1].part.content_type, "image/jpeg");
  EXPECT_EQ(r.parts[1].data, file_content);
  EXPECT_TRUE(r.parts[0].ended);
  EXPECT_TRUE(r.parts[1].ended);
}

TEST(MultipartParser, ParsesWholeBody) {
  const std::string content = "\xff\xd8\xff\xe0 binary \r\n-- not a boundary \r\n--";
  expect_two_parts(parse_whole(kBoundary, two_part_body(content)), content);
}

TEST(MultipartParser, EverySingleSplitPointGivesTheSameResult) {
  // Content full of near-boundaries: CR, LF, dashes, a boundary prefix.
  const std::string content = "a\r\n--" + kBoundary.substr(0, 10) + "\r\n\r-\r\n--" + kBoundary.substr(0, 30) + "x";
  const std::string body = two_part_body(content);
  for (std::size_t cut = 0; cut <= body.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    expect_two_parts(parse_split(kBoundary, body, {cut}), content);
  }
}

TEST(MultipartParser, EveryPairOfSplitPointsGivesTheSameResult) {
  const std::string content = "x\r\n--" + kBoundary.substr(0, 5);
  const std::string body = two_part_body(content);
  for (std::size_t a = 0; a <= body.size(); a += 3) {
    for (std::size_t b = a; b <= body.size(); ++b) {
      SCOPED_TRACE("cuts at " + std::to_string(a) + "," + std::to_string(b));
      expect_two_parts(parse_split(kBoundary, body, {a, b}), content);
    }
  }
}

TEST(MultipartParser, OneByteAtATime) {
  const std::string content = "hello\r\n-\r\n--";
  const std::string body = two_part_body(content);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < body.size(); ++i) cuts.push_back(i);
  expect_two_parts(parse_split(kBoundary, body, cuts), content);
}

TEST(MultipartParser, LargeBodyRandomChunkSizes) {
  std::mt19937_64 rng(42);
  std::string content(3 * 1024 * 1024 + 17, '\0');
  for (auto& c : content) c = static_cast<char>(rng());
  // plant near-misses of the delimiter throughout
  for (std::size_t i = 1000; i + 80 < content.size(); i += 99'991) {
    const std::string near = "\r\n--" + kBoundary.substr(0, (i / 7) % kBoundary.size());
    content.replace(i, near.size(), near);
  }
  const std::string body = two_part_body(content);
  for (int round = 0; round < 5; ++round) {
    std::vector<std::size_t> cuts;
    std::size_t pos = 0;
    std::uniform_int_distribution<std::size_t> chunk(1, round < 2 ? 100 : 70'000);
    while (true) {
      pos += chunk(rng);
      if (pos >= body.size()) break;
      cuts.push_back(pos);
    }
    expect_two_parts(parse_split(kBoundary, body, cuts), content);
  }
}

TEST(MultipartParser, PreambleAndEpilogueAreIgnored) {
  const std::string body = "This is a preamble.\r\nIt has lines.\r\n--" + kBoundary +
                           "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nA\r\n--" +
                           kBoundary + "--\r\nThis is the epilogue. --" + kBoundary + "\r\ngarbage";
  for (std::size_t cut = 0; cut <= body.size(); ++cut) {
    auto r = parse_split(kBoundary, body, {cut});
    ASSERT_FALSE(r.error) << r.error.message();
    ASSERT_EQ(r.parts.size(), 1u);
    EXPECT_EQ(r.parts[0].data, "A");
  }
}

TEST(MultipartParser, TransportPaddingAfterBoundaryIsAllowed) {
  const std::string body =
      "--" + kBoundary + "  \t\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--" + kBoundary + "--";
  auto r = parse_whole(kBoundary, body);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.parts.at(0).data, "v");
}

TEST(MultipartParser, EmptyFileContent) {
  const std::string body = "--" + kBoundary +
                           "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"empty\"\r\n\r\n\r\n--" +
                           kBoundary + "--\r\n";
  auto r = parse_whole(kBoundary, body);
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].data, "");
  EXPECT_TRUE(r.parts[0].ended);
}

TEST(MultipartParser, ExtendedFilenameTakesPrecedence) {
  const std::string body =
      "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fallback.txt\"; "
      "filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\nx\r\n--b--";
  auto r = parse_whole("b", body);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.parts.at(0).part.filename.value(), "\xE2\x82\xAC rates.txt");
}

TEST(MultipartParser, QuotedStringEscapesAndBackslashPaths) {
  const std::string body =
      "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"say \\\"hi\\\" "
      "C:\\dir\\a.txt\"\r\n\r\nx\r\n--b--";
  auto r = parse_whole("b", body);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.parts.at(0).part.filename.value(), "say \"hi\" C:\\dir\\a.txt");
}

TEST(MultipartParser, UnquotedParametersAndCaseInsensitiveNames) {
  const std::string body =
      "--b\r\ncontent-disposition: Form-Data; NAME=file; filename=a.txt\r\nCONTENT-TYPE: text/plain\r\n\r\n"
      "x\r\n--b--";
  auto r = parse_whole("b", body);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.parts.at(0).part.name, "file");
  EXPECT_EQ(r.parts.at(0).part.filename.value(), "a.txt");
  EXPECT_EQ(r.parts.at(0).part.content_type, "text/plain");
}

TEST(MultipartParser, MissingContentDispositionIsAnError) {
  auto r = parse_whole("b", "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--");
  EXPECT_EQ(r.error, multipart_errc::bad_part_header);
}

TEST(MultipartParser, GarbledHeaderLineIsAnError) {
  auto r = parse_whole("b", "--b\r\nthis is not a header\r\n\r\nx\r\n--b--");
  EXPECT_EQ(r.error, multipart_errc::bad_part_header);
}

TEST(MultipartParser, UnterminatedQuoteIsAnError) {
  auto r = parse_whole("b", "--b\r\nContent-Disposition: form-data; name=\"file\r\n\r\nx\r\n--b--");
  EXPECT_EQ(r.error, multipart_errc::bad_part_header);
}

TEST(MultipartParser, GarbageAfterBoundaryIsAnError) {
  auto r = parse_whole("b", "--bXYZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--");
  EXPECT_EQ(r.error, multipart_errc::bad_delimiter);
}

TEST(MultipartParser, TruncatedBodyIsAnError) {
  const std::string full = two_part_body("content");
  for (std::size_t len = 0; len < full.size() - 2; ++len) {  // the final CRLF is epilogue
    auto r = parse_whole(kBoundary, full.substr(0, len));
    EXPECT_TRUE(r.error) << "accepted a body truncated to " << len << " bytes";
  }
}

TEST(MultipartParser, BodyWithoutAnyBoundaryIsAnError) {
  auto r = parse_whole("b", "just some bytes, no multipart at all");
  EXPECT_EQ(r.error, multipart_errc::unexpected_end);
}

TEST(MultipartParser, OversizedHeaderBlockIsAnError) {
  std::string body = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: ";
  body += std::string(MultipartParser::max_header_block + 10, 'p');
  body += "\r\n\r\nx\r\n--b--";
  auto r = parse_whole("b", body);
  EXPECT_EQ(r.error, multipart_errc::header_too_large);
}

TEST(FormDataBoundary, QuotedAndUnquoted) {
  EXPECT_EQ(form_data_boundary("multipart/form-data; boundary=abc").value_or(""), "abc");
  EXPECT_EQ(form_data_boundary("multipart/form-data; boundary=\"a b:c\"").value_or(""), "a b:c");
  EXPECT_EQ(form_data_boundary("Multipart/Form-Data;boundary=xyz;charset=utf-8").value_or(""), "xyz");
  EXPECT_FALSE(form_data_boundary("multipart/form-data"));
  EXPECT_FALSE(form_data_boundary("multipart/form-data; boundary="));
  EXPECT_FALSE(form_data_boundary("multipart/form-data; boundary=" + std::string(71, 'a')));
  EXPECT_FALSE(form_data_boundary("application/json; boundary=abc"));
  EXPECT_FALSE(form_data_boundary(""));
}

}  // namespace
}  // namespace s3up::http
