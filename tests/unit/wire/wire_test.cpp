#include <gtest/gtest.h>

#include "wire/attestation.hpp"

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

}  // namespace
}  // namespace aspis::wire
