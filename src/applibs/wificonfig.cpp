#include <applibs/certstore.h>
#include <applibs/wificonfig.h>

#include <cerrno>
#include <string>

#include "applibs/broker_client.hpp"

// Wi-Fi and the certificate store: what the manifest grants, aspisd checks; no board Aspis runs
// on has Wi-Fi yet, so a granted call fails with ENOTSUP (as aspisd answers, or here should an
// aspisd answer otherwise).
namespace {

using aspis::applibs::BrokerUnsupported;

int Wifi() { return BrokerUnsupported("wificonfig"); }
int Enterprise() { return BrokerUnsupported("wificonfig.enterprise"); }
int Store() { return BrokerUnsupported("certstore"); }

}  // namespace

extern "C" {

int WifiConfig_AddNetwork(void) { return Wifi(); }
int WifiConfig_AddDuplicateNetwork(int, const char*) { return Wifi(); }
int WifiConfig_ForgetNetworkById(int) { return Wifi(); }
int WifiConfig_ForgetAllNetworks(void) { return Wifi(); }
int WifiConfig_PersistConfig(void) { return Wifi(); }
int WifiConfig_ReloadConfig(void) { return Wifi(); }
int WifiConfig_SetSSID(int, const uint8_t*, size_t) { return Wifi(); }
int WifiConfig_SetSecurityType(int, WifiConfig_Security_Type security) {
  return security == WifiConfig_Security_Wpa2_EAP_TLS ? Enterprise() : Wifi();
}
int WifiConfig_SetNetworkEnabled(int, bool) { return Wifi(); }
int WifiConfig_SetPSK(int, const char*, size_t) { return Wifi(); }
int WifiConfig_SetTargetedScanEnabled(int, bool) { return Wifi(); }
int WifiConfig_SetConfigName(int, const char*) { return Wifi(); }
int WifiConfig_GetNetworkIdByConfigName(const char*) { return Wifi(); }
int WifiConfig_GetNetworkDiagnostics(int, WifiConfig_NetworkDiagnostics*) { return Wifi(); }
int WifiConfig_SetClientIdentity(int, const char*) { return Enterprise(); }
int WifiConfig_GetClientIdentity(int, WifiConfig_ClientIdentity*) { return Enterprise(); }
int WifiConfig_SetClientCertStoreIdentifier(int, const char*) { return Enterprise(); }
int WifiConfig_GetClientCertStoreIdentifier(int, CertStore_Identifier*) { return Enterprise(); }
int WifiConfig_SetRootCACertStoreIdentifier(int, const char*) { return Enterprise(); }
int WifiConfig_GetRootCACertStoreIdentifier(int, CertStore_Identifier*) { return Enterprise(); }
ssize_t WifiConfig_GetStoredNetworkCount(void) { return Wifi(); }
ssize_t WifiConfig_GetStoredNetworks(WifiConfig_StoredNetwork*, size_t) { return Wifi(); }
int WifiConfig_GetCurrentNetwork(WifiConfig_ConnectedNetwork*) { return Wifi(); }
int WifiConfig_GetConnectedNetworkId(void) { return Wifi(); }
ssize_t WifiConfig_TriggerScanAndGetScannedNetworkCount(void) { return Wifi(); }
ssize_t WifiConfig_GetScannedNetworks(WifiConfig_ScannedNetwork*, size_t) { return Wifi(); }
int WifiConfig_StoreOpenNetwork(const uint8_t*, size_t) { return Wifi(); }
int WifiConfig_StoreWpa2Network(const uint8_t*, size_t, const char*, size_t) { return Wifi(); }
int WifiConfig_ForgetNetwork(const WifiConfig_StoredNetwork*) { return Wifi(); }

int CertStore_InstallClientCertificate(const char*, const char*, size_t, const char*, size_t,
                                       const char*) {
  return Store();
}
int CertStore_InstallRootCACertificate(const char*, const char*, size_t) { return Store(); }
int CertStore_DeleteCertificate(const char*) { return Store(); }
int CertStore_MoveCertificate(const char*, const char*) { return Store(); }
ssize_t CertStore_GetCertificateCount(void) { return Store(); }
int CertStore_GetCertificateIdentifierAt(size_t, CertStore_Identifier*) { return Store(); }
ssize_t CertStore_GetAvailableSpace(void) { return Store(); }
int CertStore_GetCertificateSubjectName(const char*, CertStore_SubjectName*) { return Store(); }
int CertStore_GetCertificateIssuerName(const char*, CertStore_IssuerName*) { return Store(); }
int CertStore_GetCertificateNotBefore(const char*, struct tm*) { return Store(); }
int CertStore_GetCertificateNotAfter(const char*, struct tm*) { return Store(); }

}  // extern "C"
