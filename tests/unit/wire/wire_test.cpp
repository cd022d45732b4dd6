#include <gtest/gtest.h>

#include "wire/attestation.hpp"
#include "wire/check_in.hpp"

namespace aspis::wire {
namespace {

TEST(DeviceUri, RoundTripsTenantAndDevice) {
  const std::string uri = DeviceUri({"t1", std::string(64, 'a')});
  EXPECT_EQ(uri, "urn:aspis:tenant:t1:device:" + std::string(64, 'a'));
  auto name = ParseDeviceUri(uri);
  ASSERT_TRUE(name);
  EXPECT_EQ(name->tenant, "t1");
  EXPECT_EQ(name->device_id, std::string(64, 'a'));
}

TEST(DeviceUri, RefusesAnythingElse) {
  for (const char* uri : {"", "urn:aspis:tenant:", "urn:aspis:tenant::device:d",
                          "urn:aspis:tenant:t:device:", "urn:aspis:tenant:t",
                          "urn:other:tenant:t:device:d", "https://example.com"}) {
    EXPECT_FALSE(ParseDeviceUri(uri)) << uri;
  }
}

TEST(CheckIn, TargetStatusesAndThePublisherRootRoundTrip) {
  CheckIn c{.device_id = "d", .os_version = "1", .runtime_version = "0.1.0"};
  c.publisher_root = "abc";
  c.board = "mt3620-sim";
  c.targets = {{"i1", std::string(kDownloaded), ""}, {"i2", std::string(kFailed), "why"}};
  auto parsed = ParseCheckIn(Serialize(c));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->publisher_root, "abc");
  EXPECT_EQ(parsed->targets, c.targets);
  EXPECT_EQ(parsed->board, "mt3620-sim");
  // A runtime that predates downloads sends neither field.
  parsed = ParseCheckIn(
      R"({"device_id":"d","os_version":"1","runtime_version":"0","images":[],"health":"ok"})");
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_TRUE(parsed->targets.empty());
  // A state the service does not know is refused, not stored.
  c.targets = {{"i1", "installed-maybe", ""}};
  EXPECT_FALSE(ParseCheckIn(Serialize(c)));
}

TEST(UpdateManifest, TargetsRoundTripWithWhatTheyAre) {
  UpdateManifest m{.device_id = "d",
                   .sequence = 3,
                   .issued_at = 1,
                   .expires_at = 2,
                   .os_feed = "retail",
                   .targets = {}};
  m.targets.push_back({"i", "c", "app", "1.2", 4, std::string(64, 'a'), 99, "/v1/device/images/i"});
  auto parsed = ParseUpdateManifest(Serialize(m));
  ASSERT_TRUE(parsed) << parsed.error().message();
  ASSERT_EQ(parsed->targets.size(), 1u);
  EXPECT_EQ(parsed->targets[0].kind, "app");
  EXPECT_EQ(parsed->targets[0].security_version, 4u);
  EXPECT_EQ(parsed->targets[0].url, "/v1/device/images/i");
}

}  // namespace
}  // namespace aspis::wire
