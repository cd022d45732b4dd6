/* Aspis applibs: SPI masters (Azure Sphere's applibs/spi.h). An interface and chip select are
 * opened through aspisd, which checks the app manifest's SpiMaster list. The configuration and
 * transfer structures are versioned: define SPI_STRUCTS_VERSION (applibs_versions.h does) before
 * including this, and initialise them with SPIMaster_InitConfig and SPIMaster_InitTransfers. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#if !defined(SPI_STRUCTS_VERSION) || SPI_STRUCTS_VERSION != 1
#error To use applibs/spi.h you must first #include applibs_versions.h (SPI_STRUCTS_VERSION 1)
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef int SPI_InterfaceId;
typedef int SPI_ChipSelectId;

typedef enum {
  SPI_ChipSelectPolarity_Invalid = 0,
  SPI_ChipSelectPolarity_ActiveLow = 1,
  SPI_ChipSelectPolarity_ActiveHigh = 2
} SPI_ChipSelectPolarity;

typedef enum {
  SPI_Mode_Invalid = 0,
  SPI_Mode_0 = 1,
  SPI_Mode_1 = 2,
  SPI_Mode_2 = 3,
  SPI_Mode_3 = 4
} SPI_Mode;

typedef enum {
  SPI_BitOrder_Invalid = 0,
  SPI_BitOrder_LsbFirst = 1,
  SPI_BitOrder_MsbFirst = 2
} SPI_BitOrder;

typedef enum {
  SPI_TransferFlags_None = 0,
  SPI_TransferFlags_Read = 1,
  SPI_TransferFlags_Write = 2
} SPI_TransferFlags;

typedef struct SPIMaster_Config {
  uint32_t magicAndVersion;
  SPI_ChipSelectPolarity csPolarity;
} SPIMaster_Config;

typedef struct SPIMaster_Transfer {
  uint32_t magicAndVersion;
  SPI_TransferFlags flags;
  const uint8_t* writeData;
  uint8_t* readData;
  size_t length;
} SPIMaster_Transfer;

int Aspis_SPIMaster_InitConfig(SPIMaster_Config* config, uint32_t structVersion);
int Aspis_SPIMaster_InitTransfers(SPIMaster_Transfer* transfers, size_t transferCount,
                                  uint32_t structVersion);

/* Sets *config to its defaults (chip select active low). 0, or -1 with errno: EFAULT. */
static inline int SPIMaster_InitConfig(SPIMaster_Config* config) {
  return Aspis_SPIMaster_InitConfig(config, SPI_STRUCTS_VERSION);
}
/* Sets each transfer to its defaults (no flags, no data). */
static inline int SPIMaster_InitTransfers(SPIMaster_Transfer* transfers, size_t transferCount) {
  return Aspis_SPIMaster_InitTransfers(transfers, transferCount, SPI_STRUCTS_VERSION);
}

/* A descriptor, or -1 with errno: EACCES (not in the manifest), EBUSY (open already), ENODEV (no
 * such interface), EINVAL for a chip select other than A or B or a config not initialised. */
int SPIMaster_Open(SPI_InterfaceId interfaceId, SPI_ChipSelectId chipSelectId,
                   const SPIMaster_Config* config);
int SPIMaster_SetBusSpeed(int fd, uint32_t speedInHz);
int SPIMaster_SetMode(int fd, SPI_Mode mode);
int SPIMaster_SetBitOrder(int fd, SPI_BitOrder order);

/* The transfers in order with the chip select held active: the bytes moved, or -1 with errno:
 * EINVAL for a transfer not initialised, without flags or data, or a sequence over 4096 bytes. */
ssize_t SPIMaster_TransferSequential(int fd, const SPIMaster_Transfer* transfers,
                                     size_t transferCount);
ssize_t SPIMaster_WriteThenRead(int fd, const uint8_t* writeData, size_t lenWriteData,
                                uint8_t* readData, size_t lenReadData);

#ifdef __cplusplus
}
#endif
