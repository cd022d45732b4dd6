#include "core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace aspis::log {

namespace {

spdlog::logger& Logger() {
  static const auto logger = [] {
    auto l = spdlog::stderr_color_mt("aspis");
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    return l;
  }();
  return *logger;
}

spdlog::level::level_enum ToSpdlog(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarning:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::err;
}

}  // namespace

void Write(Level level, std::string_view message) { Logger().log(ToSpdlog(level), message); }

void SetLevel(Level level) { Logger().set_level(ToSpdlog(level)); }

}  // namespace aspis::log
