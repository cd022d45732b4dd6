/* Aspis applibs: UARTs (Azure Sphere's applibs/uart.h). A UART is opened through aspisd, which
 * checks the app manifest's Uart list; the descriptor is a non-blocking stream socket aspisd relays
 * to the UART, read and written with read() and write(). The configuration is versioned: define
 * UART_STRUCTS_VERSION (applibs_versions.h does) before including this, and initialise it with
 * UART_InitConfig. */
#pragma once

#include <stdint.h>

#if !defined(UART_STRUCTS_VERSION) || UART_STRUCTS_VERSION != 1
#error To use applibs/uart.h you must first #include applibs_versions.h (UART_STRUCTS_VERSION 1)
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef int UART_Id;
typedef uint32_t UART_BaudRate_Type;

typedef uint8_t UART_BlockingMode_Type;
enum { UART_BlockingMode_NonBlocking = 0 };

typedef uint8_t UART_DataBits_Type;
enum {
  UART_DataBits_Five = 5,
  UART_DataBits_Six = 6,
  UART_DataBits_Seven = 7,
  UART_DataBits_Eight = 8
};

typedef uint8_t UART_Parity_Type;
enum { UART_Parity_None = 0, UART_Parity_Even = 1, UART_Parity_Odd = 2 };

typedef uint8_t UART_StopBits_Type;
enum { UART_StopBits_One = 1, UART_StopBits_Two = 2 };

typedef uint8_t UART_FlowControl_Type;
enum { UART_FlowControl_None = 0, UART_FlowControl_RTSCTS = 1, UART_FlowControl_XONXOFF = 2 };

typedef struct UART_Config {
  uint32_t magicAndVersion;
  UART_BaudRate_Type baudRate;
  UART_BlockingMode_Type blockingMode;
  UART_DataBits_Type dataBits;
  UART_Parity_Type parity;
  UART_StopBits_Type stopBits;
  UART_FlowControl_Type flowControl;
} UART_Config;

void Aspis_UART_InitConfig(UART_Config* config, uint32_t structVersion);

/* Sets *config to its defaults: 115200 baud, 8 data bits, no parity, one stop bit, no flow
 * control, non-blocking. */
static inline void UART_InitConfig(UART_Config* config) {
  Aspis_UART_InitConfig(config, UART_STRUCTS_VERSION);
}

/* A descriptor, or -1 with errno: EACCES (not in the manifest), EBUSY (open already), ENODEV (no
 * such UART), EINVAL for a config not initialised or out of range (an unsupported baud rate). */
int UART_Open(UART_Id uartId, const UART_Config* config);

#ifdef __cplusplus
}
#endif
