#include "upload/api.hpp"

#include <algorithm>
#include <array>
#include <exception>
#include <optional>

#include <boost/json/object.hpp>
#include <boost/url/decode_view.hpp>
#include <boost/url/pct_string_view.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/multipart_parser.hpp"
#include "util/blocking.hpp"
#include "util/crypto.hpp"
#include "util/sniff.hpp"
#include "util/text.hpp"

namespace s3up::upload {

namespace asio = boost::asio;
namespace json = boost::json;
namespace beast_http = boost::beast::http;
using beast_http::field;
using beast_http::verb;

namespace {

constexpr std::size_t kMaxFileNameBytes = 1024;
constexpr std::size_t kMaxMediaTypeBytes = 255;

// Decodes `s` as UTF-8, calling `each(code point)`; false if it is not
// valid UTF-8 (truncated or overlong sequences, surrogates, beyond U+10FFFF)
// or `each` returned false.
template <class Each>
bool for_each_code_point(std::string_view s, Each each) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      n = 0;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size() && n > 0) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    if (!each(cp)) return false;
    i += n + 1;
  }
  return true;
}

// Code points a file name may not contain: they are invisible, or change how
// the rest of the name displays. C0 and C1 controls and DEL; the bidirectional
// embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which
// make "evil\u202Egpj.exe" display as "evilexe.jpg"; and the bidi marks
// U+200E, U+200F and U+061C.
bool is_refused_in_file_names(std::uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F || cp == 0x061C;
}

bool is_token_char(char c) {  // RFC 9110 §5.6.2 tchar
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_token_char); }

// Character sets a stored type may name: the ones browsers decode the same
// way everywhere. (utf-7 and friends have been used to smuggle script.)
constexpr std::array<std::string_view, 7> kAllowedCharsets = {"utf-8",        "us-ascii", "iso-8859-1", "windows-1252",
                                                              "utf-16",       "utf-16le", "utf-16be"};

ApiError quota_exceeded() { return ApiError(errc::quota_exceeded, "this upload would exceed your storage quota"); }

ApiError too_large(const Limits& limits) {
  return ApiError(errc::file_too_large,
                  "file exceeds the maximum upload size of " + std::to_string(limits.max_upload_bytes) + " bytes");
}

// One upload on its way into the store: the pending row, the writer (which
// hashes what it stores), the size so far, and the first bytes for sniffing.
class UploadInProgress {
 public:
  // `size_hint`: the body's length if known (it sizes S3 parts). A raw
  // body's length is the file's size (`exact_size`); a multipart body's is
  // the file plus its framing, so only `most`: the file can be no larger.
  UploadInProgress(const Dependencies& deps, const auth::Principal& principal, std::string file_name,
                   std::string declared_type, std::optional<std::uint64_t> size_hint, bool exact_size,
                   std::optional<std::uint64_t> most = std::nullopt)
      : deps_(deps), declared_type_(std::move(declared_type)), size_hint_(size_hint),
        exact_size_(exact_size && size_hint), most_bytes_(exact_size_ ? size_hint : most) {
    record_.user_id = principal.user_id;
    record_.file_name = std::move(file_name);
    if (principal.quota_bytes) {
      quota_ = *principal.quota_bytes;
    } else if (deps.limits.default_quota) {
      quota_ = static_cast<std::int64_t>(*deps.limits.default_quota);
    }
  }
  ~UploadInProgress() {
    if (!record_.id.empty()) deps_.live->remove(record_.id);
  }
  UploadInProgress(const UploadInProgress&) = delete;
  UploadInProgress& operator=(const UploadInProgress&) = delete;

