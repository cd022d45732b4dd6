#pragma once

#include <applibs/eventloop.h>

// What an event loop's registration is, for the parts of applibs that register descriptors of
// their own (sysevent.cpp).
struct EventRegistration {
  EventLoop* loop;
  int fd;
  EventLoopIoCallback* callback;
  void* context;
  bool dead;  // unregistered; freed once the batch it may still be in is dispatched
};
