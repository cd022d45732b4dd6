#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/fd.hpp"
#include "device/board/dhcp_lease.hpp"
#include "device/board/network_daemon.hpp"

struct nl_sock;
struct nl_cache;
struct rtnl_addr;

// The network interfaces aspisd manages on a board (its definition's "Linux": {"Network": [...]}),
// configured through rtnetlink (libnl-route): what applibs' networking.h configuration calls ask.
// An interface the board does not list is not aspisd's (EPERM, as Azure Sphere answers an
// interface an app may not configure); errors are errno values, as applibs returns them (ENOENT:
// no such interface; the kernel's otherwise).
namespace aspis::device::board {

template <typename T>
using NetworkResult = std::expected<T, int>;

// A private network's DHCP server (applibs' Networking_DhcpServerConfig): addresses from `start`,
// `count` of them, in the subnet of `mask`, `gateway` as their router (0.0.0.0: none), leased for
// `lease_hours`, with up to three NTP servers.
struct DhcpServerSettings {
  in_addr start{};
  std::uint32_t count = 1;
  in_addr mask{};
  in_addr gateway{};
  std::uint32_t lease_hours = 24;
  std::vector<in_addr> ntp;
};

using HardwareAddress = std::array<std::uint8_t, 6>;

inline constexpr std::uint32_t kManagedRouteMetric = 1000;
inline constexpr std::size_t kMaxDnsServers = 3;  // applibs' custom DNS, and glibc's MAXNS

// Each address in dotted-decimal form.
std::vector<std::string> AsText(std::span<const in_addr> addresses);

// Thread-safe.
class NetworkControl {
 public:
  // Manages `interfaces` in aspisd's network namespace, or in the one bound at `netns`
  // (/run/netns/<name>) when given (tests), running `daemons` for their DHCP clients and servers.
  // Errors: the errno of the netlink socket.
  static NetworkResult<std::unique_ptr<NetworkControl>> Open(
      std::set<std::string> interfaces, const std::filesystem::path& netns = {},
      NetworkDaemons daemons = {});
  ~NetworkControl();
  NetworkControl(const NetworkControl&) = delete;
  NetworkControl& operator=(const NetworkControl&) = delete;

  NetworkResult<void> SetUp(const std::string& interface, bool up);
  // Replaces the interface's IPv4 addresses with `address`/`mask` and, when `gateway` is not
  // 0.0.0.0, replaces the interface's default routes with one through it, at metric
  // kManagedRouteMetric: a default route the system set up on another interface stays and
  // outranks it. EINVAL, before anything changes: a mask that is not a prefix of 1 to 32 bits, an
  // address that is not a unicast host of its subnet (0/8, loopback, multicast, reserved, the
  // subnet's network or broadcast address), a gateway that is not another host of the subnet.
  // When the new address cannot be added, the old ones are put back. A DHCP client or server the
  // interface ran is stopped first. `dns`: the interface's custom DNS servers (DnsServers), as
  // SetDynamicIp takes them.
  NetworkResult<void> SetStaticIp(const std::string& interface, in_addr address, in_addr mask,
                                  in_addr gateway, std::span<const in_addr> dns = {});
  // Dynamic mode: the interface's IPv4 addresses are removed (and a DHCP server it ran stopped)
  // and a DHCP client (dhcpcd) takes a lease for it, its routes at kManagedRouteMetric. ENOENT
  // when dhcpcd is missing. `dns`: the interface's custom DNS servers, none for automatic DNS (the
  // system's resolver); EINVAL, before anything changes, for more than kMaxDnsServers or one that
  // is not a unicast or loopback address.
  NetworkResult<void> SetDynamicIp(const std::string& interface, std::span<const in_addr> dns = {});
  // The DNS servers of the interfaces aspisd manages, each once, at most kMaxDnsServers: the
  // custom ones of every interface (in interface name order), then those the leases of interfaces
  // in dynamic mode without custom ones name, but never an address of the device's nor one in the
  // subnet of another interface aspisd manages (a private network's). Where aspisd's resolver for
  // apps asks, instead of the system's resolver, when there are any.
  std::vector<in_addr> DnsServers();
  // The NTP servers the leases of interfaces in dynamic mode name, the interfaces in name order,
  // each once, at most kMaxLeaseNtpServers, but none DnsServers would leave out: where automatic
  // time sync takes the time.
  std::vector<in_addr> NtpServers();
  // In dynamic mode only (EINVAL otherwise): gives the lease back, leaving the interface without
  // an address until RenewIp; asks for it again (a released one anew).
  NetworkResult<void> ReleaseIp(const std::string& interface);
  NetworkResult<void> RenewIp(const std::string& interface);
  // Serves DHCP (dnsmasq) on an interface with a static address, replacing a server it ran. EINVAL,
  // before anything starts: no static address, a mask that is not the interface's, a range that
  // leaves its subnet or holds the interface's own, network or broadcast address, a gateway that
  // is not a host of the subnet, no lease time, NTP servers that are not unicast addresses.
  NetworkResult<void> StartDhcpServer(const std::string& interface,
                                      const DhcpServerSettings& settings);
  // Serves the device's time over (S)NTP (chronyd, which never sets the clock) at the static
  // address of `interface`, to its subnet only. EINVAL without a static address.
  NetworkResult<void> StartSntpServer(const std::string& interface);
  NetworkResult<HardwareAddress> GetHardwareAddress(const std::string& interface);
  // EINVAL: a multicast or all-zero address.
  NetworkResult<void> SetHardwareAddress(const std::string& interface,
                                         const HardwareAddress& address);

