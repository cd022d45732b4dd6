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

}  // namespace
}  // namespace aspis::device::attest
