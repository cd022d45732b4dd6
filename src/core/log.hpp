#pragma once

#include <string_view>
#include <utility>

#include <fmt/core.h>

namespace aspis::log {

enum class Level { kDebug, kInfo, kWarning, kError };

// Writes one line to the process log (stderr). Thread-safe.
void Write(Level level, std::string_view message);
// Lines below `level` are dropped.
void SetLevel(Level level);

template <class... Args>
void Debug(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void Info(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void Warning(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kWarning, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void Error(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace aspis::log
