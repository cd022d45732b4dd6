/* Aspis applibs: the structure versions an app is written against. Azure Sphere's samples carry
 * a file of this name that defines each *_STRUCTS_VERSION before any applibs header; this is the
 * same file for apps that have none. An app's own definitions win (each is set only if unset). */
#pragma once

#ifndef UART_STRUCTS_VERSION
#define UART_STRUCTS_VERSION 1
#endif
#ifndef SPI_STRUCTS_VERSION
#define SPI_STRUCTS_VERSION 1
#endif
#ifndef NETWORKING_STRUCTS_VERSION
#define NETWORKING_STRUCTS_VERSION 1
#endif
#ifndef WIFICONFIG_STRUCTS_VERSION
#define WIFICONFIG_STRUCTS_VERSION 1
#endif
#ifndef SYSEVENT_STRUCTS_VERSION
#define SYSEVENT_STRUCTS_VERSION 1
#endif
#ifndef CERTSTORE_STRUCTS_VERSION
#define CERTSTORE_STRUCTS_VERSION 1
#endif
