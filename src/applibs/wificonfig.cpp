#include <applibs/wificonfig.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "applibs/broker_client.hpp"

// Wi-Fi through aspisd's wifi.* calls (device/board/wifi.hpp, wpa_supplicant on the board): bytes
// an app gives (SSIDs, keys, names, certificate identifiers) travel in hex; aspisd checks
// WifiConfig (and EnterpriseWifiConfig for EAP-TLS) and answers ENOTSUP on a board without Wi-Fi.
namespace {

using aspis::applibs::BrokerCall;
using aspis::applibs::HexOf;
using aspis::applibs::JsonBytes;
using aspis::applibs::JsonNumber;

int Call(const std::string& request, std::string* answer = nullptr) {
  return BrokerCall(request, {}, answer);
}

int Set(int id, const char* field, const std::string& value) {
  return Call(R"({"call":"wifi.set","id":)" + std::to_string(id) + R"(,"field":")" + field +
              R"(","value":)" + value + "}");
}

int SetBytes(int id, const char* field, const void* data, std::size_t size) {
  return Set(id, field, "\"" + HexOf(data, size) + "\"");
}

// The flat objects of the array `key` in `answer`.
std::vector<std::string> Objects(const std::string& answer, std::string_view key) {
  std::vector<std::string> objects;
  std::string_view rest(answer);
  const std::size_t list = rest.find("\"" + std::string(key) + "\":[");
  if (list == std::string_view::npos) return objects;
  rest = rest.substr(list);
  for (std::size_t open; (open = rest.find('{')) != std::string_view::npos;) {
    const std::size_t close = rest.find('}', open);
    if (close == std::string_view::npos) break;
    objects.emplace_back(rest.substr(open, close - open + 1));
    rest = rest.substr(close + 1);
  }
  return objects;
}

bool Listed(const char* call, std::vector<std::string>& objects) {
  std::string answer;
  if (Call(std::string(R"({"call":")") + call + "\"}", &answer) != 0) return false;
  objects = Objects(answer, "networks");
  return true;
}

// A seen network (scanned or connected) from its object.
template <typename T>
void Fill(T& out, const std::string& object) {
  std::memset(&out, 0, sizeof out);
  const std::string ssid = JsonBytes(object, "ssid", WIFICONFIG_SSID_MAX_LENGTH);
  std::memcpy(out.ssid, ssid.data(), ssid.size());
  out.ssidLength = static_cast<uint8_t>(ssid.size());
  const std::string bssid = JsonBytes(object, "bssid", WIFICONFIG_BSSID_BUFFER_SIZE);
  std::memcpy(out.bssid, bssid.data(), bssid.size());
  out.security = static_cast<WifiConfig_Security_Type>(JsonNumber(object, "security"));
  out.frequencyMHz = static_cast<uint32_t>(JsonNumber(object, "frequency"));
  out.signalRssi = static_cast<int8_t>(JsonNumber(object, "rssi"));
}

template <typename T>
ssize_t Copy(const char* call, T* array, std::size_t count) {
  if (array == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::vector<std::string> objects;
  if (!Listed(call, objects)) return -1;
  std::size_t filled = 0;
  for (; filled < objects.size() && filled < count; ++filled) Fill(array[filled], objects[filled]);
  return static_cast<ssize_t>(filled);
}

void FillStored(WifiConfig_StoredNetwork& out, const std::string& object) {
  std::memset(&out, 0, sizeof out);
  const std::string ssid = JsonBytes(object, "ssid", WIFICONFIG_SSID_MAX_LENGTH);
  std::memcpy(out.ssid, ssid.data(), ssid.size());
  out.ssidLength = static_cast<uint8_t>(ssid.size());
  out.isEnabled = object.find("\"enabled\":true") != std::string::npos;
  out.isConnected = object.find("\"connected\":true") != std::string::npos;
  out.security = static_cast<WifiConfig_Security_Type>(JsonNumber(object, "security"));
}

int Fault() {
  errno = EFAULT;
  return -1;
}

// The length of a configuration name: -1 with EFAULT for none, ERANGE past its 16 characters.
ssize_t ConfigNameLength(const char* name) {
  if (name == nullptr) return Fault();
  const std::size_t length = strnlen(name, WIFICONFIG_CONFIG_NAME_MAX_LENGTH + 1);
  if (length > WIFICONFIG_CONFIG_NAME_MAX_LENGTH) {
    errno = ERANGE;
    return -1;
  }
  return static_cast<ssize_t>(length);
}

// wifi.get of an EAP-TLS setting, as up to `max` bytes NUL-terminated in `out`.
int GetEnterprise(int id, const char* field, char* out, std::size_t max) {
  if (out == nullptr) return Fault();
  std::string answer;
  if (Call(R"({"call":"wifi.get","id":)" + std::to_string(id) + R"(,"field":")" + field + "\"}",
           &answer) != 0) {
    return -1;
  }
  const std::string value = JsonBytes(answer, "value", max);
  std::memcpy(out, value.data(), value.size());
  out[value.size()] = '\0';
  return 0;
}

