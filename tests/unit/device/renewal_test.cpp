#include "device/attest/renewal.hpp"

#include <gtest/gtest.h>

namespace aspis::device::attest {
namespace {

using namespace std::chrono_literals;

const Clock::TimePoint kIssued{std::chrono::hours(1000)};

TEST(RenewalTime, DayLongCertificatesRenewAfterEighteenHoursLessJitter) {
  EXPECT_EQ(RenewalTime(kIssued, kIssued + 24h, [] { return 0.0; }), kIssued + 18h);
  EXPECT_EQ(RenewalTime(kIssued, kIssued + 24h, [] { return 0.5; }), kIssued + 18h - 54min);
}

TEST(RenewalTime, LongCertificatesStillRenewAtLeastEveryTwentyHours) {
  EXPECT_EQ(RenewalTime(kIssued, kIssued + 24h * 30, [] { return 0.0; }), kIssued + 20h);
}

TEST(RenewalTime, ShortCertificatesRenewWellBeforeExpiry) {
  EXPECT_EQ(RenewalTime(kIssued, kIssued + 2h, [] { return 0.0; }), kIssued + 90min);
}

TEST(Backoff, DelaysGrowExponentiallyUpToTheCapWithFullJitter) {
  double draw = 0.999;
  Backoff backoff(2s, 60s, [&] { return draw; });
  std::vector<std::chrono::milliseconds> delays;
  for (int i = 0; i < 7; ++i) delays.push_back(backoff.NextDelay());
  EXPECT_EQ(delays[0], 1998ms);
  EXPECT_EQ(delays[1], 3996ms);
  EXPECT_EQ(delays[4], 31968ms);
  EXPECT_EQ(delays[6], 59940ms);
  draw = 0.0;
  EXPECT_EQ(backoff.NextDelay(), 0ms) << "full jitter: any point of the window";
  backoff.Reset();
  draw = 0.999;
  EXPECT_EQ(backoff.NextDelay(), 1998ms);
}

TEST(Backoff, WaitsAtLeastTheRetryAfterTheServiceAsksFor) {
  Backoff backoff(2s, 600s, [] { return 0.5; });
  EXPECT_EQ(backoff.NextDelay(30s), 30s) << "the jittered 1 s would be too soon";
  EXPECT_EQ(backoff.failures(), 1u);
  EXPECT_EQ(backoff.NextDelay(std::nullopt), 2s) << "without Retry-After, plain backoff";
  EXPECT_EQ(backoff.NextDelay(1s), 4s) << "a backoff already longer than asked stands";
}

TEST(Backoff, RetryAfterBeyondTheLongestWaitIsCappedAtIt) {
  Backoff backoff(2s, 600s, [] { return 0.0; });
  EXPECT_EQ(backoff.NextDelay(3600s), 600s);
  EXPECT_EQ(backoff.NextDelay(std::chrono::seconds(std::int64_t{1} << 60)), 600s)
      << "no overflow on absurd values";
  Backoff subsecond_cap(100ms, 1500ms, [] { return 0.0; });
  EXPECT_EQ(subsecond_cap.NextDelay(2s), 1500ms);
  EXPECT_EQ(subsecond_cap.NextDelay(1s), 1s);
}

}  // namespace
}  // namespace aspis::device::attest
