/* Aspis applibs: the device's power (Azure Sphere's applibs/powermanagement.h). Needs the app
 * manifest's PowerControls to list ForceReboot, ForcePowerDown or SetPowerProfile. */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t PowerManagement_System_PowerProfile;
enum {
  PowerManagement_PowerSaver = 0,
  PowerManagement_Balanced = 1,
  PowerManagement_HighPerformance = 2
};

/* Reboots the device: every app is stopped (SIGTERM, then SIGKILL). 0, or -1 with errno: EACCES
 * without ForceReboot. */
int PowerManagement_ForceSystemReboot(void);
/* Powers the device down for up to maximum_residency_in_seconds, then boots it again (on the
 * virtual board: aspisd stops its apps, waits, and the board boots). -1 with errno: EACCES
 * without ForcePowerDown. */
int PowerManagement_ForceSystemPowerDown(unsigned int maximum_residency_in_seconds);
/* Accepted (no board Aspis runs on changes its power profile yet). -1 with errno: EACCES without
 * SetPowerProfile, EINVAL for another profile. */
int PowerManagement_SetSystemPowerProfile(PowerManagement_System_PowerProfile desired_profile);

#ifdef __cplusplus
}
#endif