// wifi.set of an EAP-TLS setting: a string of 1 to `max` bytes (ERANGE beyond).
int SetEnterprise(int id, const char* field, const char* value, std::size_t max) {
  if (value == nullptr) return Fault();
  const std::size_t length = strnlen(value, max + 1);
  if (length > max) {
    errno = ERANGE;
    return -1;
  }
  return SetBytes(id, field, value, length);
}

}  // namespace

extern "C" {

int WifiConfig_AddNetwork(void) {
  std::string answer;
  if (Call(R"({"call":"wifi.add"})", &answer) != 0) return -1;
  return static_cast<int>(JsonNumber(answer, "id"));
}

int WifiConfig_AddDuplicateNetwork(int networkId, const char* configName) {
  const ssize_t length = ConfigNameLength(configName);
  if (length < 0) return -1;
  std::string answer;
  if (Call(R"({"call":"wifi.duplicate","id":)" + std::to_string(networkId) + R"(,"name":")" +
               HexOf(configName, length) + "\"}",
           &answer) != 0) {
    return -1;
  }
  return static_cast<int>(JsonNumber(answer, "id"));
}

int WifiConfig_ForgetNetworkById(int networkId) {
  if (networkId < 0) {
    errno = EINVAL;
    return -1;
  }
  return Call(R"({"call":"wifi.forget","id":)" + std::to_string(networkId) + "}");
}

int WifiConfig_ForgetAllNetworks(void) { return Call(R"({"call":"wifi.forget","id":-1})"); }
int WifiConfig_PersistConfig(void) { return Call(R"({"call":"wifi.persist"})"); }
int WifiConfig_ReloadConfig(void) { return Call(R"({"call":"wifi.reload"})"); }

int WifiConfig_SetSSID(int networkId, const uint8_t* ssid, size_t ssidLength) {
  if (ssid == nullptr) return Fault();
  if (ssidLength == 0 || ssidLength > WIFICONFIG_SSID_MAX_LENGTH) {
    errno = ERANGE;
    return -1;
  }
  return SetBytes(networkId, "ssid", ssid, ssidLength);
}

int WifiConfig_SetSecurityType(int networkId, WifiConfig_Security_Type security) {
  return Set(networkId, "security", std::to_string(security));
}

int WifiConfig_SetNetworkEnabled(int networkId, bool enabled) {
  return Set(networkId, "enabled", enabled ? "true" : "false");
}

int WifiConfig_SetPSK(int networkId, const char* psk, size_t pskLength) {
  if (psk == nullptr) return Fault();
  if (pskLength > WIFICONFIG_WPA2_KEY_MAX_BUFFER_SIZE) {
    errno = ERANGE;
    return -1;
  }
  return SetBytes(networkId, "psk", psk, pskLength);
}

int WifiConfig_SetTargetedScanEnabled(int networkId, bool enabled) {
  return Set(networkId, "targeted_scan", enabled ? "true" : "false");
}

int WifiConfig_SetConfigName(int networkId, const char* configName) {
  const ssize_t length = ConfigNameLength(configName);
  if (length < 0) return -1;
  return SetBytes(networkId, "config_name", configName, length);
}

