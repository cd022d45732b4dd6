/* Aspis applibs: I2C masters (Azure Sphere's applibs/i2c.h). An interface is opened through
 * aspisd, which checks the app manifest's I2cMaster list. Plain read() and write() on the
 * descriptor are not supported: use I2CMaster_Read and I2CMaster_Write. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t I2C_InterfaceId;
typedef uint32_t I2C_DeviceAddress;

#define I2C_BUS_SPEED_STANDARD 100000
#define I2C_BUS_SPEED_FAST 400000
#define I2C_BUS_SPEED_FAST_PLUS 1000000

/* A descriptor, or -1 with errno: EACCES (not in the manifest), EBUSY (open already), ENODEV (no
 * such interface). */
int I2CMaster_Open(I2C_InterfaceId id);
/* 0, or -1 with errno: EINVAL for a speed other than the three above. */
int I2CMaster_SetBusSpeed(int fd, uint32_t speedInHz);
int I2CMaster_SetTimeout(int fd, uint32_t timeoutInMs);
int I2CMaster_SetDefaultTargetAddress(int fd, I2C_DeviceAddress address);

/* Each returns the bytes moved (written plus read), or -1 with errno: ENXIO when no target
 * acknowledged, EINVAL for an address above 0x7f or a transfer over 4096 bytes, EFAULT for NULL
 * data. */
ssize_t I2CMaster_Write(int fd, I2C_DeviceAddress address, const uint8_t* data, size_t length);
ssize_t I2CMaster_WriteThenRead(int fd, I2C_DeviceAddress address, const uint8_t* writeData,
                                size_t lenWriteData, uint8_t* readData, size_t lenReadData);
ssize_t I2CMaster_Read(int fd, I2C_DeviceAddress address, uint8_t* buffer, size_t maxLength);

#ifdef __cplusplus
}
#endif
