#include "device/board/network.hpp"

#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "core/bytes.hpp"
#include "core/fd.hpp"
#include "core/file.hpp"
#include "core/log.hpp"

namespace aspis::device::board {

namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* object) const {
    Free(object);
  }
};
using LinkPtr = std::unique_ptr<rtnl_link, Deleter<rtnl_link_put>>;
using AddrPtr = std::unique_ptr<rtnl_addr, Deleter<rtnl_addr_put>>;
using NlAddrPtr = std::unique_ptr<nl_addr, Deleter<nl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Deleter<rtnl_route_put>>;
using CachePtr = std::unique_ptr<nl_cache, Deleter<nl_cache_free>>;

// libnl's error (a negative NLE_ code) as the errno applibs returns.
int ErrnoOf(int nl_error) {
  switch (-nl_error) {
    case NLE_NODEV:
    case NLE_OBJ_NOTFOUND:
      return ENOENT;
    case NLE_PERM:
      return EPERM;
    case NLE_INVAL:
    case NLE_RANGE:
      return EINVAL;
    case NLE_EXIST:
      return EEXIST;
    case NLE_BUSY:
      return EBUSY;
    case NLE_NOMEM:
      return ENOMEM;
    case NLE_NOADDR:
      return EADDRNOTAVAIL;
    default:
      return EIO;
  }
}

NetworkResult<void> Done(int rc) {
  if (rc < 0) return std::unexpected(ErrnoOf(rc));
  return {};
}

// Not 0.0.0.0/8, loopback, multicast or reserved (240.0.0.0/4, the broadcast address among them).
bool IsUnicast(std::uint32_t address) {
  const std::uint32_t first = address >> 24;
  return first != 0 && first != 127 && first < 224;
}

// At most kMaxDnsServers, each unicast or on loopback (a caching resolver on the device).
bool ValidDnsServers(std::span<const in_addr> servers) {
  return servers.size() <= kMaxDnsServers &&
         std::all_of(servers.begin(), servers.end(), [](in_addr server) {
           const std::uint32_t address = ntohl(server.s_addr);
           return IsUnicast(address) || (address >> 24) == 127;
         });
}

void AddOnce(std::vector<in_addr>& servers, in_addr server, std::size_t most) {
  const bool listed = std::any_of(servers.begin(), servers.end(),
                                  [&](in_addr s) { return s.s_addr == server.s_addr; });
  if (!listed && servers.size() < most) servers.push_back(server);
}

std::string Dotted(std::uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

NlAddrPtr Ipv4(in_addr address) {
  return NlAddrPtr(::nl_addr_build(AF_INET, &address, sizeof address));
}

}  // namespace

std::vector<std::string> AsText(std::span<const in_addr> addresses) {
  std::vector<std::string> text;
  text.reserve(addresses.size());
  for (const in_addr address : addresses) text.push_back(Dotted(ntohl(address.s_addr)));
  return text;
}

NetworkResult<std::unique_ptr<NetworkControl>> NetworkControl::Open(
    std::set<std::string> interfaces, const std::filesystem::path& netns, NetworkDaemons daemons) {
  nl_sock* socket = nullptr;
  int error = 0;
  const auto connect = [&] {
    socket = ::nl_socket_alloc();
    if (socket == nullptr) {
      error = ENOMEM;
    } else if (const int rc = ::nl_connect(socket, NETLINK_ROUTE); rc < 0) {
      error = ErrnoOf(rc);
      ::nl_socket_free(socket);
      socket = nullptr;
    }
  };
  Fd ns(-1);
  if (netns.empty()) {
    connect();
  } else {
    ns = Fd(::open(netns.c_str(), O_RDONLY | O_CLOEXEC));
    if (ns.get() < 0) return std::unexpected(errno);
    // A socket stays in the namespace it was made in: made on a thread that entered it.
    std::thread([&] {
      if (::setns(ns.get(), CLONE_NEWNET) != 0) {
        error = errno;
        return;
      }
      connect();
    }).join();
  }
  if (socket == nullptr) return std::unexpected(error);
  return std::unique_ptr<NetworkControl>(
      new NetworkControl(std::move(interfaces), socket, std::move(ns), std::move(daemons)));
}

