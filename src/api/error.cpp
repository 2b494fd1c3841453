#include "api/error.hpp"

#include <algorithm>

#include <boost/beast/core/string.hpp>

namespace s3up {
namespace {

using http::Status;
// The tus checksum extension's own status.
constexpr Status kChecksumMismatch = static_cast<Status>(460);

struct Entry {
  std::string_view slug;
  Status status;
  std::string_view reason = {};  // for a status Beast has no reason phrase for
};

Entry entry(errc e) {
  switch (e) {
    case errc::bad_request: return {"bad_request", Status::bad_request};
    case errc::invalid_multipart: return {"invalid_multipart", Status::bad_request};
    case errc::missing_file: return {"missing_file", Status::bad_request};
    case errc::invalid_file_name: return {"invalid_file_name", Status::bad_request};
    case errc::unauthorized: return {"unauthorized", Status::unauthorized};
    case errc::forbidden: return {"forbidden", Status::forbidden};
    case errc::not_found: return {"not_found", Status::not_found};
    case errc::method_not_allowed: return {"method_not_allowed", Status::method_not_allowed};
    case errc::timeout: return {"request_timeout", Status::request_timeout};
    case errc::conflict: return {"conflict", Status::conflict};
    case errc::length_required: return {"length_required", Status::length_required};
    case errc::precondition_failed: return {"unsupported_tus_version", Status::precondition_failed};
    case errc::locked: return {"upload_locked", Status::locked};
    case errc::checksum_mismatch: return {"checksum_mismatch", kChecksumMismatch, "Checksum Mismatch"};
    case errc::file_too_large: return {"file_too_large", Status::payload_too_large};
    case errc::unsupported_media_type: return {"unsupported_media_type", Status::unsupported_media_type};
    case errc::range_not_satisfiable: return {"range_not_satisfiable", Status::range_not_satisfiable};
    case errc::gone: return {"gone", Status::gone};
    case errc::unprocessable: return {"unprocessable", Status::unprocessable_entity};
    case errc::hook_unavailable: return {"pre_upload_hook_unavailable", Status::service_unavailable};
    case errc::quota_exceeded: return {"quota_exceeded", Status::payload_too_large};
    case errc::too_many_requests: return {"too_many_requests", Status::too_many_requests};
    case errc::uri_too_long: return {"uri_too_long", Status::uri_too_long};
    case errc::headers_too_large: return {"headers_too_large", Status::request_header_fields_too_large};
    case errc::not_implemented: return {"not_implemented", Status::not_implemented};
    case errc::internal: return {"internal", Status::internal_server_error};
    case errc::storage_error: return {"storage_error", Status::bad_gateway};
    case errc::storage_unavailable: return {"storage_unavailable", Status::service_unavailable};
    case errc::database_unavailable: return {"database_unavailable", Status::service_unavailable};
    case errc::shutting_down: return {"shutting_down", Status::service_unavailable};
    case errc::insufficient_storage: return {"insufficient_storage", Status::insufficient_storage};
    case errc::client_disconnected: return {"client_disconnected", http::kClientClosedRequest};
  }
  return {"internal", Status::internal_server_error};
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
  const bool challenged = std::any_of(headers.begin(), headers.end(), [](const auto& h) {
    return boost::beast::iequals(h.first, "WWW-Authenticate");
  });
  if (code == errc::unauthorized && !challenged) headers.emplace_back("WWW-Authenticate", "Bearer realm=\"s3uploader\"");
  return headers;
}
}  // namespace

ApiError::ApiError(errc code, const std::string& message, http::Headers headers)
    : http::Error(error_status(code), std::string(error_slug(code)), message,
                  with_table_headers(code, std::move(headers))),
      code_(code) {
  if (const auto reason = entry(code).reason; !reason.empty()) with_reason(std::string(reason));
}

ApiError::ApiError(errc code, const std::string& message, int retry_after_seconds)
    : ApiError(code, message, http::Headers{{"Retry-After", std::to_string(retry_after_seconds)}}) {}
http::Status error_status(errc e) { return entry(e).status; }

}  // namespace s3up
