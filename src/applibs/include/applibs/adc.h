/* Aspis applibs: analog-to-digital converters (Azure Sphere's applibs/adc.h). A controller is
 * opened through aspisd, which checks the app manifest's Adc list. */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t ADC_ControllerId;
typedef uint32_t ADC_ChannelId;

/* A descriptor, or -1 with errno: EACCES (not in the manifest), EBUSY (open already), ENODEV (no
 * such controller). */
int ADC_Open(ADC_ControllerId id);
/* The bits of each sample (12 on the MT3620), or -1 with errno: EINVAL for no such channel. */
int ADC_GetSampleBitCount(int fd, ADC_ChannelId channel);
/* The reference the samples are relative to, in volts (the MT3620 takes 1.8 to 2.5). */
int ADC_SetReferenceVoltage(int fd, ADC_ChannelId channel, float referenceVoltage);
int ADC_Poll(int fd, ADC_ChannelId channel, uint32_t* outSampleValue);

#ifdef __cplusplus
}
#endif