NetworkControl::NetworkControl(std::set<std::string> interfaces, nl_sock* socket, Fd netns,
                               NetworkDaemons daemons)
    : interfaces_(std::move(interfaces)),
      netns_(std::move(netns)),
      daemons_(std::move(daemons)),
      socket_(socket) {
  // A killed aspisd's DHCP clients would go on configuring its interfaces.
  for (const auto& interface : interfaces_) {
    NetworkDaemon::EndLeftBehind(ClientRecord(interface), DhcpClientArgv(interface),
                                 daemons_.stop_grace);
  }
}

NetworkControl::~NetworkControl() {
  clients_.clear();  // each takes its address off its interface
  servers_.clear();
  time_servers_.clear();
  ::nl_socket_free(socket_);
}

NetworkResult<int> NetworkControl::Index(const std::string& interface) {
  if (!interfaces_.contains(interface)) return std::unexpected(EPERM);
  rtnl_link* found = nullptr;
  if (::rtnl_link_get_kernel(socket_, 0, interface.c_str(), &found) < 0) {
    return std::unexpected(ENOENT);
  }
  const LinkPtr link(found);
  // The kernel also finds an interface by an alternative name: only its own name is the one listed.
  if (const char* name = ::rtnl_link_get_name(link.get()); name == nullptr || interface != name) {
    return std::unexpected(ENOENT);
  }
  return ::rtnl_link_get_ifindex(link.get());
}

NetworkResult<void> NetworkControl::SetUp(const std::string& interface, bool up) {
  const std::lock_guard lock(mutex_);
  const auto index = Index(interface);
  if (!index) return std::unexpected(index.error());
  const LinkPtr change(::rtnl_link_alloc());
  if (!change) return std::unexpected(ENOMEM);
  ::rtnl_link_set_ifindex(change.get(), *index);
  if (up) {
    ::rtnl_link_set_flags(change.get(), IFF_UP);
  } else {
    ::rtnl_link_unset_flags(change.get(), IFF_UP);
  }
  return Done(::rtnl_link_change(socket_, change.get(), change.get(), 0));
}

NetworkResult<void> NetworkControl::SetStaticIp(const std::string& interface, in_addr address,
                                                in_addr mask, in_addr gateway,
                                                std::span<const in_addr> dns) {
  if (!ValidDnsServers(dns)) return std::unexpected(EINVAL);
  const std::uint32_t own = ntohl(address.s_addr);
  const std::uint32_t bits = ntohl(mask.s_addr);
  const std::uint32_t via = ntohl(gateway.s_addr);
  const int prefix = std::popcount(bits);
  // A host of a subnet, with a prefix mask of at least one bit, and a gateway that is another
  // host of that subnet: all checked before anything changes.
  if (prefix == 0 || bits != ~0U << (32 - prefix)) return std::unexpected(EINVAL);
  const std::uint32_t network = own & bits;
  const std::uint32_t broadcast = network | ~bits;
  const auto host = [&](std::uint32_t a) {
    return IsUnicast(a) && (prefix > 30 || (a != network && a != broadcast));
  };
  if (!host(own) || (via != 0 && (!host(via) || via == own || (via & bits) != network))) {
    return std::unexpected(EINVAL);
  }
  const std::lock_guard lock(mutex_);
  const auto index = Index(interface);
  if (!index) return std::unexpected(index.error());
  clients_.erase(interface);  // dhcpcd takes its lease's address and routes off first
  servers_.erase(interface);
  time_servers_.erase(interface);
  dynamic_.erase(interface);
  nl_cache* loaded = nullptr;
  auto found = Ipv4Addresses(*index, loaded);
  const CachePtr addresses(loaded);
  if (!found) return std::unexpected(found.error());
  const std::vector<rtnl_addr*>& old = *found;
  // Secondary addresses go with their primary: one already gone is no error.
  for (rtnl_addr* existing : old) {
    if (const int rc = ::rtnl_addr_delete(socket_, existing, 0); rc < 0 && rc != -NLE_NOADDR) {
      return std::unexpected(ErrnoOf(rc));
    }
  }
  const AddrPtr added(::rtnl_addr_alloc());
  const NlAddrPtr local = Ipv4(address);
  if (!added || !local) return std::unexpected(ENOMEM);
  ::rtnl_addr_set_ifindex(added.get(), *index);
  ::rtnl_addr_set_family(added.get(), AF_INET);
  int rc = ::rtnl_addr_set_local(added.get(), local.get());
  ::rtnl_addr_set_prefixlen(added.get(), prefix);  // after the local address, which sets it too
  if (rc >= 0) rc = ::rtnl_addr_add(socket_, added.get(), 0);
  if (rc < 0) {
    for (rtnl_addr* existing : old) (void)::rtnl_addr_add(socket_, existing, 0);  // as it was
    return std::unexpected(ErrnoOf(rc));
  }
  if (via != 0) {
    if (auto routed = SetDefaultRoute(*index, gateway); !routed) return routed;
  }
  dns_[interface].assign(dns.begin(), dns.end());
  return {};
}

