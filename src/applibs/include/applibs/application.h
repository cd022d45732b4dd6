/* Aspis applibs: the app itself (Azure Sphere's applibs/application.h). */
#pragma once

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A connected SOCK_SEQPACKET socket to the real-time capable app `componentId`, for send() and
 * recv() of messages of at most 1024 bytes; both apps' manifests must list each other's component
 * ID in AllowedApplicationConnections. -1 with errno: EINVAL for an invalid component ID, EACCES
 * when this app's manifest does not list it, ECONNREFUSED when no real-time app of that ID is
 * installed or its manifest does not list this app (Aspis's value; Azure Sphere leaves it open). */
int Application_Connect(const char* componentId);

/* Whether the device attested and the app certificate is ready for DeviceAuthentication. 0 with
 * *isReady set, or -1 with errno: EACCES when the manifest's DeviceAuthentication does not name
 * the device's tenant, EFAULT for NULL. */
int Application_IsDeviceAuthReady(bool* isReady);

#ifdef __cplusplus
}
#endif