  // Writes the pending row, then opens the writer: the row exists before the
  // first byte is stored, so a crash leaves a trace the janitor can find.
  asio::awaitable<void> begin() {
    if (!is_acceptable_file_name(record_.file_name)) {
      throw ApiError(errc::invalid_file_name,
                     "file name must be 1-1024 bytes of UTF-8 without control or bidirectional formatting characters");
    }
    record_.id = util::uuid_v7();
    record_.storage_key = "u/" + std::to_string(record_.user_id) + "/" + record_.id;
    record_.created_at = util::now_micros();
    record_.status = db::UploadStatus::pending;
    record_.content_type = normalize_media_type(declared_type_).value_or("");
    // Registered before the row exists: the janitor never mistakes it for a dead one.
    if (!deps_.live->add(record_.id, record_.user_id, deps_.limits.max_concurrent_uploads)) {
      record_.id.clear();  // nothing registered, nothing to undo
      throw ApiError(errc::too_many_requests,
                     fmt::format("at most {} uploads at once per user", deps_.limits.max_concurrent_uploads), 1);
    }
    co_await util::run_blocking(deps_.blocking, [&] { deps_.metadata.create_pending(record_); });
    row_created_ = true;
    // A known file length is reserved against the quota before a byte is
    // stored (413 at once if it does not fit). A multipart file's upper bound
    // is tried too (concurrent uploads then do not starve each other bit by
    // bit); if it does not fit, the file's bytes are reserved as they arrive,
    // and only they decide.
    if (most_bytes_ && quota_ != db::kNoQuota) {
      const bool granted = co_await try_reserve(*most_bytes_);
      if (!granted && exact_size_) throw quota_exceeded();
    }
    spdlog::debug("upload {} started by user {}: key {}", record_.id, record_.user_id, record_.storage_key);
    const storage::ObjectMetadata metadata{record_.content_type, record_.file_name, size_hint_};
    writer_ = co_await deps_.store.open_writer(record_.storage_key, metadata);
  }

  asio::awaitable<void> write(std::span<const char> data) {
    if (size_ + data.size() > deps_.limits.max_upload_bytes) {
      throw too_large(deps_.limits);
    }
    size_ += data.size();
    // An unknown length is reserved as it grows; without a quota there is
    // nothing to reserve, and no coroutine call per chunk.
    if (quota_ != db::kNoQuota && size_ > reserved_) co_await reserve(size_ - reserved_);
    if (sniff_head_.size() < util::kSniffBytes) {
      sniff_head_.append(data.data(), std::min(data.size(), util::kSniffBytes - sniff_head_.size()));
    }
    co_await writer_->write(data);
    // With allowed types, refuse as soon as the first bytes tell (the writer
    // is aborted: nothing stays), not after the whole file arrived.
    if (!type_checked_ && !deps_.limits.allowed_types.empty() && sniff_head_.size() == util::kSniffBytes) {
      co_await check_type();
    }
    // Checked here, not in the coroutine: a writer without one (local disk)
    // would otherwise cost a coroutine call per chunk.
    if (!store_upload_id_recorded_ && !writer_->store_upload_id().empty()) co_await record_store_upload_id();
  }

  // Commits the object, then marks the row complete; returns the API's view.
  asio::awaitable<json::object> finish() {
    record_.file_size = size_;
    if (!deps_.limits.allowed_types.empty() && !type_checked_) co_await check_type();
    // A type the client did not name is sniffed for the record (the object's
    // own Content-Type was fixed when the writer opened).
    const bool sniff_type = deps_.limits.allowed_types.empty() &&
                            (record_.content_type.empty() || record_.content_type == "application/octet-stream");
    // Runs on the blocking pool once the object is committed (with the local
    // store in the commit's own trip there); fail() reads the flags after.
    bool marked = false;
    const storage::ObjectWriter::RecordCommitted mark_complete = [&](const storage::CommittedObject& committed) {
      committed_ = true;
      if (sniff_type) record_.content_type = util::sniff_mime_type(sniff_head_, util::SniffPurpose::label);
      record_.sha256 = committed.sha256;
      if (committed.size != size_) throw ApiError(errc::internal, "object store stored a different size");
      record_.completed_at = util::now_micros();
      // If the database fails here we cannot know whether the row became
      // complete (the commit may have landed before the connection broke), so
      // the object must stay: fail() leaves both to the janitor, which finds
      // the row complete (all is well) or still pending (it removes the object).
      completion_unknown_ = true;
      marked = deps_.metadata.mark_complete(record_);
      completion_unknown_ = false;
    };
    co_await writer_->commit_and_record(mark_complete, deps_.blocking);
    if (!marked) throw ApiError(errc::conflict, "the upload was cancelled while it was being stored");
    completed_ = true;
    spdlog::debug("upload {} complete: {} bytes, {}", record_.id, record_.file_size, record_.content_type);
    co_return upload_json(record_, /*details=*/false);
  }

