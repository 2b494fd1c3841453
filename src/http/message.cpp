#include "http/message.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace s3up::http {

Response Response::json(Status status, const boost::json::value& body) {
  Response res(status);
  res.set(beast_http::field::content_type, "application/json");
  std::string text = boost::json::serialize(body);
  text.push_back('\n');
  res.body(std::move(text));
  return res;
}

Response Response::stream(Status status, std::uint64_t length, std::shared_ptr<BodySource> source) {
  Response res(status);
  res.body_ = Stream{length, std::move(source)};
  return res;
}

std::uint64_t Response::body_length() const {
  if (const auto* text = std::get_if<std::string>(&body_)) return text->size();
  if (const auto* stream = std::get_if<Stream>(&body_)) return stream->length;
  return 0;
}

Response error_response(const Error& error) {
  boost::json::object err;
  err["code"] = error.code_name();
  err["message"] = error.what();
  auto res = Response::json(static_cast<Status>(error.status()), boost::json::object{{"error", std::move(err)}});
  for (const auto& [name, value] : error.headers()) res.set(name, value);
  if (!error.reason().empty()) res.header().reason(error.reason());
  return res;
}

}  // namespace s3up::http
