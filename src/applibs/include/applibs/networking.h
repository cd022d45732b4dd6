/* Aspis applibs: the device's network (Azure Sphere's applibs/networking.h): whether it is ready,
 * and its interfaces as the device sees them (an app's own network namespace holds only loopback;
 * its connections go out through aspisd), which needs no capability. NETWORKING_STRUCTS_VERSION
 * is 1 unless the app set it (applibs_versions.h).
 *
 * Configuring the network (interface state, IP configuration, hardware address, the DHCP and SNTP
 * servers of a private network, time sync) needs NetworkConfig, DhcpService, SntpService or
 * TimeSyncConfig (EACCES without), and an interface aspisd manages (the board's definition lists
 * it: EPERM for another; ENOTSUP on a board that lists none). Interface state, static and dynamic
 * (DHCP) addresses, the hardware address and a private network's DHCP and SNTP servers are
 * applied; custom DNS servers (up to 3, unicast or loopback: EINVAL otherwise) are where aspisd
 * looks up the names apps ask for, instead of the device's resolver. Time sync settings apply on a
 * board whose definition gives aspisd its NTP servers (ENOTSUP elsewhere) and persist; automatic
 * NTP has no DHCP-named servers to use, so it uses the board's only with fallback enabled. The
 * configuration buffers are the app's own and work anywhere. */
#pragma once

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifndef NETWORKING_STRUCTS_VERSION
#define NETWORKING_STRUCTS_VERSION 1
#endif
#if NETWORKING_STRUCTS_VERSION != 1
#error applibs/networking.h knows NETWORKING_STRUCTS_VERSION 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t Networking_InterfaceConnectionStatus;
enum {
  Networking_InterfaceConnectionStatus_InterfaceUp = 1u << 0,
  Networking_InterfaceConnectionStatus_ConnectedToNetwork = 1u << 1,
  Networking_InterfaceConnectionStatus_IpAvailable = 1u << 2,
  Networking_InterfaceConnectionStatus_ConnectedToInternet = 1u << 3
};

/* Whether an interface has a DHCP client. */
typedef enum { Networking_IpType_DhcpNone = 0, Networking_IpType_DhcpClient = 1 } Networking_IpType;
typedef uint8_t Networking_IpType_Type;

typedef uint8_t Networking_InterfaceMedium_Type;
enum {
  Networking_InterfaceMedium_Unspecified = 0,
  Networking_InterfaceMedium_Wifi = 1,
  Networking_InterfaceMedium_Ethernet = 2
};

typedef struct Networking_NetworkInterface {
  uint32_t magicAndVersion;
  bool isEnabled;
  char interfaceName[IF_NAMESIZE];
  uint32_t reserved;
  Networking_IpType_Type ipConfigurationType;
  Networking_InterfaceMedium_Type interfaceMediumType;
} Networking_NetworkInterface;

#define HARDWARE_ADDRESS_LENGTH 6

/* Configuration buffers, filled by the functions below. */
typedef struct Networking_IpConfig {
  uint64_t reserved[5];
} Networking_IpConfig;
typedef struct Networking_SntpServerConfig {
  uint64_t reserved[3];
} Networking_SntpServerConfig;
typedef struct Networking_DhcpServerConfig {
  uint64_t reserved[8];
} Networking_DhcpServerConfig;
typedef struct Networking_Interface_HardwareAddress {
  uint8_t address[HARDWARE_ADDRESS_LENGTH];
} Networking_Interface_HardwareAddress;

/* 0 with *outIsNetworkingReady true when an interface has an address and a default route, or -1
 * with errno: EFAULT for NULL. */
int Networking_IsNetworkingReady(bool* outIsNetworkingReady);
/* The device's interfaces other than loopback, or -1 with errno. */
ssize_t Networking_GetInterfaceCount(void);
/* Fills up to networkInterfacesArrayCount entries; how many, or -1 with errno. */
ssize_t Networking_GetInterfaces(Networking_NetworkInterface* outNetworkInterfacesArray,
                                 size_t networkInterfacesArrayCount);
/* 0 with *outIsEnabled true while the device's clock is kept in sync (the kernel's STA_UNSYNC is
 * clear: chrony, systemd-timesyncd or the like disciplines it), or -1 with errno. */
int Networking_TimeSync_GetEnabled(bool* outIsEnabled);
/* 0 with the interface's flags, or -1 with errno: ENOENT for no such interface. */
int Networking_GetInterfaceConnectionStatus(const char* networkInterfaceName,
                                            Networking_InterfaceConnectionStatus* outStatus);