  // Undoes whatever exists: the object (or partial write) and the pending row.
  // Never throws: it runs on the error path and logs its own failures.
  asio::awaitable<void> fail() {
    if (completed_) co_return;
    if (completion_unknown_) {
      spdlog::warn("upload {}: the database failed while marking it complete; its object {} stays for the janitor",
                   record_.id, record_.storage_key);
      co_return;
    }
    try {
      if (writer_ && !committed_) co_await writer_->abort();
      if (committed_) co_await deps_.store.remove(record_.storage_key);
    } catch (const std::exception& e) {
      spdlog::error("upload {}: removing the object failed: {}", record_.id, e.what());
    }
    writer_.reset();
    if (row_created_) {
      try {
        co_await util::run_blocking(deps_.blocking, [&] { deps_.metadata.mark_failed(record_.id, util::now_micros()); });
      } catch (const std::exception& e) {
        spdlog::error("upload {}: marking the row failed did not work: {}", record_.id, e.what());
      }
    }
  }

  const std::string& id() const { return record_.id; }

 private:
  // Reserves room for `needed` more bytes against the owner's quota (ahead in
  // steps, so a long upload asks the database now and then, not per chunk);
  // 413 quota_exceeded the moment they do not fit. Called only under a quota.
  asio::awaitable<void> reserve(std::uint64_t needed) {
    constexpr std::uint64_t kStep = 8 * 1024 * 1024;
    if (needed == 0) co_return;
    if (needed < kStep) {
      const bool ahead = co_await try_reserve(kStep);
      if (ahead) co_return;
    }
    const bool granted = co_await try_reserve(needed);
    if (granted) co_return;
    throw quota_exceeded();
  }

  // Reserves `bytes` more if they fit; false (nothing reserved) if not.
  asio::awaitable<bool> try_reserve(std::uint64_t bytes) {
    const auto ask = static_cast<std::int64_t>(bytes);
    const bool granted = co_await util::run_blocking(deps_.blocking, [&] {
      return deps_.metadata.reserve_quota(record_.id, record_.user_id, ask, quota_);
    });
    if (granted) reserved_ += bytes;
    co_return granted;
  }

  // With allowed types the type is what the bytes say (libmagic), whatever
  // the client declared or the name suggests; that type is stored and served.
  asio::awaitable<void> check_type() {
    const auto sniffed = co_await util::run_blocking(deps_.blocking, [&] { return util::sniff_mime_type(sniff_head_); });
    if (!type_allowed(sniffed, deps_.limits.allowed_types)) {
      throw ApiError(errc::unsupported_media_type, "files of type " + sniffed + " are not accepted here");
    }
    record_.content_type = sniffed;
    type_checked_ = true;
  }

  // A multipart upload in the store now exists (once the first part is sent):
  // its id goes on the pending row, so a clean-up after a crash can abort it.
  asio::awaitable<void> record_store_upload_id() {
    const std::string_view id = writer_->store_upload_id();
    store_upload_id_recorded_ = true;
    co_await util::run_blocking(deps_.blocking, [&] { deps_.metadata.set_store_upload_id(record_.id, id); });
  }

  const Dependencies& deps_;
  std::string declared_type_;
  std::optional<std::uint64_t> size_hint_;  // sizes S3 parts
  bool exact_size_;                         // size_hint_ is the file's size: reserved up front
  std::optional<std::uint64_t> most_bytes_;  // the file's size or an upper bound on it, if known
  bool store_upload_id_recorded_ = false;
  db::Upload record_;
  std::unique_ptr<storage::ObjectWriter> writer_;
  std::uint64_t size_ = 0;
  std::string sniff_head_;
  bool row_created_ = false;
  bool committed_ = false;
  bool completed_ = false;
  bool completion_unknown_ = false;  // mark_complete threw: the row may or may not say complete
  bool type_checked_ = false;        // the sniffed type passed allowed_types
  std::int64_t quota_ = db::kNoQuota;  // the owner's quota (their own or the default)
  std::uint64_t reserved_ = 0;       // bytes reserved against it so far
};

http::Response created(const json::object& body) {
  auto res = http::Response::json(201, body);
  res.set(field::location, "/files/" + std::string(body.at("file_id").as_string()));
  return res;
}

void log_failure(const std::optional<UploadInProgress>& upload, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const http::Error& e) {
    spdlog::info("upload {} failed: {}", upload ? upload->id() : "-", e.what());
  } catch (const std::exception& e) {
    spdlog::error("upload {} failed: {}", upload ? upload->id() : "-", e.what());
  }
}

// Runs an upload's steps (which emplace `upload` and finish it) and answers
// 201; on any failure undoes whatever the upload created, then rethrows.
// (The cleanup needs co_await, which a catch block cannot hold.)
// `steps` must capture by reference only; see util/blocking.hpp for why.
template <class Steps>
asio::awaitable<http::Response> upload_or_undo(std::optional<UploadInProgress>& upload, Steps steps) {
  std::exception_ptr error;
  json::object result;
  try {
    result = co_await steps();
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    log_failure(upload, error);
    if (upload) co_await upload->fail();
    std::rethrow_exception(error);
  }
  co_return created(result);
}

}  // namespace

