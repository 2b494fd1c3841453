#include "api/error.hpp"

namespace s3up {
namespace {

struct Entry {
  std::string_view slug;
  unsigned status;
};

Entry entry(errc e) {
  switch (e) {
    case errc::bad_request: return {"bad_request", 400};
    case errc::invalid_multipart: return {"invalid_multipart", 400};
    case errc::missing_file: return {"missing_file", 400};
    case errc::invalid_file_name: return {"invalid_file_name", 400};
    case errc::unauthorized: return {"unauthorized", 401};
    case errc::forbidden: return {"forbidden", 403};
    case errc::not_found: return {"not_found", 404};
    case errc::method_not_allowed: return {"method_not_allowed", 405};
    case errc::timeout: return {"request_timeout", 408};
    case errc::conflict: return {"conflict", 409};
    case errc::length_required: return {"length_required", 411};
    case errc::precondition_failed: return {"unsupported_tus_version", 412};
    case errc::locked: return {"upload_locked", 423};
    case errc::checksum_mismatch: return {"checksum_mismatch", 460};
    case errc::file_too_large: return {"file_too_large", 413};
    case errc::unsupported_media_type: return {"unsupported_media_type", 415};
    case errc::range_not_satisfiable: return {"range_not_satisfiable", 416};
    case errc::quota_exceeded: return {"quota_exceeded", 413};
    case errc::too_many_requests: return {"too_many_requests", 429};
    case errc::uri_too_long: return {"uri_too_long", 414};
    case errc::headers_too_large: return {"headers_too_large", 431};
    case errc::not_implemented: return {"not_implemented", 501};
    case errc::internal: return {"internal", 500};
    case errc::storage_error: return {"storage_error", 502};
    case errc::storage_unavailable: return {"storage_unavailable", 503};
    case errc::database_unavailable: return {"database_unavailable", 503};
    case errc::shutting_down: return {"shutting_down", 503};
    case errc::insufficient_storage: return {"insufficient_storage", 507};
    case errc::client_disconnected: return {"client_disconnected", 499};
  }
  return {"internal", 500};
}

class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "s3uploader"; }
  std::string message(int ev) const override { return std::string(entry(static_cast<errc>(ev)).slug); }
};

}  // namespace

const std::error_category& api_category() {
  static const Category category;
  return category;
}

std::error_code make_error_code(errc e) { return {static_cast<int>(e), api_category()}; }
std::string_view error_slug(errc e) { return entry(e).slug; }

namespace {
http::Headers with_table_headers(errc code, http::Headers headers) {
  if (code == errc::unauthorized) headers.emplace_back("WWW-Authenticate", "Bearer realm=\"s3uploader\"");
  return headers;
}
}  // namespace

ApiError::ApiError(errc code, const std::string& message, http::Headers headers)
    : http::Error(error_status(code), std::string(error_slug(code)), message,
                  with_table_headers(code, std::move(headers))),
      code_(code) {}

ApiError::ApiError(errc code, const std::string& message, int retry_after_seconds)
    : ApiError(code, message, http::Headers{{"Retry-After", std::to_string(retry_after_seconds)}}) {}
unsigned error_status(errc e) { return entry(e).status; }

}  // namespace s3up
