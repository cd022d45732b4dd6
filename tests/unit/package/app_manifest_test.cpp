// app_manifest.json as Azure Sphere writes it: every capability parsed, and anything the device
// would have to guess about refused.
#include "package/app_manifest.hpp"

#include <gtest/gtest.h>

namespace aspis::package {
namespace {

constexpr char kHead[] =
    R"({"SchemaVersion": 1, "Name": "Guardian", "ComponentId": "2AB3E8D1-7C1F-4F8E-9D3A-0C5B6E7F8A9B", "EntryPoint": "/bin/app")";

Expected<AppManifest> WithCapabilities(const std::string& capabilities) {
  return ParseAppManifest(std::string(kHead) + R"(, "Capabilities": )" + capabilities + "}");
}

TEST(AppManifest, AzureSphereCapabilitiesAreParsed) {
  auto m = WithCapabilities(R"({
      "AllowedConnections": ["Example.com", "*.azure-devices.net", "203.0.113.7", "2001:db8::1"],
      "AllowedTcpServerPorts": [8080, 443, 8080], "AllowedUdpServerPorts": [5683],
      "MutableStorage": {"SizeKB": 64}, "DeviceAuthentication": "7F0E9A2C-1B3D-4E5F-8A9B-0C1D2E3F4A5B",
      "SoftwareUpdateDeferral": true, "SystemEventNotifications": true,
      "EnterpriseWifiConfig": true, "CertStore": true, "HardwareAddressConfig": true,
      "Gpio": ["$SAMPLE_LED", 8], "Uart": ["$UART0"], "PowerControls": ["ForceReboot"],
      "AllowedApplicationConnections": ["5C4D3E2F-1A0B-4C9D-8E7F-6A5B4C3D2E1F"]})");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->name, "Guardian");
  EXPECT_EQ(m->component_id, "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b");
  EXPECT_EQ(m->entry_point, "/bin/app");
  const AppCapabilities& c = m->capabilities;
  EXPECT_EQ(c.allowed_connections, (std::vector<std::string>{"example.com", "*.azure-devices.net",
                                                             "203.0.113.7", "2001:db8::1"}));
  EXPECT_EQ(c.allowed_tcp_server_ports, (std::vector<std::uint16_t>{443, 8080}));
  EXPECT_EQ(c.allowed_udp_server_ports, (std::vector<std::uint16_t>{5683}));
  EXPECT_EQ(c.mutable_storage_kb, 64U);
  EXPECT_EQ(c.device_authentication, "7f0e9a2c-1b3d-4e5f-8a9b-0c1d2e3f4a5b");
  EXPECT_TRUE(c.software_update_deferral);
  EXPECT_TRUE(c.system_event_notifications);
  EXPECT_FALSE(c.wifi_config);
  EXPECT_TRUE(c.enterprise_wifi_config);
  EXPECT_TRUE(c.cert_store);
  EXPECT_TRUE(c.hardware_address_config);
  EXPECT_EQ(c.peripherals.at("Gpio"), (std::vector<std::string>{"$SAMPLE_LED", "8"}));
  EXPECT_EQ(c.power_controls, (std::vector<std::string>{"ForceReboot"}));
  EXPECT_EQ(c.allowed_application_connections.at(0), "5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f");
}

TEST(AppManifest, NothingIsGrantedWithoutCapabilities) {
  auto m = ParseAppManifest(std::string(kHead) + "}");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_TRUE(m->capabilities.allowed_connections.empty());
  EXPECT_FALSE(m->capabilities.mutable_storage_kb);
  EXPECT_TRUE(m->capabilities.device_authentication.empty());
}

TEST(AppManifest, PeripheralsAreListedByTheValuesPackingResolvedThemTo) {
  auto m = WithCapabilities(
      R"({"Gpio": [8, 12], "Uart": ["ISU0"], "Pwm": ["PWM-CONTROLLER-2"], "Adc": ["ADC-CONTROLLER-0"]})");
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->capabilities.peripherals.at("Pwm"), (std::vector<std::string>{"PWM-CONTROLLER-2"}));
  EXPECT_FALSE(WithCapabilities(R"({"Pwm": ["PWM CONTROLLER"]})"));
}

TEST(AppManifest, WhatTheDeviceWouldHaveToGuessAboutIsRefused) {
  for (const char* capabilities : {
           R"({"AllowedConnection": ["example.com"]})",        // a typo is not a capability
           R"({"AllowedConnections": ["exa mple.com"]})",      // neither a name nor an address
           R"({"AllowedConnections": ["-bad.example.com"]})",  // a label starting with '-'
           R"({"AllowedConnections": "example.com"})",         // not a list
           R"({"AllowedTcpServerPorts": [0]})",
           R"({"AllowedTcpServerPorts": [65536]})",
           R"({"AllowedUdpServerPorts": ["53"]})",
           R"({"MutableStorage": {"SizeKB": 0}})",
           R"({"MutableStorage": {"SizeKB": 65537}})",
           R"({"MutableStorage": {"SizeKB": 8, "Extra": 1}})",
           R"({"DeviceAuthentication": "not-a-tenant"})",
           R"({"PowerControls": ["SelfDestruct"]})",
           R"({"Gpio": [{"pin": 1}]})",
           R"({"SoftwareUpdateDeferral": "yes"})",
       }) {
    EXPECT_FALSE(WithCapabilities(capabilities)) << capabilities;
  }
  for (const char* entry :
       {"bin/app", "/", "/bin/../../etc/passwd", "/bin//app", "/bin/app/", "/./bin/app"}) {
    EXPECT_FALSE(ParseAppManifest(std::string(R"({"Name": "a", "ComponentId": ")") +
                                  "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b" + R"(", "EntryPoint": ")" +
                                  entry + "\"}"))
        << entry;
  }
  EXPECT_FALSE(ParseAppManifest(R"({"Name": "a", "ComponentId": "x", "EntryPoint": "/a"})"));
  EXPECT_FALSE(ParseAppManifest(std::string(kHead) + R"(, "SchemaVersion": 2})"));
  EXPECT_FALSE(ParseAppManifest("[]"));
}

}  // namespace
}  // namespace aspis::package