bool LiveUploads::add(const std::string& id, std::int64_t user_id, unsigned max_per_user) {
  std::lock_guard lock(mutex_);
  auto& count = per_user_[user_id];
  if (max_per_user > 0 && count >= max_per_user) {
    if (count == 0) per_user_.erase(user_id);
    return false;
  }
  ++count;
  owners_.emplace(id, user_id);
  return true;
}

void LiveUploads::remove(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = owners_.find(id);
  if (it == owners_.end()) return;
  if (--per_user_[it->second] == 0) per_user_.erase(it->second);
  owners_.erase(it);
}

bool LiveUploads::contains(const std::string& id) const {
  std::lock_guard lock(mutex_);
  return owners_.contains(id);
}

bool type_allowed(std::string_view media_type, const std::vector<std::string>& patterns) {
  if (patterns.empty()) return true;
  const std::string type = util::ascii_lower(util::trim(media_type.substr(0, media_type.find(';'))));
  for (const auto& p : patterns) {
    if (p == "*" || p == "*/*" || p == type) return true;
    if (p.ends_with("/*") && type.starts_with(std::string_view(p).substr(0, p.size() - 1))) return true;
  }
  return false;
}

json::object upload_json(const db::Upload& u, bool details) {
  json::object o{
      {"file_id", u.id},
      {"file_name", u.file_name},
      {"file_size", u.file_size},
      {"upload_time", util::rfc3339(u.created_at)},
      {"content_type", u.content_type},
      {"sha256", u.sha256},
  };
  if (details) {
    o["user_id"] = u.user_id;
    o["status"] = db::to_string(u.status);
    o["completed_at"] = u.completed_at ? json::value(util::rfc3339(*u.completed_at)) : json::value(nullptr);
  }
  return o;
}

std::optional<std::string> normalize_media_type(std::string_view declared) {
  if (declared.size() > kMaxMediaTypeBytes) return std::nullopt;
  // The same reading as a part's headers get: value lower-cased, parameters
  // unquoted; nullopt for a parameter without '=' or an unterminated quote.
  auto parsed = http::parse_header_value(declared);
  if (!parsed) return std::nullopt;
  const std::string_view essence = parsed->value;
  const auto slash = essence.find('/');
  if (slash == std::string_view::npos || !is_token(essence.substr(0, slash)) || !is_token(essence.substr(slash + 1))) {
    return std::nullopt;
  }
  std::string normalized = std::move(parsed->value);
  // Of the parameters only an allowed charset is kept: nothing else a client
  // wrote is served back.
  if (const auto charset = parsed->params.find("charset"); charset != parsed->params.end()) {
    const auto name = util::ascii_lower(charset->second);
    if (std::find(kAllowedCharsets.begin(), kAllowedCharsets.end(), name) != kAllowedCharsets.end()) {
      normalized += "; charset=" + name;
    }
  }
  return normalized;
}

bool is_acceptable_file_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxFileNameBytes) return false;
  return for_each_code_point(name, [](std::uint32_t cp) { return !is_refused_in_file_names(cp); });
}

const auth::Principal& caller(const http::Request& request) {
  return std::any_cast<const auth::Principal&>(request.context.caller);
}

http::Middleware authenticated(auth::Authenticator& authenticator) {
  return [&authenticator](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    auto principal = co_await authenticator.authenticate(request.header[field::authorization]);
    request.context.user_id = principal.user_id;
    request.context.caller = std::move(principal);
    co_return co_await next(request);
  };
}

http::Middleware rate_limited(auth::TokenBuckets& buckets) {
  return [&buckets](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    if (const auto wait = buckets.take(caller(request).token_id, std::chrono::steady_clock::now())) {
      throw ApiError(errc::too_many_requests, "rate limit for this token exceeded", *wait);
    }
    co_return co_await next(request);
  };
}

