// The upload endpoints: POST /upload (a multipart form with a "file" field)
// and PUT /upload/<name> (the raw bytes). Each hands the engine the file's
// bytes as a source (the form's file part, or the body itself) to store in
// one pass.
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
  auto res = http::Response::json(http::Status::created, file_json(upload, /*details=*/false));
  res.set(field::location, "/files/" + upload.id);
  return res;
}

// The file of a multipart/form-data body as the engine reads it: the body is
// parsed until the first part named "file" that carries a file name begins
// (find_file(): its headers name the upload), then that part's bytes are
// handed out as they arrive. After them the rest of the body is read to its
// end and checked (other form fields are read past and ignored), so a form
// that turns out malformed fails the upload before it completes.
class FormFile final : public util::ByteSource {
 public:
  FormFile(http::BodyReader& body, std::string boundary) : body_(body), parser_(std::move(boundary)) {}

  // The file part's headers; nullopt if the body ends without one.
  asio::awaitable<std::optional<http::MultipartPart>> find_file() {
    for (;;) {
      while (next_ < events_.size()) {
        const auto& ev = events_[next_++];
        if (ev.kind == Kind::part_begin && ev.part.name == "file" && ev.part.filename && !ev.part.filename->empty()) {
          in_file_ = true;
          co_return ev.part;
        }
      }
      if (!co_await parse_more()) co_return std::nullopt;
    }
  }

  asio::awaitable<std::span<const char>> read_some() override {
    while (in_file_) {
      while (next_ < events_.size()) {
        const auto& ev = events_[next_++];
        if (ev.kind == Kind::data && !ev.data.empty()) co_return ev.data;
        if (ev.kind == Kind::part_end) in_file_ = false;
        if (!in_file_) break;
      }
      if (in_file_ && !co_await parse_more()) in_file_ = false;
    }
    while (co_await parse_more()) {
    }
    co_return std::span<const char>();
  }

 private:
  using Kind = http::MultipartParser::EventKind;

  // The next piece of the body through the parser; false at the body's end
  // (a form that does not close properly is invalid_multipart).
  asio::awaitable<bool> parse_more() {
    if (ended_) co_return false;
    const auto chunk = co_await body_.read_some();
    events_.clear();
    next_ = 0;
    if (chunk.empty()) {
      ended_ = true;
      if (auto ec = parser_.finish()) throw ApiError(errc::invalid_multipart, ec.message());
      co_return false;
    }
    if (auto ec = parser_.feed(chunk, events_)) throw ApiError(errc::invalid_multipart, ec.message());
    co_return true;
  }

  http::BodyReader& body_;
  http::MultipartParser parser_;
  std::vector<http::MultipartParser::Event> events_;  // from the last piece; their data is valid until the next
  std::size_t next_ = 0;
  bool in_file_ = false;
  bool ended_ = false;
};

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
      throw ApiError(
          errc::unsupported_media_type,
          "POST /upload takes multipart/form-data with a \"file\" field; use PUT /upload/<name> for raw bytes");
    }
    throw ApiError(errc::invalid_multipart, "multipart/form-data without a valid boundary");
  }
  const auto& limits = deps_.uploads.limits;
  const auto body_length = request.body.content_length();
  if (body_length && *body_length > limits.max_upload_bytes + kMultipartFramingAllowance) {
    throw upload::file_too_large(limits);
  }
  // The file is no larger than the body less its opening and closing
  // delimiters ("--" boundary CRLF ... CRLF "--" boundary "--").
  std::optional<std::uint64_t> file_size_bound;
  if (body_length && *body_length > 2 * boundary->size() + 10)
    file_size_bound = *body_length - (2 * boundary->size() + 10);

  FormFile file(request.body, *boundary);
  const auto part = co_await file.find_file();
  if (!part) throw ApiError(errc::missing_file, "the form has no \"file\" field with a file name");
  // The body's length bounds the file's (it sizes S3 parts).
  const upload::UploadPlan plan{.file_name = *part->filename,
                                .declared_type = part->content_type,
                                .at_most = file_size_bound,
                                .size_hint = body_length,
                                .requester = requester(request, "form")};
  const auto stored = co_await uploads_.store(principal, plan, file);
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
  const upload::UploadPlan plan{.file_name = std::move(file_name),
                                .declared_type = std::string(request.header[field::content_type]),
                                .exact_length = length,
                                .size_hint = length,
                                .requester = requester(request, "put")};
  const auto stored = co_await uploads_.store(principal, plan, request.body);
  co_return created(stored);
}

}  // namespace s3up::api
