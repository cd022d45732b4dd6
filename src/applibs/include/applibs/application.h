/* Aspis applibs: the app itself (Azure Sphere's applibs/application.h). */
#pragma once

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the device attested and the app certificate is ready for DeviceAuthentication. 0 with
 * *isReady set, or -1 with errno: EACCES when the manifest's DeviceAuthentication does not name
 * the device's tenant, EFAULT for NULL. */
int Application_IsDeviceAuthReady(bool* isReady);

#ifdef __cplusplus
}
#endif