Api::Api(Dependencies deps) : deps_(std::move(deps)) {
  // Every route but the health check is for a known caller, within their rate.
  std::vector<http::Middleware> caller_steps{authenticated(deps_.authenticator)};
  if (deps_.rate_limit.per_second > 0) {
    buckets_ = std::make_unique<auth::TokenBuckets>(deps_.rate_limit);
    caller_steps.push_back(rate_limited(*buckets_));
  }
  const auto route = [&](verb method, std::string_view pattern, auto member, std::vector<http::Middleware> steps) {
    router_.add(method, pattern, [this, member](http::Request& r) { return (this->*member)(r); }, std::move(steps));
  };
  route(verb::get, "/healthz", &Api::healthz, {});
  route(verb::post, "/upload", &Api::upload_form, caller_steps);
  route(verb::put, "/upload/{name*}", &Api::upload_raw, caller_steps);
  route(verb::get, "/files", &Api::list_files, caller_steps);
  route(verb::get, "/files/{id}", &Api::get_file, caller_steps);
  route(verb::delete_, "/files/{id}", &Api::delete_file, caller_steps);
  route(verb::get, "/files/{id}/content", &Api::get_content, caller_steps);
}

asio::awaitable<http::Response> Api::handle(http::Request& request) { co_return co_await router_(request); }

asio::awaitable<http::Response> Api::healthz(http::Request&) {
  co_return http::Response::json(200, json::object{{"status", "ok"}});
}

asio::awaitable<http::Response> Api::upload_form(http::Request& request) {
  const auto& principal = caller(request);
  const auto boundary = http::form_data_boundary(request.header[field::content_type]);
  if (!boundary) {
    // The media type alone decides 415; a form whose parameters do not parse
    // (a boundary="abc with no closing quote) is a malformed form.
    const std::string_view declared = request.header[field::content_type];
    const auto essence = util::ascii_lower(util::trim(declared.substr(0, declared.find(';'))));
    if (essence != "multipart/form-data") {
      throw ApiError(errc::unsupported_media_type,
                     "POST /upload takes multipart/form-data with a \"file\" field; use PUT /upload/<name> for raw bytes");
    }
    throw ApiError(errc::invalid_multipart, "multipart/form-data without a valid boundary");
  }
  const auto max = deps_.limits.max_upload_bytes;
  if (auto len = request.body.content_length(); len && *len > max + kMultipartFramingAllowance) {
    throw too_large(deps_.limits);
  }

  // The file is no larger than the body less its opening and closing
  // delimiters ("--" boundary CRLF ... CRLF "--" boundary "--").
  std::optional<std::uint64_t> file_size_bound;
  if (auto len = request.body.content_length(); len && *len > 2 * boundary->size() + 10) {
    file_size_bound = *len - (2 * boundary->size() + 10);
  }
  http::MultipartParser parser(*boundary);
  std::vector<http::MultipartParser::Event> events;
  std::optional<UploadInProgress> upload;
  bool in_file_part = false;
  co_return co_await upload_or_undo(upload, [&]() -> asio::awaitable<json::object> {
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
            upload.emplace(deps_, principal, *ev.part.filename, ev.part.content_type, request.body.content_length(),
                           /*exact_size=*/false, file_size_bound);
            co_await upload->begin();
            in_file_part = true;
          }
        } else if (ev.kind == Kind::data) {
          if (in_file_part) co_await upload->write(ev.data);
        } else {
          in_file_part = false;
        }
      }
    }
    if (auto ec = parser.finish()) throw ApiError(errc::invalid_multipart, ec.message());
    if (!upload) throw ApiError(errc::missing_file, "the form has no \"file\" field with a file name");
    co_return co_await upload->finish();
  });
}

asio::awaitable<http::Response> Api::upload_raw(http::Request& request) {
  const auto& principal = caller(request);
  // The name is the rest of the path, percent-decoded.
  const auto encoded = boost::urls::make_pct_string_view(request.param("name"));
  if (!encoded) throw ApiError(errc::invalid_file_name, "file name in the path is not valid percent-encoding");
  std::string file_name;
  encoded->decode({}, boost::urls::string_token::assign_to(file_name));
  const auto max = deps_.limits.max_upload_bytes;
  if (file_name.empty()) throw ApiError(errc::invalid_file_name, "PUT /upload/<file name>: the file name is missing");
  if (auto len = request.body.content_length(); len && *len > max) {
    throw too_large(deps_.limits);
  }
  std::optional<UploadInProgress> upload;
  co_return co_await upload_or_undo(upload, [&]() -> asio::awaitable<json::object> {
    upload.emplace(deps_, principal, std::move(file_name), std::string(request.header[field::content_type]),
                   request.body.content_length(), /*exact_size=*/true);
    co_await upload->begin();
    for (;;) {
      const auto chunk = co_await request.body.read_some();
      if (chunk.empty()) break;
      co_await upload->write(chunk);
    }
    co_return co_await upload->finish();
  });
}

}  // namespace s3up::upload
