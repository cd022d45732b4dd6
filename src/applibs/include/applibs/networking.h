/* Aspis applibs: the device's network (Azure Sphere's applibs/networking.h): whether it is ready,
 * and its interfaces as the device sees them (an app's own network namespace holds only loopback;
 * its connections go out through aspisd). Needs no capability. NETWORKING_STRUCTS_VERSION is 1
 * unless the app set it (applibs_versions.h). */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

typedef uint8_t Networking_IpConfiguration_Type;
enum { Networking_IpConfiguration_Dhcp = 0, Networking_IpConfiguration_Static = 1 };

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
  uint32_t interfaceNameLength;
  Networking_IpConfiguration_Type ipConfigurationType;
  Networking_InterfaceMedium_Type interfaceMediumType;
} Networking_NetworkInterface;

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

#ifdef __cplusplus
}
#endif
