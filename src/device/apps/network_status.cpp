#include "device/apps/network_status.hpp"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace aspis::device::apps {

namespace {

// Interfaces a default route leaves through, IPv4 and IPv6.
std::set<std::string> DefaultRoutes() {
  std::set<std::string> names;
  std::ifstream v4("/proc/net/route");
  std::string line;
  std::getline(v4, line);  // the header
  while (std::getline(v4, line)) {
    std::istringstream fields(line);
    std::string name, destination;
    if (fields >> name >> destination && destination == "00000000") names.insert(name);
  }
  std::ifstream v6("/proc/net/ipv6_route");
  while (std::getline(v6, line)) {
    std::istringstream fields(line);
    std::string destination, prefix, rest, name;
    fields >> destination >> prefix;
    for (int i = 0; i < 7 && fields >> rest; ++i) {
    }
    fields >> name;
    if (destination == std::string(32, '0') && prefix == "00" && !name.empty() && name != "lo") {
      names.insert(name);
    }
  }
  return names;
}

std::string Medium(const std::string& name) {
  const std::filesystem::path device = std::filesystem::path("/sys/class/net") / name;
  std::error_code ec;
  if (std::filesystem::exists(device / "wireless", ec)) return "wifi";
  std::ifstream type(device / "type");
  int arp_type = 0;
  return type >> arp_type && arp_type == 1 ? "ethernet" : "unspecified";
}

bool LinkLocal(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    const auto ip = ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr);
    return (ip >> 16) == 0xa9fe;  // 169.254/16
  }
  const auto& ip = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr;
  return IN6_IS_ADDR_LINKLOCAL(&ip);
}

}  // namespace

std::vector<InterfaceStatus> ReadInterfaces() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  std::map<std::string, InterfaceStatus> found;
  for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_name == nullptr || (entry->ifa_flags & IFF_LOOPBACK) != 0) continue;
    InterfaceStatus& status = found[entry->ifa_name];
    status.name = entry->ifa_name;
    status.up = (entry->ifa_flags & IFF_UP) != 0;
    status.connected = status.up && (entry->ifa_flags & IFF_RUNNING) != 0;
    const sockaddr* address = entry->ifa_addr;
    if (address != nullptr && (address->sa_family == AF_INET || address->sa_family == AF_INET6) &&
        !LinkLocal(address)) {
      status.ip_available = status.connected;
    }
  }
  ::freeifaddrs(list);
  const std::set<std::string> routes = DefaultRoutes();
  std::vector<InterfaceStatus> interfaces;
  for (auto& [name, status] : found) {
    if (interfaces.size() == kMaxInterfaces) break;
    status.medium = Medium(name);
    status.internet = status.ip_available && routes.contains(name);
    interfaces.push_back(std::move(status));
  }
  return interfaces;
}

bool NetworkingReady(const std::vector<InterfaceStatus>& interfaces) {
  return std::any_of(interfaces.begin(), interfaces.end(),
                     [](const InterfaceStatus& i) { return i.internet; });
}

}  // namespace aspis::device::apps