std::vector<in_addr> NetworkControl::DnsServers() {
  const std::lock_guard lock(mutex_);
  std::vector<in_addr> servers;
  for (const auto& [interface, custom] : dns_) {
    for (const in_addr server : custom) AddOnce(servers, server, kMaxDnsServers);
  }
  for (const auto& [interface, lease] : Leases()) {
    if (const auto custom = dns_.find(interface); custom != dns_.end() && !custom->second.empty()) {
      continue;
    }
    for (const in_addr server : lease.dns) AddOnce(servers, server, kMaxDnsServers);
  }
  return servers;
}

std::vector<in_addr> NetworkControl::NtpServers() {
  const std::lock_guard lock(mutex_);
  std::vector<in_addr> servers;
  for (const auto& [interface, lease] : Leases()) {
    for (const in_addr server : lease.ntp) AddOnce(servers, server, kMaxLeaseNtpServers);
  }
  return servers;
}

std::vector<std::pair<std::string, LeaseServers>> NetworkControl::Leases() {
  std::vector<std::pair<std::string, LeaseServers>> leases;
  if (clients_.empty()) return leases;
  std::map<std::string, int> indexes;  // of the interfaces aspisd manages that exist
  std::set<int> managed;
  for (const std::string& interface : interfaces_) {
    if (const auto index = Index(interface)) {
      indexes.emplace(interface, *index);
      managed.insert(*index);
    }
  }
  std::optional<std::vector<HostAddress>> local;  // the device's, read once a lease is
  for (const auto& [interface, index] : indexes) {
    if (!dynamic_.contains(interface) || !clients_.contains(interface)) continue;
    const auto kept =
        file::Read(daemons_.dhcp_client_db / (interface + ".lease"), std::size_t{64} * 1024);
    if (!kept) continue;
    LeaseServers lease = ParseLease(*kept);
    if (!local) local = HostAddresses();
    // A lease the client holds now, not one left from another network or an earlier run.
    const bool held = std::any_of(local->begin(), local->end(), [&](const HostAddress& a) {
      return a.index == index && a.host == ntohl(lease.address.s_addr);
    });
    if (!held) continue;
    // Never the device itself, nor a host of a private network (another managed interface's
    // subnet).
    const auto inward = [&](in_addr server) {
      const std::uint32_t asked = ntohl(server.s_addr);
      return std::any_of(local->begin(), local->end(), [&](const HostAddress& a) {
        const bool private_network = a.index != index && managed.contains(a.index) &&
                                     a.prefix > 0 && a.prefix <= 32 &&
                                     ((a.host ^ asked) >> (32 - a.prefix)) == 0;
        return a.host == asked || private_network;
      });
    };
    std::erase_if(lease.dns, inward);
    std::erase_if(lease.ntp, inward);
    leases.emplace_back(interface, std::move(lease));
  }
  return leases;
}

