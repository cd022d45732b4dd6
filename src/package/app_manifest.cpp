#include "package/app_manifest.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <set>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "package/errors.hpp"
#include "package/manifest.hpp"

namespace aspis::package {

namespace {

constexpr std::size_t kMaxList = 100;
constexpr std::size_t kMaxArgs = 64;
constexpr std::size_t kMaxArg = 1024;
constexpr std::size_t kMaxPath = 255;

constexpr std::array<std::string_view, 11> kFlags = {"SystemEventNotifications",
                                                     "SoftwareUpdateDeferral",
                                                     "SystemTime",
                                                     "TimeSyncConfig",
                                                     "NetworkConfig",
                                                     "WifiConfig",
                                                     "CertStore",
                                                     "DhcpService",
                                                     "SntpService",
                                                     "EnterpriseWifiConfig",
                                                     "HardwareAddressConfig"};
constexpr std::array<std::string_view, 6> kPeripherals = {"Gpio",      "Uart", "I2cMaster",
                                                          "SpiMaster", "Adc",  "Pwm"};
constexpr std::array<std::string_view, 3> kPowerControls = {"ForcePowerDown", "ForceReboot",
                                                            "SetPowerProfile"};

Error Malformed(std::string_view field, std::string_view rule) {
  return Error(PackageErrc::kMalformed,
               "app manifest field \"" + std::string(field) + "\" " + std::string(rule));
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool IsAddress(const std::string& s) {
  std::array<unsigned char, 16> out{};
  return ::inet_pton(AF_INET, s.c_str(), out.data()) == 1 ||
         ::inet_pton(AF_INET6, s.c_str(), out.data()) == 1;
}

// A DNS name of letter-digit-hyphen labels, optionally "*." for any name below it.
bool IsHostName(std::string_view s) {
  if (s.starts_with("*.")) s.remove_prefix(2);
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = std::min(s.find('.', start), s.size());
    const std::string_view label = s.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
        !text::IsToken(label, "-", 63)) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

Expected<std::vector<std::string>> Strings(const json::Json& value, std::string_view field,
                                           std::size_t max_items, std::size_t max_size) {
  if (!value.is_array()) return std::unexpected(Malformed(field, "is not an array"));
  if (value.size() > max_items) return std::unexpected(Malformed(field, "lists too many items"));
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string()) return std::unexpected(Malformed(field, "lists a non-string"));
    auto s = item.get<std::string>();
    if (s.size() > max_size || !text::IsPlainText(s, max_size)) {
      return std::unexpected(Malformed(field, "lists an item that is not short plain text"));
    }
    out.push_back(std::move(s));
  }
  return out;
}

Expected<std::vector<std::uint16_t>> Ports(const json::Json& value, std::string_view field) {
  if (!value.is_array()) return std::unexpected(Malformed(field, "is not an array"));
  if (value.size() > kMaxList) return std::unexpected(Malformed(field, "lists too many ports"));
  std::set<std::uint16_t> seen;
  for (const auto& item : value) {
    if (!item.is_number_unsigned() || item.get<std::uint64_t>() < 1 ||
        item.get<std::uint64_t>() > 65535) {
      return std::unexpected(Malformed(field, "lists something other than a port 1-65535"));
    }
    seen.insert(static_cast<std::uint16_t>(item.get<std::uint64_t>()));
  }
  return std::vector<std::uint16_t>(seen.begin(), seen.end());
}

Expected<std::vector<std::string>> Connections(const json::Json& value) {
  auto names = Strings(value, "AllowedConnections", kMaxList, 253);
  if (!names) return names;
  for (auto& name : *names) {
    name = Lower(std::move(name));
    if (!IsAddress(name) && !IsHostName(name)) {
      return std::unexpected(Malformed(
          "AllowedConnections", "lists \"" + name + "\", neither a host name nor an address"));
    }
  }
  return names;
}

Expected<std::vector<std::string>> Peripheral(const json::Json& value, std::string_view field) {
  if (!value.is_array()) return std::unexpected(Malformed(field, "is not an array"));
  if (value.size() > kMaxList) return std::unexpected(Malformed(field, "lists too many items"));
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (item.is_number_unsigned()) {
      out.push_back(std::to_string(item.get<std::uint64_t>()));
    } else if (item.is_string() && text::IsToken(item.get<std::string>(), "$_-", 64)) {
      out.push_back(item.get<std::string>());
    } else {
      return std::unexpected(Malformed(field, "lists something other than a name or a number"));
    }
  }
  return out;
}

