// aspisd reads the lease a network's DHCP server gave (device/board/dhcp_lease.hpp): any bytes
// give at most 3 DNS and 4 NTP servers, each once, none of them an address the device must never
// be pointed at.
#include <arpa/inet.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "device/board/dhcp_lease.hpp"

namespace {

void Check(const std::vector<in_addr>& servers, std::size_t most) {
  if (servers.size() > most) __builtin_trap();
  for (std::size_t i = 0; i < servers.size(); ++i) {
    const std::uint32_t address = ntohl(servers[i].s_addr);
    const std::uint32_t first = address >> 24;
    if (first == 0 || first == 127 || first >= 224 || (address >> 16) == 0xa9fe) __builtin_trap();
    for (std::size_t j = 0; j < i; ++j) {
      if (servers[j].s_addr == servers[i].s_addr) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto servers = aspis::device::board::ParseLease(std::span<const std::uint8_t>(data, size));
  Check(servers.dns, aspis::device::board::kMaxLeaseDnsServers);
  Check(servers.ntp, aspis::device::board::kMaxLeaseNtpServers);
  return 0;
}
