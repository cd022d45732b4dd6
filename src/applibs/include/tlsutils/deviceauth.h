/* Aspis applibs: the app certificate for mutual TLS (Azure Sphere's tlsutils/deviceauth.h). An
 * app whose manifest's DeviceAuthentication names the device's tenant gets, once the device
 * attested, a certificate the tenant CA issued for it (with its chain) and its key. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* The path of the certificate chain (PEM), or NULL with errno: EAGAIN until the device attested,
 * EACCES without the capability. Each call brings the file up to date (the device renews the
 * certificate daily); the path, in the app's private /tmp, stays the same. */
const char* DeviceAuth_GetCertificatePath(void);
/* The path of its private key (PEM). Aspis's own addition: Azure Sphere keeps the key out of the
 * app's reach, Aspis's apps hold it inside their sandbox. */
const char* DeviceAuth_GetPrivateKeyPath(void);

#ifdef __cplusplus
}
#endif
