/* Aspis applibs: GPIOs (Azure Sphere's applibs/gpio.h). A GPIO is opened through aspisd, which
 * checks the app manifest's Gpio list; the descriptor it returns is the app's until closed. */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int GPIO_Id;

typedef enum {
  GPIO_OutputMode_PushPull = 0,
  GPIO_OutputMode_OpenDrain = 1,
  GPIO_OutputMode_OpenSource = 2
} GPIO_OutputMode;
typedef uint8_t GPIO_OutputMode_Type;

typedef enum { GPIO_Value_Low = 0, GPIO_Value_High = 1 } GPIO_Value;
typedef uint8_t GPIO_Value_Type;

/* Each returns a descriptor, or -1 with errno: EACCES when the manifest does not list the GPIO,
 * EBUSY when it is open already, ENODEV when the board has no such GPIO, EINVAL for a mode or
 * value out of range. */
int GPIO_OpenAsInput(GPIO_Id gpioId);
int GPIO_OpenAsOutput(GPIO_Id gpioId, GPIO_OutputMode_Type outputMode,
                      GPIO_Value_Type initialValue);

/* 0, or -1 with errno: EBADF for a descriptor that is not an open GPIO, EFAULT for a NULL
 * outValue, EINVAL for a value out of range. Setting an input has no effect. */
int GPIO_GetValue(int gpioFd, GPIO_Value_Type* outValue);
int GPIO_SetValue(int gpioFd, GPIO_Value_Type value);

#ifdef __cplusplus
}
#endif
