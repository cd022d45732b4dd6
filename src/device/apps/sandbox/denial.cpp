#include "device/apps/sandbox/denial.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

namespace aspis::device::apps::sandbox {

DenialSink RateLimited(DenialSink sink, int per_second) {
  struct Window {
    std::mutex mutex;
    std::chrono::steady_clock::time_point start;
    int passed = 0;
    std::uint64_t held = 0;
  };
  return [sink = std::move(sink), per_second,
          window = std::make_shared<Window>()](const Denial& denial) {
    std::optional<Denial> count;
    {
      const std::lock_guard lock(window->mutex);
      const auto now = std::chrono::steady_clock::now();
      if (now - window->start >= std::chrono::seconds(1)) {
        if (window->held > 0) {
          count = Denial{"flood", std::to_string(window->held) + " denials not reported (over " +
                                      std::to_string(per_second) + " a second)"};
        }
        window->start = now;
        window->passed = 0;
        window->held = 0;
      }
      if (window->passed >= per_second) {
        ++window->held;
        return;
      }
      ++window->passed;
    }
    if (count) sink(*count);
    sink(denial);
  };
}

}  // namespace aspis::device::apps::sandbox
