#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace aspis {

// Source of wall-clock time, injected so that expiry and lifetimes can be tested. Implementations
// are thread-safe.
class Clock {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

// Whole seconds since the Unix epoch (how times travel in JSON and the store).
inline std::int64_t UnixSeconds(Clock::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
  // A process-wide instance.
  static const SystemClock& Instance();
};

// A clock that moves only when told to. Thread-safe, so a test can move it under a running
// server.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start) : now_(start) {}
  TimePoint Now() const override { return now_.load(); }
  void Set(TimePoint t) { now_.store(t); }
  void Advance(std::chrono::system_clock::duration d) { now_.store(now_.load() + d); }

 private:
  std::atomic<TimePoint> now_;
};

}  // namespace aspis