Expected<void> ParseCapability(const std::string& key, const json::Json& value,
                               AppCapabilities& caps) {
  if (key == "AllowedConnections") {
    auto v = Connections(value);
    if (!v) return std::unexpected(v.error());
    caps.allowed_connections = std::move(*v);
  } else if (key == "AllowedTcpServerPorts" || key == "AllowedUdpServerPorts") {
    auto v = Ports(value, key);
    if (!v) return std::unexpected(v.error());
    (key == "AllowedTcpServerPorts" ? caps.allowed_tcp_server_ports
                                    : caps.allowed_udp_server_ports) = std::move(*v);
  } else if (key == "AllowedApplicationConnections") {
    auto v = Strings(value, key, kMaxList, 36);
    if (!v) return std::unexpected(v.error());
    for (auto& id : *v) {
      id = Lower(std::move(id));
      if (!IsUuid(id)) return std::unexpected(Malformed(key, "lists a non-UUID"));
    }
    caps.allowed_application_connections = std::move(*v);
  } else if (key == "MutableStorage") {
    const auto size = value.is_object() ? value.find("SizeKB") : value.end();
    if (!value.is_object() || value.size() != 1 || size == value.end() ||
        !size->is_number_unsigned() || size->get<std::uint64_t>() < 1 ||
        size->get<std::uint64_t>() > kMaxMutableStorageKb) {
      return std::unexpected(Malformed(key, "must be {\"SizeKB\": 1 to 65536}"));
    }
    caps.mutable_storage_kb = static_cast<std::uint32_t>(size->get<std::uint64_t>());
  } else if (key == "DeviceAuthentication") {
    if (!value.is_string() || !IsUuid(Lower(value.get<std::string>()))) {
      return std::unexpected(Malformed(key, "must be a tenant ID (a UUID)"));
    }
    caps.device_authentication = Lower(value.get<std::string>());
  } else if (key == "PowerControls") {
    auto v = Strings(value, key, kPowerControls.size(), 64);
    if (!v) return std::unexpected(v.error());
    for (const auto& control : *v) {
      if (std::find(kPowerControls.begin(), kPowerControls.end(), control) ==
          kPowerControls.end()) {
        return std::unexpected(Malformed(key, "lists an unknown power control"));
      }
    }
    caps.power_controls = std::move(*v);
  } else if (std::find(kPeripherals.begin(), kPeripherals.end(), key) != kPeripherals.end()) {
    auto v = Peripheral(value, key);
    if (!v) return std::unexpected(v.error());
    caps.peripherals[key] = std::move(*v);
  } else if (const auto flag = std::find(kFlags.begin(), kFlags.end(), key); flag != kFlags.end()) {
    if (!value.is_boolean()) return std::unexpected(Malformed(key, "is not true or false"));
    bool* fields[] = {&caps.system_event_notifications,
                      &caps.software_update_deferral,
                      &caps.system_time,
                      &caps.time_sync_config,
                      &caps.network_config,
                      &caps.wifi_config,
                      &caps.cert_store,
                      &caps.dhcp_service,
                      &caps.sntp_service,
                      &caps.enterprise_wifi_config,
                      &caps.hardware_address_config};
    *fields[flag - kFlags.begin()] = value.get<bool>();
  } else {
    return std::unexpected(Malformed(
        "Capabilities", "names \"" + text::Truncated(key, 64) + "\", which is not a capability"));
  }
  return {};
}

Expected<std::string> EntryPoint(const json::Json& doc) {
  auto entry = json::GetString(doc, "EntryPoint");
  if (!entry) return std::unexpected(Malformed("EntryPoint", "is required"));
  const std::filesystem::path path(*entry);
  bool clean = entry->size() <= kMaxPath && entry->starts_with('/') && entry->size() > 1 &&
               text::IsPlainText(*entry, kMaxPath);
  for (const auto& part : path.relative_path()) {
    if (part == "." || part == ".." || part.empty()) clean = false;
  }
  if (!clean || entry->ends_with('/') || entry->find("//") != std::string::npos) {
    return std::unexpected(Malformed("EntryPoint", "must be an absolute path inside the image"));
  }
  return entry;
}

}  // namespace

Expected<AppManifest> ParseAppManifest(std::string_view text) {
  if (text.size() > kMaxAppManifestSize) {
    return std::unexpected(Malformed("(whole)", "is larger than 64 KiB"));
  }
  auto doc = json::Parse(text, 8);
  if (!doc || !doc->is_object()) return std::unexpected(Malformed("(whole)", "is not an object"));
  AppManifest m;
  if (const auto schema = doc->find("SchemaVersion"); schema != doc->end()) {
    if (!schema->is_number_unsigned() || schema->get<std::uint64_t>() != 1) {
      return std::unexpected(Malformed("SchemaVersion", "must be 1"));
    }
  }
  auto name = json::GetString(*doc, "Name");
  if (!name || !text::IsToken(*name, "._- ", 64)) {
    return std::unexpected(Malformed("Name", "must be 1 to 64 letters, digits or ._- and space"));
  }
  m.name = std::move(*name);
  auto component = json::GetString(*doc, "ComponentId");
  if (!component || !IsUuid(Lower(*component))) {
    return std::unexpected(Malformed("ComponentId", "must be a UUID"));
  }
  m.component_id = Lower(std::move(*component));
  auto entry = EntryPoint(*doc);
  if (!entry) return std::unexpected(entry.error());
  m.entry_point = std::move(*entry);
  if (const auto args = doc->find("CmdArgs"); args != doc->end()) {
    auto v = Strings(*args, "CmdArgs", kMaxArgs, kMaxArg);
    if (!v) return std::unexpected(v.error());
    m.cmd_args = std::move(*v);
  }
  if (const auto type = doc->find("ApplicationType"); type != doc->end()) {
    if (!type->is_string() || (*type != "Default" && *type != "RealTimeCapable")) {
      return std::unexpected(Malformed("ApplicationType", "must be Default or RealTimeCapable"));
    }
    m.real_time_capable = *type == "RealTimeCapable";
  }
  if (const auto caps = doc->find("Capabilities"); caps != doc->end()) {
    if (!caps->is_object()) return std::unexpected(Malformed("Capabilities", "is not an object"));
    for (const auto& [key, value] : caps->items()) {
      if (auto ok = ParseCapability(key, value, m.capabilities); !ok) {
        return std::unexpected(ok.error());
      }
    }
  }
  return m;
}

Expected<AppManifest> ReadAppManifest(const std::filesystem::path& version_dir) {
  const auto path = version_dir / "app_manifest.json";
  auto text = file::Read(path, kMaxAppManifestSize);
  if (!text) return std::unexpected(std::move(text.error()).WithContext(path.string()));
  return ParseAppManifest(AsString(*text));
}

}  // namespace aspis::package