 private:
  NetworkControl(std::set<std::string> interfaces, nl_sock* socket, Fd netns,
                 NetworkDaemons daemons);
  // Starts dhcpcd for `interface` (with mutex_ held), its pid recorded in ClientRecord.
  NetworkResult<void> StartDhcpClient(const std::string& interface);
  std::vector<std::string> DhcpClientArgv(const std::string& interface) const;
  std::filesystem::path ClientRecord(const std::string& interface) const;
  // The current lease of each interface in dynamic mode whose client runs, in name order (with
  // mutex_ held), read from dhcpcd's lease file each time: only a lease whose address the
  // interface holds, its servers without any that would have the device ask itself or a private
  // network (an address of the device's, or one in the subnet of another interface aspisd
  // manages).
  std::vector<std::pair<std::string, LeaseServers>> Leases();
  // The device's IPv4 addresses (host order), by interface index (with mutex_ held); none when
  // they cannot be read.
  struct HostAddress {
    int index = 0;
    std::uint32_t host = 0;
    int prefix = 0;
  };
  std::vector<HostAddress> HostAddresses();
  // The static IPv4 address of `interface` (host order) and its prefix length (with mutex_ held):
  // EINVAL when it has none or is in dynamic mode.
  NetworkResult<std::pair<std::uint32_t, int>> StaticAddress(const std::string& interface);
  // The interface's index, when it is one aspisd manages and exists (by its own name).
  NetworkResult<int> Index(const std::string& interface);
  NetworkResult<void> SetDefaultRoute(int index, in_addr gateway);  // with mutex_ held
  // The interface's IPv4 addresses, as a cache whose objects stay valid while it lives.
  NetworkResult<std::vector<rtnl_addr*>> Ipv4Addresses(int index, nl_cache*& cache);

  const std::set<std::string> interfaces_;
  const Fd netns_;  // where DHCP clients run; -1: aspisd's namespace
  const NetworkDaemons daemons_;
  std::mutex mutex_;
  nl_sock* socket_;  // guarded by mutex_
  // Guarded by mutex_: the interfaces in dynamic mode, the DHCP clients running for them (none
  // for one whose lease was released), and the DHCP servers running on interfaces.
  std::set<std::string> dynamic_;
  std::map<std::string, std::unique_ptr<NetworkDaemon>> clients_;
  std::map<std::string, std::unique_ptr<NetworkDaemon>> servers_;
  std::map<std::string, std::unique_ptr<NetworkDaemon>> time_servers_;
  std::map<std::string, std::vector<in_addr>> dns_;  // guarded by mutex_
};

}  // namespace aspis::device::board
