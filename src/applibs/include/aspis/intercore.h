/* Aspis: the real-time side of Application_Connect, for an app whose manifest says
 * "ApplicationType": "RealTimeCapable". On boards without a real-time core such an app runs as a
 * Linux process pinned to one CPU under SCHED_FIFO, and reaches its high-level peers through one
 * channel, as the real-time cores' mailbox gives Azure Sphere's real-time apps.
 *
 * Each message on the channel starts with a header of INTERCORE_HEADER_SIZE bytes: the
 * high-level app's component ID (16 bytes, the GUID's binary layout: first three fields
 * little-endian), then 4 reserved bytes. A received message's header names the app that sent it
 * (aspisd writes it); a sent message's names the app it is for, which must have connected to this
 * one and be listed in its AllowedApplicationConnections, or the message is dropped. At most
 * INTERCORE_MAX_PAYLOAD bytes follow the header. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

#define INTERCORE_HEADER_SIZE 20
#define INTERCORE_MAX_PAYLOAD 1024

/* The app's inter-core channel: a SOCK_SEQPACKET socket for send() and recv(), or -1 with errno
 * (EACCES for an app that is not real-time capable). Each call returns a new descriptor for the
 * same channel. */
int Intercore_OpenChannel(void);

#ifdef __cplusplus
}
#endif
