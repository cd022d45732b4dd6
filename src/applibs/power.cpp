#include <applibs/powermanagement.h>
#include <applibs/rtc.h>

#include <array>
#include <cerrno>
#include <string>

#include "broker_client.hpp"

namespace {

int Call(const std::string& request) { return aspis::applibs::BrokerCall(request, {}); }

}  // namespace

extern "C" {

int PowerManagement_ForceSystemReboot(void) { return Call(R"({"call":"power.reboot"})"); }

int PowerManagement_ForceSystemPowerDown(unsigned int maximum_residency_in_seconds) {
  return Call(R"({"call":"power.down","seconds":)" + std::to_string(maximum_residency_in_seconds) +
              "}");
}

int PowerManagement_SetSystemPowerProfile(PowerManagement_System_PowerProfile desired_profile) {
  static constexpr std::array<const char*, 3> kProfiles = {"PowerSaver", "Balanced",
                                                           "HighPerformance"};
  if (desired_profile >= kProfiles.size()) {
    errno = EINVAL;
    return -1;
  }
  return Call(std::string(R"({"call":"power.profile","profile":")") + kProfiles[desired_profile] +
              "\"}");
}

int clock_systohc(void) { return Call(R"({"call":"rtc.save"})"); }

}  // extern "C"
