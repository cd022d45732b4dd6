#pragma once

#include <string>
#include <vector>

// What apps learn of the device's network (Azure Sphere's networking.h): its interfaces as the
// device sees them, for apps whose own network namespace holds only loopback. Read from the
// kernel (getifaddrs, /proc/net/route and ipv6_route, /sys/class/net) in aspisd's namespace.
namespace aspis::device::apps {

struct InterfaceStatus {
  std::string name;
  std::string medium;         // "wifi", "ethernet" or "unspecified"
  bool up = false;            // administratively enabled
  bool connected = false;     // carrier: the link is up
  bool ip_available = false;  // an address other than link-local
  bool internet = false;      // and a default route through it
};

// Every interface but loopback, by name, at most kMaxInterfaces.
std::vector<InterfaceStatus> ReadInterfaces();
inline constexpr std::size_t kMaxInterfaces = 32;

// Whether an app may count on the network: some interface has an address and a default route.
bool NetworkingReady(const std::vector<InterfaceStatus>& interfaces);

}  // namespace aspis::device::apps
