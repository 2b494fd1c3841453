#pragma once
// The service's logs: two loggers on stderr, "s3uploader" (the default) and
// "access" (one line per exchange), as text for people or as JSON lines for
// a log pipeline (log_format). Fields that a pipeline would filter on (the
// access log's status, route, request id...) are logged through log_fields,
// which makes them members of the JSON object, or key=value text.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

#include <spdlog/spdlog.h>

namespace s3up::util {

enum class LogFormat { text, json };

// Sets up both loggers at `level` ("debug", "info", "warn" or "error").
void setup_logging(LogFormat format, std::string_view level);
LogFormat log_format();

// A field's value; none (monostate) is JSON's null.
using LogValue = std::variant<std::monostate, std::string_view, std::int64_t, double>;
struct LogField {
  std::string_view key;
  LogValue value;
};
// `message`, then the fields: in JSON, members beside "msg"; in text, the
// message as it is (the caller has already written what a person reads).
void log_fields(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
                std::initializer_list<LogField> fields);

}  // namespace s3up::util
