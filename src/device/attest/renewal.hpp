#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

#include "core/clock.hpp"

// When aspisd attests again: well before its certificates expire, at least every 20 hours, and,
// while the service cannot be reached, after exponentially growing randomized delays so that a
// fleet does not stampede a recovering service.
namespace aspis::device::attest {

// A uniform random number in [0, 1); injected so tests can pin it.
using Uniform = std::function<double()>;
Uniform SystemUniform();

inline constexpr std::chrono::seconds kMaxRenewalInterval = std::chrono::hours(20);

// The time to renew certificates valid from `not_before` to `not_after`: after three quarters of
// their life or 20 hours, whichever is sooner, brought forward by up to a tenth of that interval
// at random.
Clock::TimePoint RenewalTime(Clock::TimePoint not_before, Clock::TimePoint not_after,
                             const Uniform& uniform);

// Exponential backoff with full jitter: the n-th consecutive failure waits a random time in
// [0, min(cap, base * 2^n)). Not thread-safe.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds cap, Uniform uniform)
      : base_(base), cap_(cap), uniform_(std::move(uniform)) {}

  // The wait after one more failure. When the service said how long to wait (`retry_after`, from
  // Retry-After on a 429 or 503; see wire::RetryAfter), the wait is at least that, but never
  // beyond the cap: a service asking for more than the device's longest wait gets the cap.
  std::chrono::milliseconds NextDelay(std::optional<std::chrono::seconds> retry_after = {});
  void Reset() { failures_ = 0; }
  unsigned failures() const { return failures_; }

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds cap_;
  Uniform uniform_;
  unsigned failures_ = 0;
};

}  // namespace aspis::device::attest
