#pragma once

#include <netinet/in.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "package/app_manifest.hpp"

// Which hosts and ports one app may reach (DESIGN section 6, "networking as built"): the
// addresses its AllowedConnections lists, the addresses aspisd's resolver answered for the names
// it lists (for as long as the answer lives), and its Allowed*ServerPorts for listening.
namespace aspis::device::apps::sandbox {

// An IPv4 or IPv6 address; IPv4-mapped IPv6 addresses are held as the IPv4 address.
struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4

  static std::optional<IpAddress> Parse(const std::string& text);
  static IpAddress FromV4(const in_addr& address);
  static IpAddress FromV6(const in6_addr& address);
  std::string ToString() const;
  // Loopback, unspecified or link-local: the device itself or its own link.
  bool IsLocal() const;
  // 0.0.0.0/8 or ::, which a connect takes to mean the device itself.
  bool IsUnspecified() const;
  // Multicast (224.0.0.0/4, ff00::/8) or the IPv4 broadcast address: many hosts, not one.
  bool IsGroup() const;
  auto operator<=>(const IpAddress&) const = default;
};

// Whether the kernel delivers to `address` on this device (one of its own addresses, whatever
// interface holds it).
bool RoutesToTheDevice(const IpAddress& address);

// Thread-safe: the notification thread asks while the resolver learns.
class NetworkPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  explicit NetworkPolicy(const package::AppCapabilities& capabilities);

  // Whether the app may look up `name` (lowercase, without a trailing dot): a name listed, or
  // below a listed "*." name.
  bool AllowsName(std::string_view name) const;
  // Records that aspisd's resolver answered `address` for an allowed name, until `until`. At most
  // kMaxLearned addresses are kept (they live in aspisd, outside the app's memory limit): past
  // that, expired ones go first, then the one that would expire first.
  void Learn(const IpAddress& address, Clock::time_point until);
  static constexpr std::size_t kMaxLearned = 1024;
  std::size_t learned() const;
  // Whether the app may connect to (or send to) `address`: listed, or learned and not expired.
  bool AllowsAddress(const IpAddress& address, Clock::time_point now) const;
  // Whether the manifest lists `address` as it is (not learned for a name).
  bool Lists(const IpAddress& address) const;
  // Whether the app may listen on `port` (TCP when `stream`, else UDP).
  bool AllowsServerPort(bool stream, std::uint16_t port) const;
  bool has_names() const { return !names_.empty(); }

 private:
  std::set<IpAddress> addresses_;
  std::vector<std::string> names_;  // "*.example.com" kept with its "*."
  std::set<std::uint16_t> tcp_ports_;
  std::set<std::uint16_t> udp_ports_;
  mutable std::mutex mutex_;
  std::map<IpAddress, Clock::time_point> learned_;  // guarded by mutex_
};

}  // namespace aspis::device::apps::sandbox
