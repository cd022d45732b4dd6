/* Aspis applibs: the device's Wi-Fi networks (Azure Sphere's applibs/wificonfig.h), kept by the
 * board's wpa_supplicant, which aspisd drives for the app. Every function needs the manifest's
 * "WifiConfig": true, and those for EAP-TLS networks (client identity, certificate identifiers,
 * the EAP-TLS security type) "EnterpriseWifiConfig": true too (EACCES without them). On a board
 * without Wi-Fi each fails with ENOTSUP. At most 37 networks are stored (ENOMEM); a duplicate
 * (WifiConfig_AddDuplicateNetwork) is added disabled, with the original's SSID, security, key and
 * EAP-TLS settings. WifiConfig_TriggerScanAndGetScannedNetworkCount does not wait for the scan it
 * asks for: it counts what the last scan saw (at most 48, the strongest). Functions return -1 with
 * errno on failure; network IDs are >= 0.
 *
 * Define WIFICONFIG_STRUCTS_VERSION (1, the only version) before including this header, as
 * applibs_versions.h does; it is 1 when none is defined. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <applibs/certstore.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef WIFICONFIG_STRUCTS_VERSION
#define WIFICONFIG_STRUCTS_VERSION 1
#endif
#if WIFICONFIG_STRUCTS_VERSION != 1
#error WIFICONFIG_STRUCTS_VERSION must be 1
#endif

#define WIFICONFIG_SSID_MAX_LENGTH 32
#define WIFICONFIG_WPA2_KEY_MAX_BUFFER_SIZE 64
#define WIFICONFIG_BSSID_BUFFER_SIZE 6
#define WIFICONFIG_CONFIG_NAME_MAX_LENGTH 16
#define WIFICONFIG_EAP_IDENTITY_MAX_LENGTH 254

typedef enum {
  WifiConfig_Security_Unknown = 0,
  WifiConfig_Security_Open = 1,
  WifiConfig_Security_Wpa2_Psk = 2,
  WifiConfig_Security_Wpa2_EAP_TLS = 3,
} WifiConfig_Security;
typedef uint8_t WifiConfig_Security_Type;

/* Versioned structures (version 1); magicAndVersion is the library's, never set by apps. */
struct WifiConfig_StoredNetwork_v1 {
  uint32_t magicAndVersion;
  uint8_t ssid[WIFICONFIG_SSID_MAX_LENGTH]; /* ssidLength bytes of it, not NUL-terminated */
  uint8_t ssidLength;
  bool isEnabled;
  bool isConnected;
  WifiConfig_Security_Type security;
};
struct WifiConfig_ConnectedNetwork_v1 {
  uint32_t magicAndVersion;
  uint8_t ssid[WIFICONFIG_SSID_MAX_LENGTH];
  uint8_t bssid[WIFICONFIG_BSSID_BUFFER_SIZE];
  uint8_t ssidLength;
  WifiConfig_Security_Type security;
  uint32_t frequencyMHz;
  int8_t signalRssi;
};
struct WifiConfig_ScannedNetwork_v1 {
  uint32_t magicAndVersion;
  uint8_t ssid[WIFICONFIG_SSID_MAX_LENGTH];
  uint8_t bssid[WIFICONFIG_BSSID_BUFFER_SIZE];
  uint8_t ssidLength;
  WifiConfig_Security_Type security;
  uint32_t frequencyMHz;
  int8_t signalRssi;
};
typedef struct WifiConfig_StoredNetwork_v1 WifiConfig_StoredNetwork;
typedef struct WifiConfig_ConnectedNetwork_v1 WifiConfig_ConnectedNetwork;
typedef struct WifiConfig_ScannedNetwork_v1 WifiConfig_ScannedNetwork;

typedef struct WifiConfig_ClientIdentity {
  char identity[WIFICONFIG_EAP_IDENTITY_MAX_LENGTH + 1];
} WifiConfig_ClientIdentity;

