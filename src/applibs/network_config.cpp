#include <applibs/networking.h>

#include <net/if.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>

#include "applibs/broker_client.hpp"

// Configuring the device's network: the buffers are the app's (filled here); aspisd applies them
// (networking.config.* calls) to an interface it manages, checking NetworkConfig (EACCES), and
// refuses an interface it does not manage (EPERM); custom DNS servers are where aspisd's resolver
// for apps asks. It serves DHCP and SNTP on a private network's interface (DhcpService,
// SntpService), and the device's time sync (TimeSyncConfig) where aspisd keeps the time.
namespace {

constexpr std::size_t kMaxServers = 3;

struct IpConfig {
  bool static_ip;
  in_addr address, subnet_mask, gateway;
  std::uint8_t dns_count;
  std::array<in_addr, kMaxServers> dns;
};
static_assert(sizeof(IpConfig) <= sizeof(Networking_IpConfig));

struct DhcpServerConfig {
  in_addr start, subnet_mask, gateway;
  std::uint8_t count;
  std::uint32_t lease_hours;
  std::uint8_t ntp_count;
  std::array<in_addr, kMaxServers> ntp;
};
static_assert(sizeof(DhcpServerConfig) <= sizeof(Networking_DhcpServerConfig));

template <typename Layout, typename Buffer>
Layout* As(Buffer* buffer) {
  return reinterpret_cast<Layout*>(buffer);
}

using aspis::applibs::BrokerCall;

// An interface name as the kernel has them (letters, digits, '-', '_', '.'), quoted for a request;
// empty (errno set) for none: EFAULT for NULL, ENOENT for a name no interface can have.
std::string Interface(const char* name) {
  if (name == nullptr) {
    errno = EFAULT;
    return {};
  }
  const std::size_t length = strnlen(name, IF_NAMESIZE);
  const bool valid =
      length > 0 && length < IF_NAMESIZE && std::all_of(name, name + length, [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
      });
  if (!valid) {
    errno = ENOENT;
    return {};
  }
  return "\"" + std::string(name, length) + "\"";
}

// Sends networking.config.<what> for interface `name` with `fields` (",\"key\":value...").
int Config(const char* what, const char* name, const std::string& fields = {},
           std::string* answer = nullptr) {
  const std::string interface = Interface(name);
  if (interface.empty()) return -1;
  return BrokerCall(std::string(R"({"call":"networking.config.)") + what + R"(","interface":)" +
                        interface + fields + "}",
                    {}, answer);
}

constexpr std::size_t kMaxNtpServerName = 253;

int TimeSyncSet(const std::string& fields) {
  return BrokerCall(R"({"call":"networking.timesync.set",)" + fields + "}", {});
}

const char* Fallback(Networking_NtpOption option) {
  return option == Networking_NtpOption_FallbackServerDisabled ? "false" : "true";
}

int Servers(in_addr* into, std::uint8_t* count, const in_addr* servers, size_t server_count) {
  if (servers == nullptr && server_count > 0) {
    errno = EFAULT;
    return -1;
  }
  if (server_count > kMaxServers) {
    errno = ERANGE;
    return -1;
  }
  if (server_count > 0) std::memcpy(into, servers, server_count * sizeof(in_addr));
  *count = static_cast<std::uint8_t>(server_count);
  return 0;
}

}  // namespace

extern "C" {

int Networking_SetInterfaceState(const char* networkInterfaceName, bool isEnabled) {
  return Config("state", networkInterfaceName, isEnabled ? R"(,"up":true)" : R"(,"up":false)");
}

void Networking_IpConfig_Init(Networking_IpConfig* ipConfig) {
  if (ipConfig != nullptr) std::memset(ipConfig, 0, sizeof *ipConfig);
}

void Networking_IpConfig_Destroy(Networking_IpConfig* ipConfig) {
  Networking_IpConfig_Init(ipConfig);
}

void Networking_IpConfig_EnableDynamicIp(Networking_IpConfig* ipConfig) {
  if (ipConfig != nullptr) As<IpConfig>(ipConfig)->static_ip = false;
}

void Networking_IpConfig_EnableStaticIp(Networking_IpConfig* ipConfig, struct in_addr ipAddress,
                                        struct in_addr subnetMask, struct in_addr gatewayAddress) {
  if (ipConfig == nullptr) return;
  IpConfig& config = *As<IpConfig>(ipConfig);
  config.static_ip = true;
  config.address = ipAddress;
  config.subnet_mask = subnetMask;
  config.gateway = gatewayAddress;
}

void Networking_IpConfig_EnableAutomaticDns(Networking_IpConfig* ipConfig) {
  if (ipConfig != nullptr) As<IpConfig>(ipConfig)->dns_count = 0;
}

int Networking_IpConfig_EnableCustomDns(Networking_IpConfig* ipConfig,
                                        const struct in_addr* dnsServerAddresses,
                                        size_t serverCount) {
  if (ipConfig == nullptr) {
    errno = EFAULT;
    return -1;
  }
  IpConfig& config = *As<IpConfig>(ipConfig);
  return Servers(config.dns.data(), &config.dns_count, dnsServerAddresses, serverCount);
}

int Networking_IpConfig_Apply(const char* networkInterfaceName,
                              const Networking_IpConfig* ipConfig) {
  if (ipConfig == nullptr) {
    errno = EFAULT;
    return -1;
  }
  const IpConfig& config = *As<const IpConfig>(ipConfig);
  std::string dns;
  for (std::size_t i = 0; i < std::min<std::size_t>(config.dns_count, kMaxServers); ++i) {
    dns += (i == 0 ? "" : ",") + std::to_string(config.dns[i].s_addr);
  }
  return Config("ip", networkInterfaceName,
                std::string(R"(,"static":)") + (config.static_ip ? "true" : "false") +
                    R"(,"address":)" + std::to_string(config.address.s_addr) + R"(,"mask":)" +
                    std::to_string(config.subnet_mask.s_addr) + R"(,"gateway":)" +
                    std::to_string(config.gateway.s_addr) + R"(,"dns":[)" + dns + "]");
}

int Networking_IpConfig_ReleaseIp(const char* networkInterfaceName) {
  return Config("release", networkInterfaceName);
}

int Networking_IpConfig_RenewIp(const char* networkInterfaceName) {
  return Config("renew", networkInterfaceName);
}

int Networking_GetHardwareAddress(const char* networkInterfaceName,
                                  Networking_Interface_HardwareAddress* outAddress) {
  if (outAddress == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::string answer;
  if (Config("mac", networkInterfaceName, {}, &answer) != 0) return -1;
  const std::string mac = aspis::applibs::JsonBytes(answer, "mac", HARDWARE_ADDRESS_LENGTH);
  if (mac.size() != HARDWARE_ADDRESS_LENGTH) {
    errno = EIO;
    return -1;
  }
  std::memcpy(outAddress->address, mac.data(), mac.size());
  return 0;
}

int Networking_SetHardwareAddress(const char* networkInterfaceName, const uint8_t* hardwareAddress,
                                  size_t hardwareAddressLength) {
  if (hardwareAddress == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (hardwareAddressLength != HARDWARE_ADDRESS_LENGTH) {
    errno = hardwareAddressLength > HARDWARE_ADDRESS_LENGTH ? ERANGE : EINVAL;
    return -1;
  }
  return Config(
      "mac.set", networkInterfaceName,
      R"(,"mac":")" + aspis::applibs::HexOf(hardwareAddress, hardwareAddressLength) + "\"");
}

void Networking_SntpServerConfig_Init(Networking_SntpServerConfig* sntpServerConfig) {
  if (sntpServerConfig != nullptr) std::memset(sntpServerConfig, 0, sizeof *sntpServerConfig);
}

void Networking_SntpServerConfig_Destroy(Networking_SntpServerConfig* sntpServerConfig) {
  Networking_SntpServerConfig_Init(sntpServerConfig);
}

int Networking_SntpServer_Start(const char* networkInterfaceName,
                                const Networking_SntpServerConfig* sntpServerConfig) {
  if (networkInterfaceName == nullptr || sntpServerConfig == nullptr) {
    errno = EFAULT;
    return -1;
  }
  return Config("sntpserver", networkInterfaceName);
}

void Networking_DhcpServerConfig_Init(Networking_DhcpServerConfig* dhcpServerConfig) {
  if (dhcpServerConfig != nullptr) std::memset(dhcpServerConfig, 0, sizeof *dhcpServerConfig);
}

void Networking_DhcpServerConfig_Destroy(Networking_DhcpServerConfig* dhcpServerConfig) {
  Networking_DhcpServerConfig_Init(dhcpServerConfig);
}

int Networking_DhcpServerConfig_SetLease(Networking_DhcpServerConfig* dhcpServerConfig,
                                         struct in_addr startIpAddress, uint8_t ipAddressCount,
                                         struct in_addr subnetMask, struct in_addr gatewayAddress,
                                         uint32_t leaseTimeInHours) {
  if (dhcpServerConfig == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (ipAddressCount == 0 || leaseTimeInHours == 0) {
    errno = EINVAL;
    return -1;
  }
  DhcpServerConfig& config = *As<DhcpServerConfig>(dhcpServerConfig);
  config.start = startIpAddress;
  config.count = ipAddressCount;
  config.subnet_mask = subnetMask;
  config.gateway = gatewayAddress;
  config.lease_hours = leaseTimeInHours;
  return 0;
}

int Networking_DhcpServerConfig_SetNtpServerAddresses(Networking_DhcpServerConfig* dhcpServerConfig,
                                                      const struct in_addr* ntpServerAddresses,
                                                      size_t serverCount) {
  if (dhcpServerConfig == nullptr) {
    errno = EFAULT;
    return -1;
  }
  DhcpServerConfig& config = *As<DhcpServerConfig>(dhcpServerConfig);
  return Servers(config.ntp.data(), &config.ntp_count, ntpServerAddresses, serverCount);
}

int Networking_DhcpServer_Start(const char* networkInterfaceName,
                                const Networking_DhcpServerConfig* dhcpServerConfig) {
  if (networkInterfaceName == nullptr || dhcpServerConfig == nullptr) {
    errno = EFAULT;
    return -1;
  }
  const DhcpServerConfig& config = *As<const DhcpServerConfig>(dhcpServerConfig);
  std::string ntp;
  for (std::size_t i = 0; i < config.ntp_count && i < kMaxServers; ++i) {
    ntp += (ntp.empty() ? "" : ",") + std::to_string(config.ntp[i].s_addr);
  }
  return Config("dhcpserver", networkInterfaceName,
                ",\"start\":" + std::to_string(config.start.s_addr) +
                    ",\"count\":" + std::to_string(config.count) +
                    ",\"mask\":" + std::to_string(config.subnet_mask.s_addr) +
                    ",\"gateway\":" + std::to_string(config.gateway.s_addr) + ",\"lease_hours\":" +
                    std::to_string(config.lease_hours) + ",\"ntp\":[" + ntp + "]");
}

int Networking_TimeSync_SetEnabled(bool enabled) {
  return TimeSyncSet(enabled ? R"("enabled":true)" : R"("enabled":false)");
}

int Networking_TimeSync_EnableAutomaticNtp(Networking_NtpOption option) {
  return TimeSyncSet(std::string(R"("ntp":"automatic","fallback":)") + Fallback(option));
}

int Networking_TimeSync_EnableCustomNtp(const char* primaryNtpServer,
                                        const char* secondaryNtpServer,
                                        Networking_NtpOption option) {
  if (primaryNtpServer == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::string servers;
  for (const char* server : {primaryNtpServer, secondaryNtpServer}) {
    if (server == nullptr) continue;
    const std::size_t length = strnlen(server, kMaxNtpServerName + 1);
    if (length == 0 || length > kMaxNtpServerName) {
      errno = EINVAL;
      return -1;
    }
    servers +=
        std::string(servers.empty() ? "\"" : ",\"") + aspis::applibs::HexOf(server, length) + "\"";
  }
  return TimeSyncSet(R"("ntp":"custom","servers":[)" + servers + R"(],"fallback":)" +
                     Fallback(option));
}

int Networking_TimeSync_EnableDefaultNtp(void) { return TimeSyncSet(R"("ntp":"default")"); }

int Networking_TimeSync_GetLastNtpSyncInfo(char* outNtpServer, size_t* inOutNtpServerLength,
                                           struct tm* outTimeBeforeSync, struct tm* outNtpTime) {
  if (inOutNtpServerLength == nullptr || outTimeBeforeSync == nullptr || outNtpTime == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::string answer;
  if (BrokerCall(R"({"call":"networking.timesync.last"})", {}, &answer) != 0) return -1;
  const std::string server = aspis::applibs::JsonBytes(answer, "server", kMaxNtpServerName);
  // The size the name needs, with its NUL; ENOBUFS (the size set) when the buffer is smaller.
  const std::size_t room = *inOutNtpServerLength;
  *inOutNtpServerLength = server.size() + 1;
  if (outNtpServer == nullptr || room < server.size() + 1) {
    errno = ENOBUFS;
    return -1;
  }
  std::memcpy(outNtpServer, server.c_str(), server.size() + 1);
  const time_t before = static_cast<time_t>(aspis::applibs::JsonNumber(answer, "before"));
  const time_t ntp = static_cast<time_t>(aspis::applibs::JsonNumber(answer, "ntp"));
  if (gmtime_r(&before, outTimeBeforeSync) == nullptr || gmtime_r(&ntp, outNtpTime) == nullptr) {
    errno = EOVERFLOW;
    return -1;
  }
  return 0;
}

}  // extern "C"