int WifiConfig_GetNetworkIdByConfigName(const char* configName) {
  const ssize_t length = ConfigNameLength(configName);
  if (length < 0) return -1;
  std::vector<std::string> objects;
  if (!Listed("wifi.networks", objects)) return -1;
  for (const auto& object : objects) {
    if (length > 0 && JsonBytes(object, "name", WIFICONFIG_CONFIG_NAME_MAX_LENGTH) ==
                          std::string_view(configName, length)) {
      return static_cast<int>(JsonNumber(object, "id"));
    }
  }
  errno = ENODEV;
  return -1;
}

int WifiConfig_GetNetworkDiagnostics(int networkId,
                                     WifiConfig_NetworkDiagnostics* networkDiagnostics) {
  if (networkDiagnostics == nullptr) return Fault();
  if (networkId < 0) {
    errno = EINVAL;
    return -1;
  }
  std::string answer;
  if (Call(R"({"call":"wifi.diagnostics","id":)" + std::to_string(networkId) + "}", &answer) != 0) {
    return -1;
  }
  WifiConfig_NetworkDiagnostics& out = *networkDiagnostics;
  std::memset(&out, 0, sizeof out);
  out.isEnabled = answer.find("\"enabled\":true") != std::string::npos;
  out.isConnected = answer.find("\"connected\":true") != std::string::npos;
  out.error = static_cast<int32_t>(JsonNumber(answer, "error"));
  out.timestamp = static_cast<time_t>(JsonNumber(answer, "time"));
  out.certError = static_cast<int32_t>(JsonNumber(answer, "cert_error"));
  out.certDepth = static_cast<int32_t>(JsonNumber(answer, "cert_depth"));
  const std::string subject = JsonBytes(answer, "cert_subject", CERTSTORE_SUBJECTNAME_MAX_LENGTH);
  std::memcpy(out.certSubject.name, subject.data(), subject.size());
  return 0;
}

int WifiConfig_SetClientIdentity(int networkId, const char* identity) {
  return SetEnterprise(networkId, "identity", identity, WIFICONFIG_EAP_IDENTITY_MAX_LENGTH);
}

int WifiConfig_GetClientIdentity(int networkId, WifiConfig_ClientIdentity* outIdentity) {
  if (outIdentity == nullptr) return Fault();
  return GetEnterprise(networkId, "identity", outIdentity->identity,
                       WIFICONFIG_EAP_IDENTITY_MAX_LENGTH);
}

int WifiConfig_SetClientCertStoreIdentifier(int networkId, const char* certStoreIdentifier) {
  return SetEnterprise(networkId, "client_cert", certStoreIdentifier,
                       CERTSTORE_MAX_IDENTIFIER_LENGTH);
}

int WifiConfig_GetClientCertStoreIdentifier(int networkId, CertStore_Identifier* outIdentifier) {
  if (outIdentifier == nullptr) return Fault();
  return GetEnterprise(networkId, "client_cert", outIdentifier->identifier,
                       CERTSTORE_MAX_IDENTIFIER_LENGTH);
}

int WifiConfig_SetRootCACertStoreIdentifier(int networkId, const char* certStoreIdentifier) {
  return SetEnterprise(networkId, "root_ca", certStoreIdentifier, CERTSTORE_MAX_IDENTIFIER_LENGTH);
}

int WifiConfig_GetRootCACertStoreIdentifier(int networkId, CertStore_Identifier* outIdentifier) {
  if (outIdentifier == nullptr) return Fault();
  return GetEnterprise(networkId, "root_ca", outIdentifier->identifier,
                       CERTSTORE_MAX_IDENTIFIER_LENGTH);
}

ssize_t WifiConfig_GetStoredNetworkCount(void) {
  std::vector<std::string> objects;
  return Listed("wifi.networks", objects) ? static_cast<ssize_t>(objects.size()) : -1;
}

