#include <applibs/eventloop.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <new>
#include <vector>

#include "eventloop_internal.hpp"

struct EventLoop {
  int epoll = -1;
  int stop = -1;  // an eventfd: EventLoop_Stop writes it
  std::vector<EventRegistration*> registrations;
  std::vector<EventRegistration*> dead;
  int dispatching = 0;
};

namespace {

constexpr std::uint32_t kEvents = EventLoop_Input | EventLoop_Output | EventLoop_Error;

std::int64_t NowMs() {
  timespec now{};
  (void)::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

bool Known(const EventLoop* el, const EventRegistration* reg) {
  return el != nullptr && reg != nullptr && !reg->dead &&
         std::find(el->registrations.begin(), el->registrations.end(), reg) !=
             el->registrations.end();
}

void Bury(EventLoop* el) {
  if (el->dispatching > 0) return;
  for (EventRegistration* reg : el->dead) delete reg;
  el->dead.clear();
}

}  // namespace

extern "C" {

EventLoop* EventLoop_Create(void) {
  auto* el = new (std::nothrow) EventLoop;
  if (el == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  el->epoll = ::epoll_create1(EPOLL_CLOEXEC);
  el->stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = nullptr;
  if (el->epoll < 0 || el->stop < 0 || ::epoll_ctl(el->epoll, EPOLL_CTL_ADD, el->stop, &event)) {
    const int error = errno;
    EventLoop_Close(el);
    errno = error;
    return nullptr;
  }
  return el;
}

void EventLoop_Close(EventLoop* el) {
  if (el == nullptr) return;
  for (EventRegistration* reg : el->registrations) delete reg;
  for (EventRegistration* reg : el->dead) delete reg;
  if (el->epoll >= 0) ::close(el->epoll);
  if (el->stop >= 0) ::close(el->stop);
  delete el;
}

EventLoop_Run_Result EventLoop_Run(EventLoop* el, int duration_in_milliseconds,
                                   bool process_one_event) {
  if (el == nullptr || duration_in_milliseconds < -1) {
    errno = EINVAL;
    return EventLoop_Run_Failed;
  }
  const std::int64_t deadline = NowMs() + duration_in_milliseconds;
  bool dispatched = false;
  for (;;) {
    int timeout = -1;
    if (duration_in_milliseconds >= 0) {
      timeout = static_cast<int>(std::max<std::int64_t>(0, deadline - NowMs()));
    }
    std::array<epoll_event, 16> events{};
    const int ready = ::epoll_wait(
        el->epoll, events.data(), process_one_event ? 1 : static_cast<int>(events.size()), timeout);
    if (ready < 0) return EventLoop_Run_Failed;  // errno as epoll_wait set it, EINTR included
    bool stopped = false;
    ++el->dispatching;
    for (int i = 0; i < ready; ++i) {
      auto* reg = static_cast<EventRegistration*>(events[static_cast<std::size_t>(i)].data.ptr);
      if (reg == nullptr) {
        std::uint64_t count = 0;
        (void)::read(el->stop, &count, sizeof count);
        stopped = true;
      } else if (!reg->dead) {
        std::uint32_t happened = events[static_cast<std::size_t>(i)].events;
        if ((happened & (EPOLLHUP | EPOLLRDHUP)) != 0) happened |= EventLoop_Input;
        reg->callback(el, reg->fd, happened & kEvents, reg->context);
        dispatched = true;
      }
    }
    --el->dispatching;
    Bury(el);
    if (stopped || (process_one_event && dispatched)) return EventLoop_Run_Finished;
    if (duration_in_milliseconds >= 0 && NowMs() >= deadline) {
      return dispatched ? EventLoop_Run_Finished : EventLoop_Run_FinishedEmpty;
    }
  }
}

int EventLoop_Stop(EventLoop* el) {
  if (el == nullptr) {
    errno = EINVAL;
    return -1;
  }
  const std::uint64_t one = 1;
  return ::write(el->stop, &one, sizeof one) == sizeof one ? 0 : -1;
}

int EventLoop_GetWaitDescriptor(EventLoop* el) {
  if (el == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return el->epoll;
}

EventRegistration* EventLoop_RegisterIo(EventLoop* el, int fd, EventLoop_IoEvents eventBitmask,
                                        EventLoopIoCallback* callback, void* context) {
  if (el == nullptr || fd < 0 || callback == nullptr || (eventBitmask & ~kEvents) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  for (const EventRegistration* reg : el->registrations) {
    if (reg->fd == fd) {
      errno = EEXIST;
      return nullptr;
    }
  }
  auto* reg = new (std::nothrow) EventRegistration{el, fd, callback, context, false};
  if (reg == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  epoll_event event{};
  event.events = eventBitmask;
  event.data.ptr = reg;
  if (::epoll_ctl(el->epoll, EPOLL_CTL_ADD, fd, &event) != 0) {
    const int error = errno;
    delete reg;
    errno = error;
    return nullptr;
  }
  el->registrations.push_back(reg);
  return reg;
}

int EventLoop_ModifyIoEvents(EventLoop* el, EventRegistration* reg,
                             EventLoop_IoEvents eventBitmask) {
  if (!Known(el, reg) || (eventBitmask & ~kEvents) != 0) {
    errno = EINVAL;
    return -1;
  }
  epoll_event event{};
  event.events = eventBitmask;
  event.data.ptr = reg;
  return ::epoll_ctl(el->epoll, EPOLL_CTL_MOD, reg->fd, &event);
}

int EventLoop_UnregisterIo(EventLoop* el, EventRegistration* reg) {
  if (!Known(el, reg)) {
    errno = EINVAL;
    return -1;
  }
  // The descriptor may be closed already; the registration goes either way.
  (void)::epoll_ctl(el->epoll, EPOLL_CTL_DEL, reg->fd, nullptr);
  reg->dead = true;
  std::erase(el->registrations, reg);
  el->dead.push_back(reg);
  Bury(el);
  return 0;
}

}  // extern "C"
