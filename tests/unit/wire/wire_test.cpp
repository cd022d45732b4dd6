#include <gtest/gtest.h>

#include "core/json.hpp"
#include "wire/attestation.hpp"
#include "wire/check_in.hpp"
#include "wire/device_api.hpp"

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

TEST(CheckIn, ErrorReportsRoundTripAndUnknownKindsOrTooManyAreRefused) {
  CheckIn c{.device_id = "d", .os_version = "1", .runtime_version = "0.1.0"};
  c.error_reports = {
      {1, std::string(kUnplanned), std::string(kClassApplication),
       "AppExit - component: x; exited with code 3", 4, 100, 160},
      {2, std::string(kPlanned), std::string(kClassOs), "UpdateFailure - OS 1.1", 1, 170, 170}};
  c.error_reports_dropped = 7;
  auto parsed = ParseCheckIn(Serialize(c));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->error_reports, c.error_reports);
  EXPECT_EQ(parsed->error_reports_dropped, 7U);
  c.error_reports[0].event_class = "Kernel";
  EXPECT_FALSE(ParseCheckIn(Serialize(c)));
  c.error_reports[0].event_class = std::string(kClassOs);
  c.error_reports[0].count = 0;
  EXPECT_FALSE(ParseCheckIn(Serialize(c)));
  c.error_reports.assign(kMaxErrorEvents + 1, c.error_reports[1]);
  EXPECT_FALSE(ParseCheckIn(Serialize(c)));
}

TEST(UpdateManifest, TargetsRoundTripWithWhatTheyAre) {
  UpdateManifest m{.device_id = "d",
                   .sequence = 3,
                   .issued_at = 1,
                   .expires_at = 2,
                   .os_feed = "retail",
                   .targets = {}};
  m.targets.push_back(
      {"i", "c", "app", "1.2", 4, std::string(64, 'a'), 99, "/v1/device/images/i", std::nullopt});
  m.targets.push_back({"j", "c", "app", "1.3", 4, std::string(64, 'b'), 99, "/v1/device/images/j",
                       DeltaOffer{"i", std::string(64, 'c'), 9, DeviceDeltaPath("j", "i")}});
  auto parsed = ParseUpdateManifest(Serialize(m));
  ASSERT_TRUE(parsed) << parsed.error().message();
  ASSERT_EQ(parsed->targets.size(), 2u);
  EXPECT_EQ(parsed->targets[0].kind, "app");
  EXPECT_EQ(parsed->targets[0].security_version, 4u);
  EXPECT_EQ(parsed->targets[0].url, "/v1/device/images/i");
  EXPECT_FALSE(parsed->targets[0].delta);
  EXPECT_EQ(parsed->targets[1].delta, m.targets[1].delta);
  EXPECT_EQ(parsed->targets[1].delta->url, "/v1/device/images/j/deltas/i");
  EXPECT_FALSE(parsed->apps_complete);
  json::Json broken = *json::Parse(Serialize(m));
  broken["targets"][1]["delta"].erase("sha256");
  EXPECT_FALSE(ParseUpdateManifest(broken.dump())) << "a delta offer without its digest";
  m.apps_complete = true;
  EXPECT_TRUE(ParseUpdateManifest(Serialize(m))->apps_complete);
  json::Json odd = *json::Parse(Serialize(m));
  odd["apps_complete"] = "yes";
  EXPECT_FALSE(ParseUpdateManifest(odd.dump())) << "apps_complete that is not a boolean";
}

}  // namespace
}  // namespace aspis::wire
