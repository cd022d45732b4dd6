#include "device/apps/sandbox/network_policy.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "core/fd.hpp"

namespace aspis::device::apps::sandbox {

namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

std::optional<IpAddress> IpAddress::Parse(const std::string& text) {
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) return FromV4(v4);
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) return FromV6(v6);
  return std::nullopt;
}

IpAddress IpAddress::FromV4(const in_addr& address) {
  IpAddress ip;
  std::memcpy(ip.bytes.data(), &address, 4);
  return ip;
}

IpAddress IpAddress::FromV6(const in6_addr& address) {
  IpAddress ip;
  if (std::memcmp(&address, kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0) {
    std::memcpy(ip.bytes.data(), reinterpret_cast<const std::uint8_t*>(&address) + 12, 4);
    return ip;
  }
  ip.v6 = true;
  std::memcpy(ip.bytes.data(), &address, 16);
  return ip;
}

bool IpAddress::IsUnspecified() const {
  if (!v6) return bytes[0] == 0;
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

bool IpAddress::IsGroup() const {
  if (v6) return bytes[0] == 0xff;
  return (bytes[0] & 0xf0) == 0xe0 ||
         std::all_of(bytes.begin(), bytes.begin() + 4, [](std::uint8_t b) { return b == 0xff; });
}

bool IpAddress::IsLocal() const {
  if (!v6) return bytes[0] == 127 || bytes[0] == 0 || (bytes[0] == 169 && bytes[1] == 254);
  const bool zero_prefix =
      std::all_of(bytes.begin(), bytes.begin() + 15, [](std::uint8_t b) { return b == 0; });
  return (zero_prefix && bytes[15] <= 1) || (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80);
}

std::string IpAddress::ToString() const {
  std::array<char, INET6_ADDRSTRLEN> text{};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), text.data(), text.size());
  return text.data();
}

NetworkPolicy::NetworkPolicy(const package::AppCapabilities& capabilities)
    : tcp_ports_(capabilities.allowed_tcp_server_ports.begin(),
                 capabilities.allowed_tcp_server_ports.end()),
      udp_ports_(capabilities.allowed_udp_server_ports.begin(),
                 capabilities.allowed_udp_server_ports.end()) {
  for (const auto& entry : capabilities.allowed_connections) {
    if (const auto address = IpAddress::Parse(entry)) {
      addresses_.insert(*address);
    } else {
      names_.push_back(entry);
    }
  }
}

bool NetworkPolicy::AllowsName(std::string_view name) const {
  return std::any_of(names_.begin(), names_.end(), [&](const std::string& allowed) {
    if (!allowed.starts_with("*.")) return name == allowed;
    const std::string_view parent = std::string_view(allowed).substr(1);  // ".example.com"
    return name.size() > parent.size() && name.ends_with(parent);
  });
}

void NetworkPolicy::Learn(const IpAddress& address, Clock::time_point until) {
  std::lock_guard lock(mutex_);
  if (const auto known = learned_.find(address); known != learned_.end()) {
    known->second = std::max(known->second, until);
    return;
  }
  if (learned_.size() >= kMaxLearned) {
    const auto now = Clock::now();
    std::erase_if(learned_, [now](const auto& entry) { return entry.second <= now; });
  }
  if (learned_.size() >= kMaxLearned) {
    learned_.erase(
        std::min_element(learned_.begin(), learned_.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; }));
  }
  learned_.emplace(address, until);
}

std::size_t NetworkPolicy::learned() const {
  std::lock_guard lock(mutex_);
  return learned_.size();
}

bool NetworkPolicy::AllowsAddress(const IpAddress& address, Clock::time_point now) const {
  // 0.0.0.0/8 and :: are the device itself to the kernel, whatever a manifest lists.
  if (address.IsUnspecified()) return false;
  if (addresses_.contains(address)) return true;
  std::lock_guard lock(mutex_);
  const auto it = learned_.find(address);
  return it != learned_.end() && it->second > now;
}

bool NetworkPolicy::AllowsServerPort(bool stream, std::uint16_t port) const {
  return (stream ? tcp_ports_ : udp_ports_).contains(port);
}

bool NetworkPolicy::Lists(const IpAddress& address) const { return addresses_.contains(address); }

// A UDP socket connected to `address` has it as its own address when the kernel delivers there.
bool RoutesToTheDevice(const IpAddress& address) {
  sockaddr_storage to{};
  socklen_t size = 0;
  if (address.v6) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(to);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(9);
    std::memcpy(&in6.sin6_addr, address.bytes.data(), 16);
    size = sizeof(in6);
  } else {
    auto& in = reinterpret_cast<sockaddr_in&>(to);
    in.sin_family = AF_INET;
    in.sin_port = htons(9);
    std::memcpy(&in.sin_addr, address.bytes.data(), 4);
    size = sizeof(in);
  }
  Fd probe(::socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (probe.get() < 0 ||
      ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&to), size) != 0) {
    return false;  // unreachable: not the device's, and no use to the app either
  }
  sockaddr_storage local{};
  socklen_t local_size = sizeof(local);
  if (::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&local), &local_size) != 0) {
    return true;  // cannot tell: treated as the device's
  }
  const IpAddress own =
      local.ss_family == AF_INET6
          ? IpAddress::FromV6(reinterpret_cast<const sockaddr_in6&>(local).sin6_addr)
          : IpAddress::FromV4(reinterpret_cast<const sockaddr_in&>(local).sin_addr);
  return own == address;
}

}  // namespace aspis::device::apps::sandbox
