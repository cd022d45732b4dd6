// What an app learned from its resolver is bounded: the addresses live in aspisd, outside the
// app's memory limit.
#include "device/apps/sandbox/network_policy.hpp"

#include <gtest/gtest.h>

namespace aspis::device::apps::sandbox {
namespace {

IpAddress V4(unsigned n) {
  in_addr a{};
  a.s_addr = htonl((198U << 24) | (18U << 16) | n);
  return IpAddress::FromV4(a);
}

TEST(NetworkPolicy, AnAppLearnsAtMostAThousandAddressesDroppingTheSoonestToExpire) {
  NetworkPolicy policy({});
  const auto now = NetworkPolicy::Clock::now();
  const auto minute = std::chrono::minutes(1);
  policy.Learn(V4(0), now + std::chrono::hours(10));  // lives longest
  for (unsigned n = 1; n <= 5000; ++n) policy.Learn(V4(n), now + minute + std::chrono::seconds(n));
  EXPECT_EQ(policy.learned(), NetworkPolicy::kMaxLearned);
  EXPECT_TRUE(policy.AllowsAddress(V4(0), now));
  EXPECT_TRUE(policy.AllowsAddress(V4(5000), now));
  EXPECT_FALSE(policy.AllowsAddress(V4(1), now));  // evicted first
  EXPECT_FALSE(policy.AllowsAddress(V4(5000 - NetworkPolicy::kMaxLearned + 1), now));
}

TEST(NetworkPolicy, ExpiredAddressesGoBeforeLiveOnes) {
  NetworkPolicy policy({});
  const auto now = NetworkPolicy::Clock::now();
  for (unsigned n = 0; n < NetworkPolicy::kMaxLearned - 1; ++n) {
    policy.Learn(V4(n), now - std::chrono::seconds(1));
  }
  policy.Learn(V4(9000), now + std::chrono::minutes(5));
  policy.Learn(V4(9001), now + std::chrono::minutes(1));  // full: the expired ones go
  EXPECT_EQ(policy.learned(), 2U);
  EXPECT_TRUE(policy.AllowsAddress(V4(9000), now));
  EXPECT_TRUE(policy.AllowsAddress(V4(9001), now));
}

}  // namespace
}  // namespace aspis::device::apps::sandbox
