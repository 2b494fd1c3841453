// The files API: listing one's uploads, one upload's metadata, its bytes
// (streamed with Range and ETag, or a redirect to a presigned URL), deleting
// it. A user sees only their own files; admins see everyone's.
#include <memory>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/json/array.hpp>
#include <boost/url/parse.hpp>

#include "api/api.hpp"
#include "api/file_requests.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/ids.hpp"
#include "util/text.hpp"

namespace s3up::api {

namespace asio = boost::asio;
namespace json = boost::json;
namespace beast_http = boost::beast::http;
using beast_http::field;
using beast_http::verb;

namespace {


// Types a browser displays itself, with nothing of the file able to run
// script: images (not SVG), PDF, plain text, audio and video.
bool shows_safely_inline(std::string_view content_type) {
  const std::string type = util::media_type_essence(content_type);
  for (std::string_view safe : {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "application/pdf",
                                "text/plain", "video/mp4", "video/webm", "audio/mpeg", "audio/ogg", "audio/wav"}) {
    if (type == safe) return true;
  }
  return false;
}

struct ListQuery {
  db::FileListing listing;  // without its owner
  bool all = false;
};

// GET /files?q=&sort=created|name|size&order=asc|desc&limit=&cursor=&all=
ListQuery parse_list_query(std::string_view target) {
  ListQuery q;
  auto& listing = q.listing;
  listing.limit = kDefaultPageSize;
  const auto url = boost::urls::parse_origin_form(target);
  if (!url) throw ApiError(errc::bad_request, "malformed query string");
  std::optional<Cursor> cursor;
  std::optional<bool> descending;
  for (const auto& param : url->params()) {
    if (param.key == "limit") {
      listing.limit = page_limit(param.value);
    } else if (param.key == "cursor") {
      if (!param.value.empty()) {
        cursor = decode_cursor(param.value);
        if (!cursor) throw ApiError(errc::bad_request, "cursor is not one this service gave out");
      }
    } else if (param.key == "all") {
      if (param.value != "true" && param.value != "false")
        throw ApiError(errc::bad_request, "all must be true or false");
      q.all = param.value == "true";
    } else if (param.key == "q") {
      if (param.value.size() > upload::kMaxFileNameBytes) {
        throw ApiError(errc::bad_request, fmt::format("q is longer than a file name can be ({} bytes)", upload::kMaxFileNameBytes));
      }
      listing.name_contains = param.value;
    } else if (param.key == "sort") {
      if (param.value == "created") {
        listing.order = db::FileListing::Order::created;
      } else if (param.value == "name") {
        listing.order = db::FileListing::Order::name;
      } else if (param.value == "size") {
        listing.order = db::FileListing::Order::size;
      } else {
        throw ApiError(errc::bad_request, "sort must be created, name or size");
      }
    } else if (param.key == "order") {
      if (param.value != "asc" && param.value != "desc") throw ApiError(errc::bad_request, "order must be asc or desc");
      descending = param.value == "desc";
    }
  }
  // Newest and largest first, names from A.
  listing.descending = descending.value_or(listing.order != db::FileListing::Order::name);
  if (cursor) {
    if (cursor->order != listing.order || cursor->descending != listing.descending) {
      throw ApiError(errc::bad_request, "cursor belongs to a listing in another order: give the same sort and order");
    }
    listing.after = std::move(cursor->after);
  }
  return q;
}

// A single byte range of an object of `size` bytes.
// An object's bytes for the server to send: one streaming read from the
// store, a piece at a time as the client takes them (one piece in memory).
class Download final : public http::BodySource {
 public:
  Download(storage::ObjectStore& store, std::string key, std::string upload_id, std::uint64_t offset,
           std::uint64_t length)
      : store_(store), key_(std::move(key)), upload_id_(std::move(upload_id)), offset_(offset), length_(length) {}

