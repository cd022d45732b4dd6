#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.hpp"

// Token buckets per client key, for the HTTP server's abuse limits.
namespace aspis::service::http {

// A token bucket: up to `burst` requests at once, refilled at `per_second` requests per second.
// Both must be positive; `burst` below 1 admits nothing.
struct RateLimit {
  double per_second = 1;
  double burst = 1;
};

// One token bucket per key (a client address, a device), in bounded memory.
//
// Memory: a bucket idle long enough to have refilled completely is indistinguishable from a new
// one, so it is forgotten (checked from the least recently used end on every call, O(1)
// amortized). When `max_keys` buckets are still in use and a new key arrives, the least recently
// used bucket is forgotten to make room: that key starts over with a full burst. This keeps memory
// bounded under a flood of source addresses without ever refusing a client because of other
// clients' traffic; the price is that an attacker rotating through more than `max_keys` addresses
// within one refill period gets a burst per address per rotation.
//
// Time comes from `clock`; a clock that moves backwards refills nothing. Thread-safe.
class RateLimiter {
 public:
  // `clock` must outlive the limiter. `max_keys` of at least 1.
  RateLimiter(RateLimit limit, std::size_t max_keys, const Clock& clock);

  struct Decision {
    bool allowed = true;
    // When refused: the whole seconds until a request from this key would be admitted (at least
    // 1), for a Retry-After header.
    std::chrono::seconds retry_after{0};
  };
  // Takes one token from `key`'s bucket, or says how long until one is available.
  Decision Acquire(std::string_view key);

  // Keys tracked now, and buckets forgotten while still refilling because the table was full.
  std::size_t tracked() const;
  std::uint64_t forced_evictions() const;

 private:
  struct Bucket {
    double tokens = 0;
    Clock::TimePoint updated;
    std::list<std::string>::iterator recency;  // position in recency_
  };

  // Forgets idle buckets from the least recently used end; then, while more than `room` keys are
  // tracked, the least recently used ones. Caller holds mutex_.
  void Evict(Clock::TimePoint now, std::size_t room);
  // The bucket's tokens at `now`, refill included, at most the burst.
  double TokensAt(const Bucket& bucket, Clock::TimePoint now) const;

  // Lookups by string_view without a copy.
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const {
      return std::hash<std::string_view>{}(key);
    }
  };

  const RateLimit limit_;
  const std::size_t max_keys_;
  const Clock& clock_;

  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket, KeyHash, std::equal_to<>> buckets_;  // guarded by mutex_
  std::list<std::string> recency_;      // keys, most recently used first; guarded by mutex_
  std::uint64_t forced_evictions_ = 0;  // guarded by mutex_
};

}  // namespace aspis::service::http
