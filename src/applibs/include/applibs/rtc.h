/* Aspis applibs: the real-time clock (Azure Sphere's applibs/rtc.h). Needs SystemTime in the
 * app manifest. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the system time to the board's real-time clock, so it survives a power loss (on the
 * virtual board, whose clock is the host's, there is nothing to write). 0, or -1 with errno:
 * EACCES without SystemTime, EIO when the clock refuses. */
int clock_systohc(void);

#ifdef __cplusplus
}
#endif
