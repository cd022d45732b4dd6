#include <applibs/application.h>
#include <aspis/intercore.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "applibs/broker_client.hpp"

extern "C" {

int Application_Connect(const char* componentId) {
  if (componentId == nullptr || std::strlen(componentId) != 36 ||
      std::strspn(componentId, "0123456789abcdefABCDEF-") != 36) {
    errno = EINVAL;
    return -1;
  }
  return aspis::applibs::BrokerOpen(
      std::string(R"({"call":"application.connect","component_id":")") + componentId + "\"}");
}

int Intercore_OpenChannel(void) {
  return aspis::applibs::BrokerOpen(R"({"call":"intercore.open"})");
}

}  // extern "C"
