#include <openssl/ssl.h>
#include <tlsutils/deviceauth.h>
#include <tlsutils/deviceauth_curl.h>

extern "C" CURLcode DeviceAuth_CurlSslFunc(CURL* /*curl*/, void* sslctx, void* /*userCtx*/) {
  const char* certificate = DeviceAuth_GetCertificatePath();
  const char* key = DeviceAuth_GetPrivateKeyPath();
  auto* context = static_cast<SSL_CTX*>(sslctx);
  if (certificate == nullptr || key == nullptr ||
      SSL_CTX_use_certificate_chain_file(context, certificate) != 1 ||
      SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(context) != 1) {
    return CURLE_SSL_CERTPROBLEM;
  }
  return CURLE_OK;
}