std::vector<NetworkControl::HostAddress> NetworkControl::HostAddresses() {
  std::vector<HostAddress> found;
  nl_cache* loaded = nullptr;
  if (::rtnl_addr_alloc_cache(socket_, &loaded) < 0) return found;
  const CachePtr addresses(loaded);
  for (nl_object* object = ::nl_cache_get_first(loaded); object != nullptr;
       object = ::nl_cache_get_next(object)) {
    auto* address = reinterpret_cast<rtnl_addr*>(object);
    nl_addr* local = ::rtnl_addr_get_local(address);
    if (::rtnl_addr_get_family(address) != AF_INET || local == nullptr ||
        ::nl_addr_get_len(local) != sizeof(in_addr_t)) {
      continue;
    }
    in_addr_t value = 0;
    std::memcpy(&value, ::nl_addr_get_binary_addr(local), sizeof value);
    found.push_back({.index = ::rtnl_addr_get_ifindex(address),
                     .host = ntohl(value),
                     .prefix = ::rtnl_addr_get_prefixlen(address)});
  }
  return found;
}

NetworkResult<void> NetworkControl::SetDefaultRoute(int index, in_addr gateway) {
  // The interface's own default routes give way; others' stay, and outrank this one.
  nl_cache* loaded = nullptr;
  if (const int rc = ::rtnl_route_alloc_cache(socket_, AF_INET, 0, &loaded); rc < 0) {
    return std::unexpected(ErrnoOf(rc));
  }
  const CachePtr routes(loaded);
  for (nl_object* object = ::nl_cache_get_first(routes.get()); object != nullptr;
       object = ::nl_cache_get_next(object)) {
    auto* route = reinterpret_cast<rtnl_route*>(object);
    nl_addr* dst = ::rtnl_route_get_dst(route);
    bool through = false;
    for (int i = 0; i < ::rtnl_route_get_nnexthops(route); ++i) {
      through = through || ::rtnl_route_nh_get_ifindex(::rtnl_route_nexthop_n(route, i)) == index;
    }
    if (through && dst != nullptr && ::nl_addr_get_prefixlen(dst) == 0 &&
        ::rtnl_route_get_table(route) == RT_TABLE_MAIN) {
      (void)::rtnl_route_delete(socket_, route, 0);
    }
  }
  const RoutePtr route(::rtnl_route_alloc());
  const NlAddrPtr any = Ipv4(in_addr{0});
  const NlAddrPtr via = Ipv4(gateway);
  rtnl_nexthop* hop = ::rtnl_route_nh_alloc();
  if (!route || !any || !via || hop == nullptr) {
    if (hop != nullptr) ::rtnl_route_nh_free(hop);
    return std::unexpected(ENOMEM);
  }
  ::nl_addr_set_prefixlen(any.get(), 0);
  ::rtnl_route_set_family(route.get(), AF_INET);
  ::rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  ::rtnl_route_set_priority(route.get(), kManagedRouteMetric);
  if (auto set = Done(::rtnl_route_set_dst(route.get(), any.get())); !set) {
    ::rtnl_route_nh_free(hop);
    return set;
  }
  ::rtnl_route_nh_set_ifindex(hop, index);
  ::rtnl_route_nh_set_gateway(hop, via.get());
  ::rtnl_route_add_nexthop(route.get(), hop);  // the route owns it now
  return Done(::rtnl_route_add(socket_, route.get(), 0));
}

