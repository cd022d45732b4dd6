#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

// An app's app_manifest.json, in Azure Sphere's format: what the app is and the capabilities it
// is granted. Nothing is granted unless listed here; the device enforces each capability
// (DESIGN section 6). The manifest is written by the app's publisher and travels signed inside the
// package, so it is trusted to say what the publisher asks for, but it is still checked strictly:
// an unknown capability or a malformed value is refused, never ignored.
namespace aspis::package {

struct AppCapabilities {
  // Host names ("example.com", "*.example.com" for any subdomain) and IPv4 or IPv6 addresses the
  // app may connect to, on any port.
  std::vector<std::string> allowed_connections;
  std::vector<std::uint16_t> allowed_tcp_server_ports;
  std::vector<std::uint16_t> allowed_udp_server_ports;
  // Component IDs of the apps this one may connect to (each must list the other too).
  std::vector<std::string> allowed_application_connections;
  // MutableStorage's SizeKB: the size of the app's one mutable storage file; none without it.
  std::optional<std::uint32_t> mutable_storage_kb;
  // DeviceAuthentication: the tenant ID whose device certificate the app may use; empty: none.
  std::string device_authentication;
  bool system_event_notifications = false;
  bool software_update_deferral = false;
  bool system_time = false;
  bool time_sync_config = false;
  bool network_config = false;
  bool wifi_config = false;
  bool enterprise_wifi_config = false;  // EAP-TLS networks' identities and certificates
  bool cert_store = false;
  bool dhcp_service = false;
  bool sntp_service = false;
  bool hardware_address_config = false;     // Networking_SetHardwareAddress
  std::vector<std::string> power_controls;  // ForcePowerDown, ForceReboot, SetPowerProfile
  // Peripherals by capability ("Gpio", "Uart", "I2cMaster", "SpiMaster", "Adc", "Pwm"): the names
  // ("$SAMPLE_LED") or numbers (as text) the manifest lists, resolved against the board.
  std::map<std::string, std::vector<std::string>, std::less<>> peripherals;
};

struct AppManifest {
  int schema_version = 1;
  std::string name;
  std::string component_id;  // lowercase UUID
  std::string entry_point;   // absolute path inside the image, without "." or ".." parts
  std::vector<std::string> cmd_args;
  bool real_time_capable = false;  // ApplicationType "RealTimeCapable"
  AppCapabilities capabilities;
};

inline constexpr std::size_t kMaxAppManifestSize = std::size_t{64} << 10;
inline constexpr std::uint32_t kMaxMutableStorageKb = 64 * 1024;

// Parses and checks an app manifest. Errors: kMalformed naming the field and the rule.
Expected<AppManifest> ParseAppManifest(std::string_view json);
// Reads and parses the app_manifest.json of an unpacked app version. Errors: those of
// ParseAppManifest; kIo (core) when the file cannot be read.
Expected<AppManifest> ReadAppManifest(const std::filesystem::path& version_dir);

}  // namespace aspis::package
