#include "device/board/dhcp_lease.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace aspis::device::board {

namespace {

constexpr std::size_t kYiaddrAt = 16;
constexpr std::size_t kSnameAt = 44;
constexpr std::size_t kFileAt = 108;
constexpr std::size_t kCookieAt = 236;
constexpr std::size_t kOptionsAt = 240;
constexpr std::array<std::uint8_t, 4> kCookie = {99, 130, 83, 99};
constexpr std::uint8_t kPad = 0;
constexpr std::uint8_t kEnd = 255;
constexpr std::uint8_t kDns = 6;
constexpr std::uint8_t kNtp = 42;
constexpr std::uint8_t kOverload = 52;

struct Options {
  std::vector<std::uint8_t> dns;
  std::vector<std::uint8_t> ntp;
  std::optional<std::uint8_t> overload;
};

// Adds the options of one field to `options`; false when one runs past the field.
bool ReadField(std::span<const std::uint8_t> field, Options& options) {
  for (std::size_t at = 0; at < field.size();) {
    const std::uint8_t code = field[at];
    if (code == kEnd) return true;
    if (code == kPad) {
      ++at;
      continue;
    }
    if (at + 2 > field.size() || at + 2 + field[at + 1] > field.size()) return false;
    const auto data = field.subspan(at + 2, field[at + 1]);
    if (code == kDns) options.dns.insert(options.dns.end(), data.begin(), data.end());
    if (code == kNtp) options.ntp.insert(options.ntp.end(), data.begin(), data.end());
    if (code == kOverload && data.size() == 1 && !options.overload) options.overload = data[0];
    at += 2 + data.size();
  }
  return true;
}

// Unicast, and not on loopback or link-local: where a network may send the device's questions.
bool IsNetworkServer(std::uint32_t address) {
  const std::uint32_t first = address >> 24;
  return first != 0 && first != 127 && first < 224 && (address >> 16) != 0xa9fe;
}

std::vector<in_addr> Servers(const std::vector<std::uint8_t>& list, std::size_t most) {
  std::vector<in_addr> servers;
  if (list.size() % 4 != 0) return servers;
  for (std::size_t at = 0; at < list.size() && servers.size() < most; at += 4) {
    in_addr server{};
    std::memcpy(&server.s_addr, list.data() + at, 4);
    const bool listed = std::any_of(servers.begin(), servers.end(),
                                    [&](in_addr s) { return s.s_addr == server.s_addr; });
    if (!listed && IsNetworkServer(ntohl(server.s_addr))) servers.push_back(server);
  }
  return servers;
}

}  // namespace

LeaseServers ParseLease(std::span<const std::uint8_t> message) {
  if (message.size() < kOptionsAt ||
      !std::equal(kCookie.begin(), kCookie.end(), message.begin() + kCookieAt)) {
    return {};
  }
  Options options;
  if (!ReadField(message.subspan(kOptionsAt), options)) return {};
  const std::uint8_t overload = options.overload.value_or(0);
  if ((overload & 1U) != 0 && !ReadField(message.subspan(kFileAt, 128), options)) return {};
  if ((overload & 2U) != 0 && !ReadField(message.subspan(kSnameAt, 64), options)) return {};
  LeaseServers servers{.dns = Servers(options.dns, kMaxLeaseDnsServers),
                       .ntp = Servers(options.ntp, kMaxLeaseNtpServers)};
  std::memcpy(&servers.address.s_addr, message.data() + kYiaddrAt, 4);
  return servers;
}

}  // namespace aspis::device::board
