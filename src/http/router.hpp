#pragma once
// Requests to handlers: the route table, and the middleware chain that runs
// around every request (request id, error answers) or around the routes that
// ask for it (authentication, rate limits).
//
// A route is a method, a path pattern and a handler; its name (the pattern,
// "/files/{id}") is what the access log shows instead of a path that may
// carry something a log should not (a file name, a pasted token). The router
// answers for every route: 404 for a path no route has, 405 with Allow for a
// method it lacks, HEAD through the GET handler (same headers, the GET's
// Content-Length, the server sends no body), and OPTIONS with Allow unless
// the path has an OPTIONS route of its own (tus).
#include <any>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "http/message.hpp"

namespace s3up::http {

struct RequestContext {
  std::string request_id;
  std::string peer_address;             // the client's IP address as the socket sees it
  bool secure = false;                  // the connection is TLS
  std::string route;                    // the matched route's name: its pattern, "/files/{id}"
  std::optional<std::int64_t> user_id;  // the caller, once known: for the access log
  // The authenticated caller, set by an authentication middleware; its type
  // is the application's.
  std::any caller;
};

struct Request {
  const RequestHeader& header;
  BodyReader& body;
  RequestContext& context;
  // The path parameters of the matched route, as they appear in the target
  // (still percent-encoded), in pattern order.
  std::vector<std::pair<std::string_view, std::string_view>> params{};

  std::string_view param(std::string_view name) const;
  std::string_view path() const;  // the target without its query
};

using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;
// A step around a handler: it may answer itself or call `next`.
using Middleware = std::function<boost::asio::awaitable<Response>(Request&, const Handler& next)>;

// `handler` wrapped in `steps`, the first outermost.
Handler chain(std::vector<Middleware> steps, Handler handler);

class Router {
 public:
  // A pattern is a path of literal segments and {name} parameters, each one
  // non-empty segment; a last {name*} takes the rest of the path, slashes
  // included, and may be empty. `steps` run around this route's handler only.
  void add(beast_http::verb method, std::string_view pattern, Handler handler, std::vector<Middleware> steps = {});

  boost::asio::awaitable<Response> operator()(Request& request) const;

  struct RouteInfo {
    beast_http::verb method;
    std::string pattern;
  };
  std::vector<RouteInfo> routes() const;

 private:
  struct Route {
    beast_http::verb method;
    std::string pattern;
    std::string name;
    std::vector<std::string> segments;
    Handler handler;
  };
  // The route's parameters if `path` matches its pattern.
  static std::optional<std::vector<std::pair<std::string_view, std::string_view>>> match(const Route& route,
                                                                                         std::string_view path);
  std::vector<Route> routes_;
};

// Middleware for every request.
// Takes the client's X-Request-Id if it is sane, else makes one; echoes it.
Middleware request_id();
// Turns what a handler throws into the error answer: an http::Error as
// itself, anything else as a logged 500 that says nothing of its cause.
Middleware error_answers();
// The answer for what a handler threw (see error_answers), logged.
Response error_answer(const std::exception_ptr& error, std::string_view request_id);

}  // namespace s3up::http
