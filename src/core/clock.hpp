#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

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

// A clock a thread can sleep on until a deadline, so time-driven logic waits instead of polling,
// and tests move time by hand (SimulatedClock). Use it through Waiter.
class WaitableClock : public Clock {
 public:
  // Ends a subscription when destroyed. Movable.
  class Subscription {
   public:
    Subscription() = default;
    explicit Subscription(std::function<void()> end) : end_(std::move(end)) {}
    Subscription(Subscription&& other) noexcept : end_(std::exchange(other.end_, nullptr)) {}
    Subscription& operator=(Subscription&& other) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription();

   private:
    std::function<void()> end_;
  };

  // Has `cv` notified, with `mutex` held, whenever the clock moves other than by passing time.
  // Call without holding `mutex`; `mutex` and `cv` must outlive the subscription.
  virtual Subscription Subscribe(std::mutex& mutex, std::condition_variable& cv) const = 0;
  // With `lock` holding a subscribed mutex: waits on `cv` until `done()` or this clock reads
  // `deadline` or later. Returns done().
  virtual bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         TimePoint deadline, const std::function<bool()>& done) const = 0;
};

class SystemClock final : public WaitableClock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
  Subscription Subscribe(std::mutex&, std::condition_variable&) const override { return {}; }
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline, const std::function<bool()>& done) const override {
    return cv.wait_until(lock, deadline, done);
  }
  // A process-wide instance.
  static const SystemClock& Instance();
};

// Simulated time (Envoy's SimulatedTimeSystem): it moves only by Advance, which wakes every
// waiter whose deadline it reaches, so tests of waiting code neither sleep nor poll. Thread-safe;
// Advance must not be called while holding a subscribed mutex.
class SimulatedClock final : public WaitableClock {
 public:
  explicit SimulatedClock(TimePoint start) : now_(start) {}
  TimePoint Now() const override { return now_.load(); }
  Subscription Subscribe(std::mutex& mutex, std::condition_variable& cv) const override;
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline, const std::function<bool()>& done) const override;
  void Advance(std::chrono::system_clock::duration by);
  // The earliest deadline a thread waits for now, if any: where Advance wakes someone.
  std::optional<TimePoint> NextDeadline() const;

 private:
  struct Subscriber {
    std::mutex* mutex;
    std::condition_variable* cv;
  };
  std::atomic<TimePoint> now_;
  mutable std::mutex subscribers_mutex_;
  mutable std::list<Subscriber> subscribers_;
  mutable std::mutex deadlines_mutex_;
  mutable std::multiset<TimePoint> deadlines_;
};

// A mutex and condition variable subscribed to a clock: what a thread sleeps on until its deadline
// or another thread's news. Thread-safe.
class Waiter {
 public:
  explicit Waiter(const WaitableClock& clock)
      : clock_(clock), subscription_(clock.Subscribe(mutex_, cv_)) {}
  std::mutex& mutex() { return mutex_; }
  const WaitableClock& clock() const { return clock_; }
  // Wakes the threads waiting, to check their condition again.
  void NotifyAll() { cv_.notify_all(); }
  // With `lock` holding mutex(): sleeps until `done()` or `deadline`. Returns done().
  bool WaitUntil(std::unique_lock<std::mutex>& lock, Clock::TimePoint deadline,
                 const std::function<bool()>& done) {
    return clock_.WaitUntil(lock, cv_, deadline, done);
  }

 private:
  const WaitableClock& clock_;
  std::mutex mutex_;
  std::condition_variable cv_;
  WaitableClock::Subscription subscription_;
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