NetworkResult<HardwareAddress> NetworkControl::GetHardwareAddress(const std::string& interface) {
  const std::lock_guard lock(mutex_);
  const auto index = Index(interface);
  if (!index) return std::unexpected(index.error());
  rtnl_link* found = nullptr;
  if (::rtnl_link_get_kernel(socket_, *index, nullptr, &found) < 0) return std::unexpected(ENOENT);
  const LinkPtr link(found);
  nl_addr* address = ::rtnl_link_get_addr(link.get());
  HardwareAddress out{};
  if (address == nullptr || ::nl_addr_get_len(address) != out.size()) {
    return std::unexpected(EOPNOTSUPP);
  }
  const auto* bytes = static_cast<const std::uint8_t*>(::nl_addr_get_binary_addr(address));
  std::copy(bytes, bytes + out.size(), out.begin());
  return out;
}

NetworkResult<void> NetworkControl::SetHardwareAddress(const std::string& interface,
                                                       const HardwareAddress& address) {
  if ((address[0] & 1U) != 0 ||
      std::all_of(address.begin(), address.end(), [](std::uint8_t b) { return b == 0; })) {
    return std::unexpected(EINVAL);
  }
  const std::lock_guard lock(mutex_);
  const auto index = Index(interface);
  if (!index) return std::unexpected(index.error());
  const LinkPtr change(::rtnl_link_alloc());
  const NlAddrPtr mac(::nl_addr_build(AF_LLC, address.data(), address.size()));
  if (!change || !mac) return std::unexpected(ENOMEM);
  ::rtnl_link_set_ifindex(change.get(), *index);
  ::rtnl_link_set_addr(change.get(), mac.get());
  return Done(::rtnl_link_change(socket_, change.get(), change.get(), 0));
}

NetworkResult<std::vector<rtnl_addr*>> NetworkControl::Ipv4Addresses(int index, nl_cache*& cache) {
  if (const int rc = ::rtnl_addr_alloc_cache(socket_, &cache); rc < 0) {
    return std::unexpected(ErrnoOf(rc));
  }
  std::vector<rtnl_addr*> found;
  for (nl_object* object = ::nl_cache_get_first(cache); object != nullptr;
       object = ::nl_cache_get_next(object)) {
    auto* existing = reinterpret_cast<rtnl_addr*>(object);
    if (::rtnl_addr_get_ifindex(existing) == index && ::rtnl_addr_get_family(existing) == AF_INET) {
      found.push_back(existing);
    }
  }
  return found;
}

NetworkResult<void> NetworkControl::SetDynamicIp(const std::string& interface,
                                                 std::span<const in_addr> dns) {
  if (!ValidDnsServers(dns)) return std::unexpected(EINVAL);
  const std::lock_guard lock(mutex_);
  const auto index = Index(interface);
  if (!index) return std::unexpected(index.error());
  clients_.erase(interface);
  servers_.erase(interface);
  time_servers_.erase(interface);
  nl_cache* loaded = nullptr;
  auto found = Ipv4Addresses(*index, loaded);
  const CachePtr addresses(loaded);
  if (!found) return std::unexpected(found.error());
  for (rtnl_addr* existing : *found) {
    if (const int rc = ::rtnl_addr_delete(socket_, existing, 0); rc < 0 && rc != -NLE_NOADDR) {
      return std::unexpected(ErrnoOf(rc));
    }
  }
  if (auto started = StartDhcpClient(interface); !started) return started;
  dynamic_.insert(interface);
  dns_[interface].assign(dns.begin(), dns.end());
  return {};
}

NetworkResult<void> NetworkControl::StartDhcpClient(const std::string& interface) {
  auto client = NetworkDaemon::Start(DhcpClientArgv(interface), netns_.get(), daemons_.stop_grace,
                                     "/run/dhcpcd", SIGUSR1);
  if (!client) return std::unexpected(client.error());
  std::error_code ec;
  std::filesystem::create_directories(daemons_.leases_dir, ec);
  if (!(*client)->Record(ClientRecord(interface))) {
    log::Warning("dhcpcd's pid for {} is not recorded", interface);
  }
  clients_[interface] = std::move(*client);
  return {};
}

std::filesystem::path NetworkControl::ClientRecord(const std::string& interface) const {
  return daemons_.leases_dir / (interface + ".dhcpcd.pid");
}