/* NetworkConfig. */
int Networking_SetInterfaceState(const char* networkInterfaceName, bool isEnabled);
void Networking_IpConfig_Init(Networking_IpConfig* ipConfig);
void Networking_IpConfig_Destroy(Networking_IpConfig* ipConfig);
void Networking_IpConfig_EnableDynamicIp(Networking_IpConfig* ipConfig);
void Networking_IpConfig_EnableStaticIp(Networking_IpConfig* ipConfig, struct in_addr ipAddress,
                                        struct in_addr subnetMask, struct in_addr gatewayAddress);
void Networking_IpConfig_EnableAutomaticDns(Networking_IpConfig* ipConfig);
/* At most 3 servers (ERANGE). */
int Networking_IpConfig_EnableCustomDns(Networking_IpConfig* ipConfig,
                                        const struct in_addr* dnsServerAddresses,
                                        size_t serverCount);
int Networking_IpConfig_Apply(const char* networkInterfaceName,
                              const Networking_IpConfig* ipConfig);
/* An interface in dynamic mode only (EINVAL otherwise): gives its lease back, leaving it without an
 * address until RenewIp asks for one again. */
int Networking_IpConfig_ReleaseIp(const char* networkInterfaceName);
int Networking_IpConfig_RenewIp(const char* networkInterfaceName);
int Networking_GetHardwareAddress(const char* networkInterfaceName,
                                  Networking_Interface_HardwareAddress* outAddress);
int Networking_SetHardwareAddress(const char* networkInterfaceName, const uint8_t* hardwareAddress,
                                  size_t hardwareAddressLength);

/* SntpService: an SNTP server on a private network's interface. */
void Networking_SntpServerConfig_Init(Networking_SntpServerConfig* sntpServerConfig);
void Networking_SntpServerConfig_Destroy(Networking_SntpServerConfig* sntpServerConfig);
int Networking_SntpServer_Start(const char* networkInterfaceName,
                                const Networking_SntpServerConfig* sntpServerConfig);

/* DhcpService: a DHCP server on a private network's interface, which has a static address: 1 to
 * 255 addresses from the start, all hosts of the interface's subnet other than its own, the mask
 * the interface's, the gateway a host of the subnet or 0.0.0.0 (no router), up to 3 NTP servers
 * (EINVAL otherwise). Starting it again replaces its configuration. */
void Networking_DhcpServerConfig_Init(Networking_DhcpServerConfig* dhcpServerConfig);
void Networking_DhcpServerConfig_Destroy(Networking_DhcpServerConfig* dhcpServerConfig);
/* Leases `ipAddressCount` addresses from `startIpAddress` for `leaseTimeInHours`. */
int Networking_DhcpServerConfig_SetLease(Networking_DhcpServerConfig* dhcpServerConfig,
                                         struct in_addr startIpAddress, uint8_t ipAddressCount,
                                         struct in_addr subnetMask, struct in_addr gatewayAddress,
                                         uint32_t leaseTimeInHours);
/* At most 3 servers (ERANGE). */
int Networking_DhcpServerConfig_SetNtpServerAddresses(Networking_DhcpServerConfig* dhcpServerConfig,
                                                      const struct in_addr* ntpServerAddresses,
                                                      size_t serverCount);
int Networking_DhcpServer_Start(const char* networkInterfaceName,
                                const Networking_DhcpServerConfig* dhcpServerConfig);

/* TimeSyncConfig: the device's time sync and its NTP servers. */
typedef enum {
  Networking_NtpOption_FallbackServerDisabled = 0,
  Networking_NtpOption_FallbackServerEnabled = 1
} Networking_NtpOption;
int Networking_TimeSync_SetEnabled(bool enabled);
int Networking_TimeSync_EnableAutomaticNtp(Networking_NtpOption option);
int Networking_TimeSync_EnableCustomNtp(const char* primaryNtpServer,
                                        const char* secondaryNtpServer,
                                        Networking_NtpOption option);
int Networking_TimeSync_EnableDefaultNtp(void);
/* The server (its address, NUL-terminated; *inOutNtpServerLength set to the size it needs, and
 * ENOBUFS when the buffer is smaller), and the clock before and after the last sync (UTC);
 * ENOENT before one, or while time sync is disabled. */
int Networking_TimeSync_GetLastNtpSyncInfo(char* outNtpServer, size_t* inOutNtpServerLength,
                                           struct tm* outTimeBeforeSync, struct tm* outNtpTime);

#ifdef __cplusplus
}
#endif
