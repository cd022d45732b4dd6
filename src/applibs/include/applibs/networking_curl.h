/* Aspis applibs: the device's proxy for libcurl (Azure Sphere's applibs/networking_curl.h). */
#pragma once

#include <curl/curl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the device's proxy on `curlHandle`: 0, leaving the handle as it is, as Aspis devices have
 * no proxy setting (their connections go out through aspisd, to the hosts the manifest allows);
 * -1 with EFAULT for NULL. */
int Networking_Curl_SetDefaultProxy(CURL* curlHandle);

#ifdef __cplusplus
}
#endif
