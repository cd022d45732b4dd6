/* Aspis applibs: the event loop apps are built around (Azure Sphere's applibs/eventloop.h). It
 * waits for descriptors to become ready and calls back; it is itself a descriptor
 * (EventLoop_GetWaitDescriptor) that another loop can wait on. Not thread-safe: one thread runs a
 * loop, and only EventLoop_Stop may be called from another. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct EventLoop EventLoop;
typedef struct EventRegistration EventRegistration;

typedef uint32_t EventLoop_IoEvents;
enum {
  EventLoop_None = 0x00,
  EventLoop_Input = 0x01,
  EventLoop_Output = 0x04,
  EventLoop_Error = 0x08
};

typedef enum {
  EventLoop_Run_Failed = -1,
  EventLoop_Run_FinishedEmpty = 0,
  EventLoop_Run_Finished = 1
} EventLoop_Run_Result;

typedef void EventLoopIoCallback(EventLoop* el, int fd, EventLoop_IoEvents events, void* context);

/* NULL with errno on failure. */
EventLoop* EventLoop_Create(void);
/* Closes the loop and every registration it holds (not the registered descriptors). */
void EventLoop_Close(EventLoop* el);

/* Waits up to duration_in_milliseconds (-1: until stopped) and dispatches what is ready; with
 * process_one_event, returns after the first callback. Returns EventLoop_Run_Finished once it
 * dispatched something or was stopped, EventLoop_Run_FinishedEmpty when the time ran out with
 * nothing to do, EventLoop_Run_Failed with errno (EINTR: a signal arrived). */
EventLoop_Run_Result EventLoop_Run(EventLoop* el, int duration_in_milliseconds,
                                   bool process_one_event);
/* Makes the loop's current or next Run return. 0, or -1 with errno. */
int EventLoop_Stop(EventLoop* el);
/* A descriptor that is readable while the loop has something to dispatch. */
int EventLoop_GetWaitDescriptor(EventLoop* el);

/* NULL with errno: EINVAL for a bad loop, descriptor, mask or callback, EEXIST when fd is
 * registered already. */
EventRegistration* EventLoop_RegisterIo(EventLoop* el, int fd, EventLoop_IoEvents eventBitmask,
                                        EventLoopIoCallback* callback, void* context);
int EventLoop_ModifyIoEvents(EventLoop* el, EventRegistration* reg,
                             EventLoop_IoEvents eventBitmask);
/* Safe from within the registration's own callback. */
int EventLoop_UnregisterIo(EventLoop* el, EventRegistration* reg);

#ifdef __cplusplus
}
#endif