ssize_t WifiConfig_GetStoredNetworks(WifiConfig_StoredNetwork* storedNetworkArray,
                                     size_t storedNetworkArrayCount) {
  if (storedNetworkArray == nullptr) return Fault();
  std::vector<std::string> objects;
  if (!Listed("wifi.networks", objects)) return -1;
  std::size_t filled = 0;
  for (; filled < objects.size() && filled < storedNetworkArrayCount; ++filled) {
    FillStored(storedNetworkArray[filled], objects[filled]);
  }
  return static_cast<ssize_t>(filled);
}

int WifiConfig_GetCurrentNetwork(WifiConfig_ConnectedNetwork* connectedNetwork) {
  if (connectedNetwork == nullptr) return Fault();
  std::string answer;
  if (Call(R"({"call":"wifi.current"})", &answer) != 0) {
    if (errno == ENOTCONN) errno = ENODATA;
    return -1;
  }
  const std::size_t network = answer.find("\"network\":{");
  Fill(*connectedNetwork, answer.substr(network == std::string::npos ? 0 : network + 10));
  return 0;
}

int WifiConfig_GetConnectedNetworkId(void) {
  std::string answer;
  if (Call(R"({"call":"wifi.current"})", &answer) != 0) return -1;
  const std::size_t network = answer.find("\"network\":{");
  return static_cast<int>(
      JsonNumber(answer.substr(network == std::string::npos ? 0 : network + 10), "id"));
}

ssize_t WifiConfig_TriggerScanAndGetScannedNetworkCount(void) {
  std::vector<std::string> objects;
  return Listed("wifi.scan", objects) ? static_cast<ssize_t>(objects.size()) : -1;
}

ssize_t WifiConfig_GetScannedNetworks(WifiConfig_ScannedNetwork* scannedNetworkArray,
                                      size_t scannedNetworkArrayCount) {
  return Copy("wifi.scan", scannedNetworkArray, scannedNetworkArrayCount);
}

int WifiConfig_StoreOpenNetwork(const uint8_t* ssid, size_t ssidLength) {
  const int id = WifiConfig_AddNetwork();
  if (id < 0) return -1;
  if (WifiConfig_SetSSID(id, ssid, ssidLength) != 0 ||
      WifiConfig_SetSecurityType(id, WifiConfig_Security_Open) != 0 ||
      WifiConfig_SetNetworkEnabled(id, true) != 0 || WifiConfig_PersistConfig() != 0) {
    const int error = errno;
    WifiConfig_ForgetNetworkById(id);
    errno = error;
    return -1;
  }
  return 0;
}

int WifiConfig_StoreWpa2Network(const uint8_t* ssid, size_t ssidLength, const char* psk,
                                size_t pskLength) {
  const int id = WifiConfig_AddNetwork();
  if (id < 0) return -1;
  if (WifiConfig_SetSSID(id, ssid, ssidLength) != 0 ||
      WifiConfig_SetSecurityType(id, WifiConfig_Security_Wpa2_Psk) != 0 ||
      WifiConfig_SetPSK(id, psk, pskLength) != 0 || WifiConfig_SetNetworkEnabled(id, true) != 0 ||
      WifiConfig_PersistConfig() != 0) {
    const int error = errno;
    WifiConfig_ForgetNetworkById(id);
    errno = error;
    return -1;
  }
  return 0;
}

// The first stored network with its SSID and security type.
int WifiConfig_ForgetNetwork(const WifiConfig_StoredNetwork* storedNetwork) {
  if (storedNetwork == nullptr) return Fault();
  std::vector<std::string> objects;
  if (!Listed("wifi.networks", objects)) return -1;
  const std::string_view wanted(
      reinterpret_cast<const char*>(storedNetwork->ssid),
      std::min<std::size_t>(storedNetwork->ssidLength, WIFICONFIG_SSID_MAX_LENGTH));
  for (const auto& object : objects) {
    if (JsonBytes(object, "ssid", WIFICONFIG_SSID_MAX_LENGTH) == wanted &&
        JsonNumber(object, "security") == storedNetwork->security) {
      if (WifiConfig_ForgetNetworkById(static_cast<int>(JsonNumber(object, "id"))) != 0) {
        return -1;
      }
      return WifiConfig_PersistConfig();
    }
  }
  errno = ENOENT;
  return -1;
}

}  // extern "C"
