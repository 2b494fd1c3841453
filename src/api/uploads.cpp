// The upload endpoints: POST /upload (a multipart form with a "file" field)
// and PUT /upload/<name> (the raw bytes). Each creates an upload session,
// appends the body's bytes at their offsets, and completes it.
#include <boost/url/decode_view.hpp>
#include <boost/url/pct_string_view.hpp>

#include "api/api.hpp"
#include "http/multipart_parser.hpp"
#include "util/text.hpp"

namespace s3up::api {

namespace asio = boost::asio;
namespace json = boost::json;
using boost::beast::http::field;

namespace {

http::Response created(const db::Upload& upload) {
  auto res = http::Response::json(201, upload_json(upload, /*details=*/false));
  res.set(field::location, "/files/" + upload.id);
  return res;
}

}  // namespace

asio::awaitable<http::Response> Api::upload_form(http::Request& request) {
  const auto& principal = caller(request);
  const auto boundary = http::form_data_boundary(request.header[field::content_type]);
  if (!boundary) {
    // The media type alone decides 415; a form whose parameters do not parse
    // (a boundary="abc with no closing quote) is a malformed form.
    const std::string_view declared = request.header[field::content_type];
    const auto essence = util::media_type_essence(declared);
    if (essence != "multipart/form-data") {
      throw ApiError(errc::unsupported_media_type,
                     "POST /upload takes multipart/form-data with a \"file\" field; use PUT /upload/<name> for raw bytes");
    }
    throw ApiError(errc::invalid_multipart, "multipart/form-data without a valid boundary");
  }
  const auto& limits = deps_.uploads.limits;
  if (auto len = request.body.content_length(); len && *len > limits.max_upload_bytes + kMultipartFramingAllowance) {
    throw upload::file_too_large(limits);
  }

  // The file is no larger than the body less its opening and closing
  // delimiters ("--" boundary CRLF ... CRLF "--" boundary "--").
  std::optional<std::uint64_t> file_size_bound;
  if (auto len = request.body.content_length(); len && *len > 2 * boundary->size() + 10) {
    file_size_bound = *len - (2 * boundary->size() + 10);
  }
  http::MultipartParser parser(*boundary);
  std::vector<http::MultipartParser::Event> events;
  std::optional<upload::UploadSession> upload;
  bool in_file_part = false;
  const auto stored = co_await upload::with_session(upload, [&]() -> asio::awaitable<db::Upload> {
    for (;;) {
      const auto chunk = co_await request.body.read_some();
      if (chunk.empty()) break;
      if (auto ec = parser.feed(chunk, events)) throw ApiError(errc::invalid_multipart, ec.message());
      for (auto& ev : events) {
        using Kind = http::MultipartParser::EventKind;
        if (ev.kind == Kind::part_begin) {
          // The first part named "file" that carries a file name is the file;
          // other form fields are read past and ignored.
          if (!upload && ev.part.name == "file" && ev.part.filename && !ev.part.filename->empty()) {
            // The body's length bounds the file's (it sizes S3 parts).
            upload.emplace(deps_.uploads, principal,
                           upload::UploadPlan{*ev.part.filename, ev.part.content_type, std::nullopt, file_size_bound,
                                              request.body.content_length()});
            co_await upload->create();
            in_file_part = true;
          }
        } else if (ev.kind == Kind::data) {
          if (in_file_part) co_await upload->append(upload->offset(), ev.data);
        } else {
          in_file_part = false;
        }
      }
    }
    if (auto ec = parser.finish()) throw ApiError(errc::invalid_multipart, ec.message());
    if (!upload) throw ApiError(errc::missing_file, "the form has no \"file\" field with a file name");
    co_return co_await upload->complete();
  });
  co_return created(stored);
}

asio::awaitable<http::Response> Api::upload_raw(http::Request& request) {
  const auto& principal = caller(request);
  // The name is the rest of the path, percent-decoded.
  const auto encoded = boost::urls::make_pct_string_view(request.param("name"));
  if (!encoded) throw ApiError(errc::invalid_file_name, "file name in the path is not valid percent-encoding");
  std::string file_name;
  encoded->decode({}, boost::urls::string_token::assign_to(file_name));
  if (file_name.empty()) throw ApiError(errc::invalid_file_name, "PUT /upload/<file name>: the file name is missing");
  const auto length = request.body.content_length();
  if (length && *length > deps_.uploads.limits.max_upload_bytes) throw upload::file_too_large(deps_.uploads.limits);
  std::optional<upload::UploadSession> upload;
  const auto stored = co_await upload::with_session(upload, [&]() -> asio::awaitable<db::Upload> {
    upload.emplace(deps_.uploads, principal,
                   upload::UploadPlan{std::move(file_name), std::string(request.header[field::content_type]), length,
                                      std::nullopt, length});
    co_await upload->create();
    for (;;) {
      const auto chunk = co_await request.body.read_some();
      if (chunk.empty()) break;
      co_await upload->append(upload->offset(), chunk);
    }
    co_return co_await upload->complete();
  });
  co_return created(stored);
}

}  // namespace s3up::api
