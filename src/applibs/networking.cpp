#include <applibs/networking.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "broker_client.hpp"

namespace {

constexpr std::uint32_t kInterfaceMagic = 0x414e0000U;

struct Interface {
  std::string name;
  std::string medium;
  Networking_InterfaceConnectionStatus status = 0;
};

// The device's interfaces, as aspisd answers networking.interfaces; false with errno.
bool Read(std::vector<Interface>& interfaces, bool* ready = nullptr) {
  std::string answer;
  if (aspis::applibs::BrokerCall(R"({"call":"networking.interfaces"})", {}, &answer) != 0) {
    return false;
  }
  if (ready != nullptr) *ready = answer.find("\"ready\":true") != std::string::npos;
  // Each interface is a flat object in the "interfaces" array: {"connected":...,...}
  std::string_view rest(answer);
  const std::size_t list = rest.find("\"interfaces\":[");
  rest = list == std::string_view::npos ? std::string_view() : rest.substr(list);
  for (std::size_t open; (open = rest.find('{')) != std::string_view::npos;) {
    const std::size_t close = rest.find('}', open);
    if (close == std::string_view::npos) break;
    const std::string_view object = rest.substr(open, close - open + 1);
    const auto flag = [&](std::string_view key) {
      return object.find("\"" + std::string(key) + "\":true") != std::string_view::npos;
    };
    Interface i;
    i.name = aspis::applibs::JsonString(object, "name");
    i.medium = aspis::applibs::JsonString(object, "medium");
    if (flag("up")) i.status |= Networking_InterfaceConnectionStatus_InterfaceUp;
    if (flag("connected")) i.status |= Networking_InterfaceConnectionStatus_ConnectedToNetwork;
    if (flag("ip")) i.status |= Networking_InterfaceConnectionStatus_IpAvailable;
    if (flag("internet")) i.status |= Networking_InterfaceConnectionStatus_ConnectedToInternet;
    if (!i.name.empty()) interfaces.push_back(std::move(i));
    rest = rest.substr(close + 1);
  }
  return true;
}

}  // namespace

extern "C" {

int Networking_IsNetworkingReady(bool* outIsNetworkingReady) {
  if (outIsNetworkingReady == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::vector<Interface> interfaces;
  return Read(interfaces, outIsNetworkingReady) ? 0 : -1;
}

ssize_t Networking_GetInterfaceCount(void) {
  std::vector<Interface> interfaces;
  return Read(interfaces) ? static_cast<ssize_t>(interfaces.size()) : -1;
}

ssize_t Networking_GetInterfaces(Networking_NetworkInterface* outNetworkInterfacesArray,
                                 size_t networkInterfacesArrayCount) {
  if (outNetworkInterfacesArray == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::vector<Interface> interfaces;
  if (!Read(interfaces)) return -1;
  std::size_t count = 0;
  for (; count < interfaces.size() && count < networkInterfacesArrayCount; ++count) {
    const Interface& i = interfaces[count];
    Networking_NetworkInterface& out = outNetworkInterfacesArray[count];
    std::memset(&out, 0, sizeof out);
    out.magicAndVersion = kInterfaceMagic | NETWORKING_STRUCTS_VERSION;
    out.isEnabled = (i.status & Networking_InterfaceConnectionStatus_InterfaceUp) != 0;
    const std::size_t length = std::min(i.name.size(), sizeof out.interfaceName - 1);
    std::memcpy(out.interfaceName, i.name.data(), length);
    out.ipConfigurationType = Networking_IpType_DhcpClient;
    out.interfaceMediumType = i.medium == "wifi"       ? Networking_InterfaceMedium_Wifi
                              : i.medium == "ethernet" ? Networking_InterfaceMedium_Ethernet
                                                       : Networking_InterfaceMedium_Unspecified;
  }
  return static_cast<ssize_t>(count);
}

int Networking_TimeSync_GetEnabled(bool* outIsEnabled) {
  if (outIsEnabled == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::string answer;
  if (aspis::applibs::BrokerCall(R"({"call":"networking.timesync"})", {}, &answer) != 0) return -1;
  *outIsEnabled = answer.find("\"enabled\":true") != std::string::npos;
  return 0;
}

int Networking_GetInterfaceConnectionStatus(const char* networkInterfaceName,
                                            Networking_InterfaceConnectionStatus* outStatus) {
  if (networkInterfaceName == nullptr || outStatus == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::vector<Interface> interfaces;
  if (!Read(interfaces)) return -1;
  for (const Interface& i : interfaces) {
    if (i.name == networkInterfaceName) {
      *outStatus = i.status;
      return 0;
    }
  }
  errno = ENOENT;
  return -1;
}

}  // extern "C"