  // Before any header is sent: a missing object is an error status then, not
  // a 200 with a body that ends short.
  asio::awaitable<void> open() override {
    // Nothing to send (an empty file): the record says all there is to say,
    // and the store is not asked.
    if (length_ == 0) co_return;
    std::optional<ApiError> refused;
    try {
      reader_ = co_await store_.open_reader(key_, offset_, length_);
    } catch (const storage::Error& e) {
      if (e.failure() == storage::Failure::not_found) {
        spdlog::error("upload {}: its record is complete but the store has no object {}", upload_id_, key_);
        refused = ApiError(errc::internal, "the file's bytes are missing from the store");
      } else {
        refused = api_error(e);
      }
    }
    if (refused) throw *refused;
  }

  asio::awaitable<std::span<const char>> next() override {
    if (!reader_) co_return std::span<const char>{};
    const auto piece = co_await reader_->read_some();
    if (piece.empty() && sent_ < length_) throw ApiError(errc::storage_error, "the object is shorter than its record");
    sent_ += piece.size();
    co_return piece;
  }

 private:
  storage::ObjectStore& store_;
  std::string key_, upload_id_;
  std::uint64_t offset_, length_;
  std::uint64_t sent_ = 0;
  std::unique_ptr<storage::ObjectReader> reader_;
};

}  // namespace

asio::awaitable<db::Upload> Api::visible_upload(const auth::Principal& caller, std::string_view id) {
  std::optional<db::Upload> upload;
  if (util::is_uuid(id)) {
    const std::string key(id);
    upload = co_await util::run_blocking(deps_.uploads.blocking, [&] { return deps_.uploads.records.get_upload(key); });
  }
  // A row being deleted is gone already as far as clients can tell.
  if (!upload || (upload->user_id != caller.user_id && !caller.is_admin) ||
      upload->status == db::UploadStatus::deleting) {
    throw ApiError(errc::not_found, "no such file");
  }
  co_return std::move(*upload);
}

asio::awaitable<http::Response> Api::list_files(http::Request& request) {
  const auto& caller = api::caller(request);
  const auto query = parse_list_query(request.header.target());
  if (query.all && !caller.is_admin) throw ApiError(errc::forbidden, "only admins may list every user's files");
  db::FileListing listing = query.listing;
  if (!query.all) listing.user_id = caller.user_id;
  // One more than asked: whether there is a next page.
  listing.limit = query.listing.limit + 1;
  auto rows = co_await util::run_blocking(deps_.uploads.blocking,
                                          [&] { return deps_.uploads.records.list_files(listing); });
  const bool more = static_cast<std::int64_t>(rows.size()) > query.listing.limit;
  if (more) rows.resize(static_cast<std::size_t>(query.listing.limit));
  json::array files;
  for (const auto& row : rows) files.push_back(file_json(row, /*details=*/true));
  json::object body{{"files", std::move(files)}};
  body["next_cursor"] = more ? json::value(encode_cursor(listing, rows.back())) : json::value(nullptr);
  co_return http::Response::json(http::Status::ok, body);
}

asio::awaitable<http::Response> Api::get_file(http::Request& request) {
  const auto upload = co_await visible_upload(caller(request), request.param("id"));
  co_return http::Response::json(http::Status::ok, file_json(upload, /*details=*/true));
}

asio::awaitable<http::Response> Api::get_content(http::Request& request) {
  const auto upload = co_await visible_upload(caller(request), request.param("id"));
  if (upload.status != db::UploadStatus::complete) throw ApiError(errc::not_found, "no such file");

  // The SHA-256 names the bytes exactly: a strong validator.
  const std::string etag = "\"" + upload.sha256 + "\"";
  const auto common = [&](http::Response& res) {
    res.set(field::etag, etag);
    res.set(field::cache_control, "private, no-cache");
  };
  if (none_match(request.header[field::if_none_match], etag)) {
    http::Response res(http::Status::not_modified);
    common(res);
    co_return res;
  }
  if (auto* presigner = deps_.uploads.store.presigner(); presigner && deps_.downloads.redirect) {
    const auto url = co_await presigner->presigned_get_url(upload.storage_key, deps_.downloads.url_ttl);
    http::Response res(http::Status::found);
    res.set(field::location, url);
    res.set(field::cache_control, "no-store");  // the URL expires; never cache the redirect
    co_return res;
  }

  const std::uint64_t size = upload.file_size;
  const auto range = parse_range(request.header[field::range], size, etag);
  const std::uint64_t first = range ? range->first : 0;
  const std::uint64_t end = range ? range->last + 1 : size;
  auto res = http::Response::stream(
      range ? http::Status::partial_content : http::Status::ok, end - first,
      std::make_shared<Download>(deps_.uploads.store, upload.storage_key, upload.id, first, end - first));
  common(res);
  res.set(field::accept_ranges, "bytes");
  res.set(field::content_type, upload.content_type.empty() ? "application/octet-stream" : upload.content_type);
  // Inline only through a link signed for it (the middleware checked the
  // signature, which covers the disposition), and only for types a browser
  // shows without running anything of the file's; else it is saved.
  const auto claim = DownloadLinks::claim_of(request.header.target());
  const bool show_inline = claim && claim->disposition == "inline" && shows_safely_inline(upload.content_type);
  res.set(field::content_disposition, util::content_disposition(show_inline ? "inline" : "attachment", upload.file_name));
  // Never let a browser second-guess the type of user content.
  res.set("X-Content-Type-Options", "nosniff");
  if (range) res.set(field::content_range, fmt::format("bytes {}-{}/{}", range->first, range->last, size));
  co_return res;
}

asio::awaitable<http::Response> Api::delete_file(http::Request& request) {
  const auto& caller = api::caller(request);
  const auto upload = co_await visible_upload(caller, request.param("id"));
  if (upload.status == db::UploadStatus::pending) {
    throw ApiError(errc::conflict, "the upload is still in progress");
  }
  // The row says 'deleting' first (no longer listed or served), then the
  // object goes, then the row. A crash in between leaves a deleting row that
  // the janitor finishes, never a complete row without its bytes or bytes
  // without a row. (A failed upload has no object left: its row just goes.)
  if (upload.status == db::UploadStatus::complete) {
    const bool marked = co_await util::run_blocking(deps_.uploads.blocking,
                                                    [&] { return deps_.uploads.records.mark_deleting(upload.id); });
    if (!marked) throw ApiError(errc::not_found, "no such file");  // another delete got there first
  }
  // Once marked, the deletion is decided: if the store or the database fails
  // now, the janitor finishes it, and the client hears so (202), not that
  // it failed (a 503 would say the file is still there).
  bool deleted = false, left_to_janitor = false;
  try {
    deleted = co_await upload::remove_object_then_row(deps_.uploads, upload);
  } catch (const storage::Error& e) {
    if (upload.status != db::UploadStatus::complete || e.failure() != storage::Failure::unavailable) throw;
    left_to_janitor = true;
  } catch (const db::Error& e) {
    if (upload.status != db::UploadStatus::complete || e.failure() != db::Failure::unavailable) throw;
    left_to_janitor = true;
  }
  if (left_to_janitor) {
    spdlog::warn("upload {} deleted by user {}; its object or row is left for the janitor (a peer is unavailable)",
                 upload.id, caller.user_id);
    co_return http::Response::json(http::Status::accepted, json::object{{"status", "deleting"}});
  }
  // Not there any more after our mark: the janitor finished it meanwhile.
  if (!deleted && upload.status != db::UploadStatus::complete) throw ApiError(errc::not_found, "no such file");
  spdlog::info("upload {} deleted by user {}", upload.id, caller.user_id);
  co_return http::Response(http::Status::no_content);
}

}  // namespace s3up::api