/* Why a network last failed to connect since aspisd started (WifiConfig_GetNetworkDiagnostics:
 * ENODEV when it has not failed): error 1 connection failed, 2 network not found, 3 no key, 4
 * wrong key, 5 authentication failed (EAP-TLS; when the server's certificate failed, certError is
 * OpenSSL's X509_V_ERR_* code, 0 unspecified, with the certificate's depth in the server's chain
 * and its subject). aspisd does not report 6 to 10 (security type mismatch, frequency not
 * allowed, not ESS/PBSS/MBSS, not supported, not WPA2 or open). */
typedef struct WifiConfig_NetworkDiagnostics64 {
  uint8_t isEnabled;
  uint8_t isConnected;
  int32_t error;
  time_t timestamp;
  int32_t certError;
  int32_t certDepth;
  CertStore_SubjectName certSubject;
} WifiConfig_NetworkDiagnostics;

/* Networks: added unconfigured, configured with the setters; changes last until reboot unless
 * WifiConfig_PersistConfig saves them. */
int WifiConfig_AddNetwork(void);
int WifiConfig_AddDuplicateNetwork(int networkId, const char* configName);
int WifiConfig_ForgetNetworkById(int networkId);
int WifiConfig_ForgetAllNetworks(void);
int WifiConfig_PersistConfig(void);
int WifiConfig_ReloadConfig(void);
int WifiConfig_SetSSID(int networkId, const uint8_t* ssid, size_t ssidLength);
int WifiConfig_SetSecurityType(int networkId, WifiConfig_Security_Type securityType);
int WifiConfig_SetNetworkEnabled(int networkId, bool enabled);
int WifiConfig_SetPSK(int networkId, const char* psk, size_t pskLength);
int WifiConfig_SetTargetedScanEnabled(int networkId, bool enabled);
int WifiConfig_SetConfigName(int networkId, const char* configName);
int WifiConfig_GetNetworkIdByConfigName(const char* configName);
int WifiConfig_GetNetworkDiagnostics(int networkId,
                                     WifiConfig_NetworkDiagnostics* networkDiagnostics);

/* EAP-TLS networks (EnterpriseWifiConfig). */
int WifiConfig_SetClientIdentity(int networkId, const char* identity);
int WifiConfig_GetClientIdentity(int networkId, WifiConfig_ClientIdentity* outIdentity);
int WifiConfig_SetClientCertStoreIdentifier(int networkId, const char* certStoreIdentifier);
int WifiConfig_GetClientCertStoreIdentifier(int networkId, CertStore_Identifier* outIdentifier);
int WifiConfig_SetRootCACertStoreIdentifier(int networkId, const char* certStoreIdentifier);
int WifiConfig_GetRootCACertStoreIdentifier(int networkId, CertStore_Identifier* outIdentifier);

/* What is stored, connected and in range. */
ssize_t WifiConfig_GetStoredNetworkCount(void);
ssize_t WifiConfig_GetStoredNetworks(WifiConfig_StoredNetwork* storedNetworkArray,
                                     size_t storedNetworkArrayCount);
/* ENODATA when not connected. */
int WifiConfig_GetCurrentNetwork(WifiConfig_ConnectedNetwork* connectedNetwork);
/* ENOTCONN when not connected. */
int WifiConfig_GetConnectedNetworkId(void);
/* Asks for a scan; how many networks the last scan found. */
ssize_t WifiConfig_TriggerScanAndGetScannedNetworkCount(void);
ssize_t WifiConfig_GetScannedNetworks(WifiConfig_ScannedNetwork* scannedNetworkArray,
                                      size_t scannedNetworkArrayCount);

/* Deprecated in Azure Sphere (use WifiConfig_AddNetwork and WifiConfig_ForgetNetworkById). */
int WifiConfig_StoreOpenNetwork(const uint8_t* ssid, size_t ssidLength);
int WifiConfig_StoreWpa2Network(const uint8_t* ssid, size_t ssidLength, const char* psk,
                                size_t pskLength);
int WifiConfig_ForgetNetwork(const WifiConfig_StoredNetwork* storedNetwork);

#ifdef __cplusplus
}
#endif
