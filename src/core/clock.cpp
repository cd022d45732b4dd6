#include "core/clock.hpp"

namespace aspis {

const SystemClock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

WaitableClock::Subscription& WaitableClock::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    if (end_) end_();
    end_ = std::exchange(other.end_, nullptr);
  }
  return *this;
}

WaitableClock::Subscription::~Subscription() {
  if (end_) end_();
}

WaitableClock::Subscription SimulatedClock::Subscribe(std::mutex& mutex,
                                                      std::condition_variable& cv) const {
  const std::lock_guard lock(subscribers_mutex_);
  const auto it = subscribers_.insert(subscribers_.end(), Subscriber{&mutex, &cv});
  return Subscription([this, it] {
    const std::lock_guard ending(subscribers_mutex_);
    subscribers_.erase(it);
  });
}

bool SimulatedClock::WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                               TimePoint deadline, const std::function<bool()>& done) const {
  if (done()) return true;
  {
    const std::lock_guard noted(deadlines_mutex_);
    deadlines_.insert(deadline);
  }
  // Advance moves the time, then takes each subscribed mutex to notify: a waiter that read the
  // old time holds its mutex until cv.wait releases it, so the notification is never lost.
  while (!done() && Now() < deadline) cv.wait(lock);
  const std::lock_guard noted(deadlines_mutex_);
  deadlines_.erase(deadlines_.find(deadline));
  return done();
}

void SimulatedClock::Advance(std::chrono::system_clock::duration by) {
  const std::lock_guard lock(subscribers_mutex_);
  now_.store(now_.load() + by);
  for (const auto& s : subscribers_) {
    const std::lock_guard waiter(*s.mutex);
    s.cv->notify_all();
  }
}

std::optional<Clock::TimePoint> SimulatedClock::NextDeadline() const {
  const std::lock_guard lock(deadlines_mutex_);
  if (deadlines_.empty()) return std::nullopt;
  return *deadlines_.begin();
}

}  // namespace aspis