std::vector<std::string> NetworkControl::DhcpClientArgv(const std::string& interface) const {
  // -B: foreground; -4: IPv4; -A: no ARP probe of the offered address; -L: no link-local address
  // when no server answers; no random wait before asking; -f /dev/null: none of the machine's
  // dhcpcd.conf; -m: route metric; -o: ask for DNS and NTP servers. What the network's server
  // says goes no further than this interface's address and default route: no hook runs (-c
  // /bin/true: the device's resolver, hostname and time sources stay as they are; aspisd asks
  // dhcpcd for the servers its apps' lookups and time sync use), and routes to other networks it
  // offers are dropped (classless static routes would outrank the device's own default route).
  std::vector<std::string> argv = {daemons_.dhcp_client.string(),
                                   "-B",
                                   "-4",
                                   "-A",
                                   "-L",
                                   "--nodelay",
                                   "-f",
                                   "/dev/null",
                                   "-c",
                                   "/bin/true",
                                   "-m",
                                   std::to_string(kManagedRouteMetric),
                                   "-o",
                                   "domain_name_servers",
                                   "-o",
                                   "ntp_servers"};
  for (const char* dropped :
       {"classless_static_routes", "ms_classless_static_routes", "static_routes", "host_name"}) {
    argv.insert(argv.end(), {"--nooption", dropped});
  }
  argv.push_back(interface);
  return argv;
}

NetworkResult<void> NetworkControl::ReleaseIp(const std::string& interface) {
  const std::lock_guard lock(mutex_);
  if (const auto index = Index(interface); !index) return std::unexpected(index.error());
  if (!dynamic_.contains(interface)) return std::unexpected(EINVAL);
  if (const auto client = clients_.find(interface); client != clients_.end()) {
    client->second->End(SIGALRM);  // dhcpcd's "release the lease, then exit"
    clients_.erase(client);
  }
  return {};
}

NetworkResult<void> NetworkControl::RenewIp(const std::string& interface) {
  const std::lock_guard lock(mutex_);
  if (const auto index = Index(interface); !index) return std::unexpected(index.error());
  if (!dynamic_.contains(interface)) return std::unexpected(EINVAL);
  if (const auto client = clients_.find(interface); client != clients_.end()) {
    if (client->second->Signal(SIGUSR1)) return {};  // dhcpcd's "renew"
    clients_.erase(client);                          // it ended on its own: a new one asks again
  }
  return StartDhcpClient(interface);
}

NetworkResult<void> NetworkControl::StartDhcpServer(const std::string& interface,
                                                    const DhcpServerSettings& settings) {
  const std::lock_guard lock(mutex_);
  const auto static_address = StaticAddress(interface);
  if (!static_address) return std::unexpected(static_address.error());
  const auto [own, prefix] = *static_address;
  const std::uint32_t bits = ~0U << (32 - prefix);
  const std::uint32_t network = own & bits;
  const std::uint32_t broadcast = network | ~bits;
  const std::uint32_t first = ntohl(settings.start.s_addr);
  const std::uint64_t last = std::uint64_t{first} + settings.count - 1;
  const auto host = [&](std::uint64_t a) {
    return (a & bits) == network && a != network && a != broadcast;
  };
  const std::uint32_t gateway = ntohl(settings.gateway.s_addr);
  if (ntohl(settings.mask.s_addr) != bits || settings.count == 0 || settings.count > 255 ||
      !host(first) || !host(last) || (own >= first && own <= last) ||
      (gateway != 0 && !host(gateway)) || settings.lease_hours == 0 ||
      settings.lease_hours > 24 * 365 || settings.ntp.size() > 3 ||
      !std::all_of(settings.ntp.begin(), settings.ntp.end(),
                   [](in_addr a) { return IsUnicast(ntohl(a.s_addr)); })) {
    return std::unexpected(EINVAL);
  }
  std::error_code ec;
  std::filesystem::create_directories(daemons_.leases_dir, ec);
  if (ec) return std::unexpected(EIO);
  // -k: foreground; no DNS (--port=0); DHCP on this interface only, none of the machine's
  // dnsmasq.conf; no router when no gateway ("option 3" without a value).
  std::vector<std::string> argv = {
      daemons_.dhcp_server.string(),
      "--keep-in-foreground",
      "--conf-file=/dev/null",
      "--port=0",
      "--interface=" + interface,
      "--bind-interfaces",
      "--dhcp-authoritative",
      "--dhcp-range=" + Dotted(first) + "," + Dotted(static_cast<std::uint32_t>(last)) + "," +
          Dotted(bits) + "," + std::to_string(settings.lease_hours) + "h",
      "--dhcp-option=3" + (gateway != 0 ? "," + Dotted(gateway) : std::string()),
      "--dhcp-leasefile=" + (daemons_.leases_dir / (interface + ".leases")).string(),
      "--pid-file=" + (daemons_.leases_dir / (interface + ".pid")).string()};
  if (!settings.ntp.empty()) {
    std::string ntp = "--dhcp-option=42";
    for (const in_addr server : settings.ntp) ntp += "," + Dotted(ntohl(server.s_addr));
    argv.push_back(ntp);
  }
  servers_.erase(interface);
  auto server = NetworkDaemon::Start(std::move(argv), netns_.get(), daemons_.stop_grace);
  if (!server) return std::unexpected(server.error());
  servers_[interface] = std::move(*server);
  return {};
}

