#include <applibs/networking_curl.h>

#include <cerrno>

extern "C" int Networking_Curl_SetDefaultProxy(CURL* curlHandle) {
  if (curlHandle == nullptr) {
    errno = EFAULT;
    return -1;
  }
  return 0;
}
