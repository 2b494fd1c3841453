#pragma once
// The one list of errors a client can see. Each has a machine code (the "code"
// of the JSON error body), an HTTP status, and the headers its answer always
// carries (401's WWW-Authenticate); anything not on the list becomes 500
// "internal". Registered with std::error_code so lower layers can return them
// as values; ApiError (an http::Error) carries one up through coroutine
// frames to the router's error answers, which render the JSON body.
#include <string>
#include <string_view>
#include <system_error>

#include "http/message.hpp"

namespace s3up {

enum class errc {
  bad_request = 1,         // 400 malformed request
  invalid_multipart,       // 400 body is not valid multipart/form-data
  missing_file,            // 400 no "file" field
  invalid_file_name,       // 400
  unauthorized,            // 401 missing/unknown/expired/revoked token
  forbidden,               // 403
  not_found,               // 404
  method_not_allowed,      // 405
  conflict,                // 409
  length_required,         // 411
  precondition_failed,     // 412 a Tus-Resumable version we do not speak
  locked,                  // 423 another request is writing this upload (tus)
  checksum_mismatch,       // 460 (tus checksum extension) the chunk's bytes do not match Upload-Checksum
  file_too_large,          // 413 over the configured maximum
  unsupported_media_type,  // 415
  range_not_satisfiable,   // 416
  gone,                    // 410 an upload link that expired or was revoked
  unprocessable,           // 422 the pre-upload hook refused it so
  hook_unavailable,        // 503 the pre-upload hook cannot be asked
  quota_exceeded,          // 413 the user's storage quota would be exceeded
  too_many_requests,       // 429 rate limit or concurrent uploads (with Retry-After)
  uri_too_long,            // 414 the request line is longer than the header limit
  headers_too_large,       // 431
  not_implemented,         // 501 a transfer coding we do not implement
  internal,                // 500
  storage_error,           // 502 the object store answered with an error
  storage_unavailable,     // 503 the object store cannot be reached
  database_unavailable,    // 503 the metadata store failed
  shutting_down,           // 503 the server is stopping
  insufficient_storage,    // 507 the disk is full
  timeout,                 // 408 the client was too slow
  client_disconnected,     // 499 (nginx's convention) the client went away; nothing is sent
};

const std::error_category& api_category();
std::error_code make_error_code(errc e);

// The JSON "code" and the HTTP status of an error.
std::string_view error_slug(errc e);
http::Status error_status(errc e);

class ApiError : public http::Error {
 public:
  // `headers` come on top of the table's own for `code`: Allow for 405,
  // Content-Range for 416, Retry-After for 429 and 503.
  ApiError(errc code, const std::string& message, http::Headers headers = {});
  // For 429 and 503: when it makes sense to try again (the Retry-After header).
  ApiError(errc code, const std::string& message, int retry_after_seconds);
  errc code() const { return code_; }

 private:
  errc code_;
};

}  // namespace s3up

template <>
struct std::is_error_code_enum<s3up::errc> : std::true_type {};