NetworkResult<std::pair<std::uint32_t, int>> NetworkControl::StaticAddress(
    const std::string& interface) {
  const auto index = Index(interface);
  if (!index) return std::unexpected(index.error());
  if (dynamic_.contains(interface)) return std::unexpected(EINVAL);
  nl_cache* loaded = nullptr;
  auto found = Ipv4Addresses(*index, loaded);
  const CachePtr addresses(loaded);
  if (!found) return std::unexpected(found.error());
  if (found->empty()) return std::unexpected(EINVAL);
  nl_addr* local = ::rtnl_addr_get_local(found->front());
  const int prefix = ::rtnl_addr_get_prefixlen(found->front());
  if (local == nullptr || ::nl_addr_get_len(local) != 4 || prefix < 1 || prefix > 30) {
    return std::unexpected(EINVAL);
  }
  std::uint32_t own = 0;
  std::memcpy(&own, ::nl_addr_get_binary_addr(local), sizeof own);
  return std::pair(ntohl(own), prefix);
}

NetworkResult<void> NetworkControl::StartSntpServer(const std::string& interface) {
  const std::lock_guard lock(mutex_);
  const auto static_address = StaticAddress(interface);
  if (!static_address) return std::unexpected(static_address.error());
  const auto [own, prefix] = *static_address;
  const std::uint32_t network = own & (~0U << (32 - prefix));
  std::error_code ec;
  std::filesystem::create_directories(daemons_.leases_dir, ec);
  if (ec) return std::unexpected(EIO);
  // The device's own time (a local reference, never a source of its own), answered at the
  // interface's address to its subnet; no command port, and the clock left alone (-x).
  const std::filesystem::path config = daemons_.leases_dir / (interface + ".chrony.conf");
  const std::string text = "local stratum 10\nallow " + Dotted(network) + "/" +
                           std::to_string(prefix) + "\nbindaddress " + Dotted(own) +
                           "\nport 123\ncmdport 0\npidfile " +
                           (daemons_.leases_dir / (interface + ".chrony.pid")).string() + "\n";
  if (!file::WriteDurably(config, AsBytes(text), 0644)) return std::unexpected(EIO);
  time_servers_.erase(interface);
  auto server =
      NetworkDaemon::Start({daemons_.time_server.string(), "-d", "-x", "-f", config.string()},
                           netns_.get(), daemons_.stop_grace);
  if (!server) return std::unexpected(server.error());
  time_servers_[interface] = std::move(*server);
  return {};
}

}  // namespace aspis::device::board
