#include "service/http/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace aspis::service::http {

namespace {

// A Retry-After longer than this says nothing useful (and a zero rate would make it infinite).
constexpr double kMaxRetryAfterSeconds = 24 * 60 * 60;

}  // namespace

RateLimiter::RateLimiter(RateLimit limit, std::size_t max_keys, const Clock& clock)
    : limit_(limit), max_keys_(std::max<std::size_t>(max_keys, 1)), clock_(clock) {}

double RateLimiter::TokensAt(const Bucket& bucket, Clock::TimePoint now) const {
  const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
  // A clock that went backwards refills nothing.
  const double refill = elapsed > 0 && limit_.per_second > 0 ? elapsed * limit_.per_second : 0;
  return std::min(limit_.burst, bucket.tokens + refill);
}

void RateLimiter::Evict(Clock::TimePoint now, std::size_t room) {
  // Least recently used first: once the oldest is not yet full, newer ones rarely are.
  while (!recency_.empty()) {
    const auto victim = buckets_.find(recency_.back());
    if (TokensAt(victim->second, now) < limit_.burst) break;
    buckets_.erase(victim);
    recency_.pop_back();
  }
  while (buckets_.size() > room) {
    buckets_.erase(buckets_.find(recency_.back()));
    recency_.pop_back();
    ++forced_evictions_;
  }
}

RateLimiter::Decision RateLimiter::Acquire(std::string_view key) {
  const Clock::TimePoint now = clock_.Now();
  const std::lock_guard lock(mutex_);
  Evict(now, max_keys_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    Evict(now, max_keys_ - 1);
    recency_.emplace_front(key);
    it = buckets_.emplace(recency_.front(), Bucket{limit_.burst, now, recency_.begin()}).first;
  } else {
    recency_.splice(recency_.begin(), recency_, it->second.recency);
  }
  Bucket& bucket = it->second;
  bucket.tokens = TokensAt(bucket, now);
  bucket.updated = now;
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return {};
  }
  const double wait =
      limit_.per_second > 0 ? (1 - bucket.tokens) / limit_.per_second : kMaxRetryAfterSeconds;
  const double seconds = std::clamp(std::ceil(wait), 1.0, kMaxRetryAfterSeconds);
  return {.allowed = false,
          .retry_after = std::chrono::seconds(static_cast<std::int64_t>(seconds))};
}

std::size_t RateLimiter::tracked() const {
  const std::lock_guard lock(mutex_);
  return buckets_.size();
}

std::uint64_t RateLimiter::forced_evictions() const {
  const std::lock_guard lock(mutex_);
  return forced_evictions_;
}

}  // namespace aspis::service::http
