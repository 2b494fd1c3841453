#include "http/router.hpp"

#include <algorithm>
#include <array>
#include <exception>

#include <spdlog/spdlog.h>

#include "util/crypto.hpp"

namespace s3up::http {

namespace asio = boost::asio;
using beast_http::verb;

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.starts_with('/')) path.remove_prefix(1);
  for (;;) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool is_parameter(std::string_view segment) { return segment.starts_with('{') && segment.ends_with('}'); }
bool is_rest_parameter(std::string_view segment) { return is_parameter(segment) && segment.ends_with("*}"); }
std::string_view parameter_name(std::string_view segment) {
  segment = segment.substr(1, segment.size() - 2);
  if (segment.ends_with('*')) segment.remove_suffix(1);
  return segment;
}

Handler wrap(const std::vector<Middleware>& steps, std::size_t i, Handler handler) {
  if (i == steps.size()) return handler;
  auto next = wrap(steps, i + 1, std::move(handler));
  return [step = steps[i], next = std::move(next)](Request& request) { return step(request, next); };
}

}  // namespace

std::string_view Request::param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

std::string_view Request::path() const {
  const std::string_view target = header.target();
  return target.substr(0, target.find('?'));
}

Handler chain(std::vector<Middleware> steps, Handler handler) { return wrap(steps, 0, std::move(handler)); }

void Router::add(verb method, std::string_view pattern, Handler handler, std::vector<Middleware> steps) {
  // The name is the pattern as people read it: "/upload/{name}".
  std::string name(pattern);
  if (const auto star = name.find("*}"); star != std::string::npos) name.erase(star, 1);
  Route route{method, std::string(pattern), std::move(name), {}, chain(std::move(steps), std::move(handler))};
  for (const auto segment : split_path(pattern)) route.segments.emplace_back(segment);
  routes_.push_back(std::move(route));
}

std::vector<Router::RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : routes_) out.push_back({r.method, r.pattern});
  return out;
}

std::optional<std::vector<std::pair<std::string_view, std::string_view>>> Router::match(const Route& route,
                                                                                        std::string_view path) {
  if (!path.starts_with('/')) return std::nullopt;
  std::vector<std::pair<std::string_view, std::string_view>> params;
  std::string_view rest = path.substr(1);
  for (std::size_t i = 0; i < route.segments.size(); ++i) {
    const std::string_view pattern = route.segments[i];
    const bool last = i + 1 == route.segments.size();
    if (last && is_rest_parameter(pattern)) {
      params.emplace_back(parameter_name(pattern), rest);
      return params;
    }
    const auto slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    if (is_parameter(pattern)) {
      if (segment.empty()) return std::nullopt;
      params.emplace_back(parameter_name(pattern), segment);
    } else if (segment != pattern) {
      return std::nullopt;
    }
    if (last) {
      if (slash != std::string_view::npos) return std::nullopt;
    } else {
      if (slash == std::string_view::npos) return std::nullopt;
      rest.remove_prefix(slash + 1);
    }
  }
  return params;
}

asio::awaitable<Response> Router::operator()(Request& request) const {
  const std::string_view path = request.path();
  const verb method = request.header.method();
  // HEAD is answered by the GET handler unless the path has a HEAD route of
  // its own (tus); the server sends the headers only.
  const Route* chosen = nullptr;
  for (const verb wanted : {method, verb::get}) {
    for (const auto& route : routes_) {
      if (route.method != wanted || !match(route, path)) continue;
      chosen = &route;
      break;
    }
    if (chosen || method != verb::head) break;
  }
  if (chosen) {
    request.params = std::move(*match(*chosen, path));
    request.context.route = chosen->name;
    co_return co_await chosen->handler(request);
  }
  // No route takes this method here: what the path does take says which
  // answer it gets (built only now, off the path of every routed request).
  std::string allow;
  for (const auto& route : routes_) {
    if (!match(route, path)) continue;
    if (!allow.empty()) allow += ", ";
    allow += beast_http::to_string(route.method);
    if (route.method == verb::get) allow += ", HEAD";
  }
  if (allow.empty()) throw Error(Status::not_found, "not_found", "no such endpoint");
  if (method == verb::options) {
    Response res(Status::no_content);
    res.set(beast_http::field::allow, allow);
    co_return res;
  }
  throw Error(Status::method_not_allowed, "method_not_allowed", "method not allowed", {{"Allow", allow}});
}

Middleware request_id() {
  return [](Request& request, const Handler& next) -> asio::awaitable<Response> {
    const auto given = request.header["X-Request-Id"];
    if (!given.empty() && given.size() <= 128 &&
        std::all_of(given.begin(), given.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
      request.context.request_id = std::string(given);
    } else {
      std::array<std::uint8_t, 8> random{};
      util::random_bytes(random);
      request.context.request_id = util::to_hex(random);
    }
    auto res = co_await next(request);
    res.set("X-Request-Id", request.context.request_id);
    co_return res;
  };
}

Response error_answer(const std::exception_ptr& error, std::string_view request_id) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    if (e.status() >= 500) spdlog::warn("request {} failed: {}", request_id, e.what());
    return error_response(e);
  } catch (const std::exception& e) {
    spdlog::error("request {} failed unexpectedly: {}", request_id, e.what());
  } catch (...) {
    spdlog::error("request {} failed unexpectedly", request_id);
  }
  return error_response(Error(Status::internal_server_error, "internal", "internal error"));
}

Middleware error_answers() {
  return [](Request& request, const Handler& next) -> asio::awaitable<Response> {
    // (A coroutine cannot co_await in a catch block: the exception is kept.)
    std::optional<Response> answer;
    std::exception_ptr failure;
    try {
      answer = co_await next(request);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) answer = error_answer(failure, request.context.request_id);
    co_return std::move(*answer);
  };
}

}  // namespace s3up::http
