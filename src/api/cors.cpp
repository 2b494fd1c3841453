// Cross-origin requests from browser pages on the origins cors_origins
// lists: preflights answered with what tus clients send, and every answer
// (errors too) exposing the tus headers.
#include <algorithm>

#include "api/api.hpp"

namespace s3up::api {

namespace asio = boost::asio;
using boost::beast::http::field;
using boost::beast::http::verb;

http::Middleware cors(const Web& web) {
  return [&web](http::Request& request, const http::Handler& next) -> asio::awaitable<http::Response> {
    const std::string_view origin = request.header[field::origin];
    const auto& allowed = web.cors_origins;
    const bool any = std::find(allowed.begin(), allowed.end(), "*") != allowed.end();
    if (origin.empty() || (!any && std::find(allowed.begin(), allowed.end(), origin) == allowed.end())) {
      co_return co_await next(request);
    }
    const std::string allow_origin = any ? "*" : std::string(origin);
    const bool preflight = request.header.method() == verb::options &&
                           request.header.find(field::access_control_request_method) != request.header.end();
    http::Response res(http::Status::ok);
    if (preflight) {
      // 200, not 204: some browsers refuse a 204 preflight.
      res.set(field::access_control_allow_methods, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
      res.set(field::access_control_allow_headers,
              "Authorization, Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, "
              "Upload-Defer-Length, Upload-Checksum, X-HTTP-Method-Override, X-Request-Id");
      res.set(field::access_control_max_age, "86400");
    } else {
      res = co_await next(request);
      res.set(field::access_control_expose_headers,
              "Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Upload-Defer-Length, "
              "Tus-Version, Tus-Resumable, Tus-Max-Size, Tus-Extension, Tus-Checksum-Algorithm, X-Request-Id");
    }
    res.set(field::access_control_allow_origin, allow_origin);
    res.set(field::vary, "Origin");
    co_return res;
  };
}

}  // namespace s3up::api
