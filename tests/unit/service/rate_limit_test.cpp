#include "service/http/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <string>

namespace aspis::service::http {
namespace {

using namespace std::chrono_literals;

const Clock::TimePoint kStart{std::chrono::hours(1000)};

TEST(RateLimiter, AdmitsTheBurstThenRefusesWithTheWholeSecondsUntilTheNextToken) {
  FakeClock clock(kStart);
  RateLimiter limiter({.per_second = 0.5, .burst = 3}, 100, clock);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Acquire("198.51.100.7").allowed) << i;
  const auto refused = limiter.Acquire("198.51.100.7");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, 2s);
  clock.Advance(1500ms);
  EXPECT_EQ(limiter.Acquire("198.51.100.7").retry_after, 1s) << "half a second, rounded up";
  clock.Advance(500ms);
  EXPECT_TRUE(limiter.Acquire("198.51.100.7").allowed);
  EXPECT_FALSE(limiter.Acquire("198.51.100.7").allowed);
}

TEST(RateLimiter, OneKeysFloodDoesNotLimitAnother) {
  FakeClock clock(kStart);
  RateLimiter limiter({.per_second = 1, .burst = 2}, 100, clock);
  for (int i = 0; i < 50; ++i) static_cast<void>(limiter.Acquire("flooder"));
  EXPECT_FALSE(limiter.Acquire("flooder").allowed);
  EXPECT_TRUE(limiter.Acquire("bystander").allowed);
  EXPECT_TRUE(limiter.Acquire("bystander").allowed);
  EXPECT_FALSE(limiter.Acquire("bystander").allowed);
}

TEST(RateLimiter, RefusedRequestsCostNoTokens) {
  FakeClock clock(kStart);
  RateLimiter limiter({.per_second = 1, .burst = 1}, 100, clock);
  EXPECT_TRUE(limiter.Acquire("k").allowed);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limiter.Acquire("k").allowed);
  clock.Advance(1s);
  EXPECT_TRUE(limiter.Acquire("k").allowed) << "retrying too early does not extend the wait";
}

TEST(RateLimiter, BucketsIdleUntilFullAreForgotten) {
  FakeClock clock(kStart);
  RateLimiter limiter({.per_second = 2, .burst = 4}, 100, clock);
  for (int i = 0; i < 10; ++i) {
    for (int j = 0; j < 4; ++j) EXPECT_TRUE(limiter.Acquire("client-" + std::to_string(i)).allowed);
  }
  EXPECT_EQ(limiter.tracked(), 10u);
  clock.Advance(1s);  // half refilled: every bucket still matters
  EXPECT_TRUE(limiter.Acquire("client-0").allowed);
  EXPECT_EQ(limiter.tracked(), 10u);
  clock.Advance(1s);  // full again, except client-0's
  EXPECT_TRUE(limiter.Acquire("newcomer").allowed);
  EXPECT_EQ(limiter.tracked(), 2u);
  clock.Advance(2s);
  EXPECT_TRUE(limiter.Acquire("late").allowed);
  EXPECT_EQ(limiter.tracked(), 1u);
  EXPECT_EQ(limiter.forced_evictions(), 0u) << "forgetting full buckets loses nothing";
}

// A flood of source addresses: memory stays at the cap, and the active key is not the one
// forgotten, so flooding cannot reset the flooder's own bucket.
TEST(RateLimiter, FloodOfNewKeysKeepsTheTableAtItsCapAndForgetsTheLeastRecentlyUsed) {
  FakeClock clock(kStart);
  RateLimiter limiter({.per_second = 1, .burst = 1}, 4, clock);
  EXPECT_TRUE(limiter.Acquire("hot").allowed);
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(limiter.Acquire("spoofed-" + std::to_string(i)).allowed) << i;
    EXPECT_FALSE(limiter.Acquire("hot").allowed) << i;
    EXPECT_LE(limiter.tracked(), 4u);
  }
  EXPECT_EQ(limiter.forced_evictions(), 97u);
  // The least recently used key was forgotten, so it starts over with a full bucket.
  EXPECT_TRUE(limiter.Acquire("spoofed-0").allowed);
}

TEST(RateLimiter, ClockGoingBackwardsRefillsNothing) {
  FakeClock clock(kStart);
  RateLimiter limiter({.per_second = 1, .burst = 1}, 100, clock);
  EXPECT_TRUE(limiter.Acquire("k").allowed);
  clock.Set(kStart - 1h);
  EXPECT_FALSE(limiter.Acquire("k").allowed);
  clock.Advance(1s);
  EXPECT_TRUE(limiter.Acquire("k").allowed);
}

}  // namespace
}  // namespace aspis::service::http
