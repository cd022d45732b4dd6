#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

// A DHCP lease as dhcpcd keeps it (<its database directory>/<interface>.lease: the server's
// DHCPACK as received, RFC 2131), read for what aspisd takes from it besides the address: the DNS
// and NTP servers it names. Every byte of it is the network's to choose; read apart from the rest
// of aspisd so that it can be fuzzed alone.
namespace aspis::device::board {

inline constexpr std::size_t kMaxLeaseDnsServers = 3;  // glibc's MAXNS
inline constexpr std::size_t kMaxLeaseNtpServers = 4;

// The DNS (option 6) and NTP (option 42) servers a lease names, in its order, each once, each a
// unicast address (not 0.0.0.0/8, loopback, link-local, multicast or reserved), at most
// kMaxLeaseDnsServers and kMaxLeaseNtpServers.
struct LeaseServers {
  in_addr address{};  // the address leased (yiaddr)
  std::vector<in_addr> dns;
  std::vector<in_addr> ntp;
};

// Options are read from the options field, then, when option 52 says they overload them, from the
// file and sname fields (RFC 2131 4.1); an option given in several parts is their concatenation
// (RFC 3396). A message that is not a DHCP message (too short, no magic cookie), an option that
// runs past its field, or a list whose length is not a multiple of 4 gives no servers of that
// option (none at all for the first two).
LeaseServers ParseLease(std::span<const std::uint8_t> message);

}  // namespace aspis::device::board
