/* Aspis applibs: mutual TLS with libcurl (Azure Sphere's tlsutils/deviceauth_curl.h). Given as
 * CURLOPT_SSL_CTX_FUNCTION, it makes curl present the app certificate (with its chain) and key
 * that DeviceAuthentication grants:
 *
 *   curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, DeviceAuth_CurlSslFunc);
 *
 * An app using it links libcurl and OpenSSL's libssl. */
#pragma once

#include <curl/curl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CURLE_OK, or CURLE_SSL_CERTPROBLEM when the device holds no app certificate for this app (not
 * attested yet, or the manifest's DeviceAuthentication does not name the device's tenant). */
CURLcode DeviceAuth_CurlSslFunc(CURL* curl, void* sslctx, void* userCtx);

#ifdef __cplusplus
}
#endif
