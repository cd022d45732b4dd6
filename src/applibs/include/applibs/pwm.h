/* Aspis applibs: pulse-width modulators (Azure Sphere's applibs/pwm.h). A controller is opened
 * through aspisd, which checks the app manifest's Pwm list. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t PWM_ControllerId;
typedef uint32_t PWM_ChannelId;

typedef enum { PWM_Polarity_Normal = 0, PWM_Polarity_Inversed = 1 } PWM_Polarity;

typedef struct PwmState {
  unsigned int period_nsec;
  unsigned int dutyCycle_nsec;
  PWM_Polarity polarity;
  bool enabled;
} PwmState;

/* A descriptor, or -1 with errno: EACCES (not in the manifest), EBUSY (open already), ENODEV (no
 * such controller). */
int PWM_Open(PWM_ControllerId pwm);
/* 0, or -1 with errno: EINVAL for no such channel, a zero period, a duty cycle longer than the
 * period, or an unknown polarity; EFAULT for a NULL newState. */
int PWM_Apply(int pwmFd, PWM_ChannelId pwmChannel, const PwmState* newState);

#ifdef __cplusplus
}
#endif
