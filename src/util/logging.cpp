#include "util/logging.hpp"

#include <atomic>
#include <memory>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace s3up::util {

namespace {

std::atomic<LogFormat> current_format{LogFormat::text};

// The JSON fields log_fields adds travel in front of the message, between
// two unit separators (a byte no message of ours contains), for the
// formatter to take out.
constexpr char kFieldsMark = '\x1f';

std::string json_string(std::string_view text) { return boost::json::serialize(boost::json::string(text)); }

// One JSON object per line: ts (RFC 3339, milliseconds, UTC), level,
// logger, msg, then any fields.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string_view fields;
    if (payload.size() > 1 && payload.front() == kFieldsMark) {
      const auto end = payload.find(kFieldsMark, 1);
      if (end != std::string_view::npos) {
        fields = payload.substr(1, end - 1);
        payload.remove_prefix(end + 1);
      }
    }
    const auto since_epoch = msg.time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
    const auto level = spdlog::level::to_string_view(msg.level);
    fmt::format_to(std::back_inserter(dest), R"({{"ts":"{:%Y-%m-%dT%H:%M:%S}.{:03}Z","level":"{}","logger":{},"msg":{})",
                   fmt::gmtime(std::chrono::system_clock::to_time_t(msg.time)), millis,
                   std::string_view(level.data(), level.size()),
                   json_string(std::string_view(msg.logger_name.data(), msg.logger_name.size())), json_string(payload));
    if (!fields.empty()) {
      dest.push_back(',');
      dest.append(fields.data(), fields.data() + fields.size());
    }
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

void setup_logging(LogFormat format, std::string_view level) {
  current_format = format;
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (format == LogFormat::json) {
    sink->set_formatter(std::make_unique<JsonFormatter>());
    sink->set_color_mode(spdlog::color_mode::never);
  }
  auto main_logger = std::make_shared<spdlog::logger>("s3uploader", sink);
  auto access = std::make_shared<spdlog::logger>("access", sink);
  for (auto& l : {main_logger, access}) {
    if (format == LogFormat::text) {
      l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [%n] %v", spdlog::pattern_time_type::utc);
    }
    l->set_level(spdlog::level::from_str(std::string(level)));
    l->flush_on(spdlog::level::info);
  }
  spdlog::set_default_logger(main_logger);
  spdlog::drop("access");
  spdlog::register_logger(access);
}

LogFormat log_format() { return current_format; }

void log_fields(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view message,
                std::initializer_list<LogField> fields) {
  if (!logger.should_log(level)) return;
  if (current_format != LogFormat::json) {
    logger.log(level, "{}", message);
    return;
  }
  std::string line(1, kFieldsMark);
  const char* comma = "";
  for (const auto& f : fields) {
    line += comma;
    line += json_string(f.key);
    line += ':';
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::monostate>) {
            line += "null";
          } else if constexpr (std::is_same_v<V, std::string_view>) {
            line += json_string(v);
          } else {
            line += fmt::format("{}", v);
          }
        },
        f.value);
    comma = ",";
  }
  line += kFieldsMark;
  line += message;
  logger.log(level, "{}", line);
}

}  // namespace s3up::util
