#include <applibs/sysevent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <new>
#include <string>

#include "broker_client.hpp"
#include "eventloop_internal.hpp"

struct SysEvent_Info {
  SysEvent_Events event;
  SysEvent_Info_UpdateData update;
};

namespace {

using aspis::applibs::BrokerCall;
using aspis::applibs::BrokerOpen;
using aspis::applibs::JsonNumber;
using aspis::applibs::JsonString;

struct Subscription {
  SysEvent_EventsCallback* callback;
  void* context;
  int fd;
};

constexpr std::array<std::pair<SysEvent_Events, const char*>, 3> kEvents = {{
    {SysEvent_Events_UpdateReadyForInstall, "UpdateReadyForInstall"},
    {SysEvent_Events_UpdateStarted, "UpdateStarted"},
    {SysEvent_Events_NoUpdateAvailable, "NoUpdateAvailable"},
}};

constexpr std::array<std::pair<SysEvent_Status, const char*>, 4> kStatuses = {{
    {SysEvent_Status_Pending, "Pending"},
    {SysEvent_Status_Final, "Final"},
    {SysEvent_Status_Deferred, "Deferred"},
    {SysEvent_Status_Complete, "Complete"},
}};

void Arrived(EventLoop* el, int fd, EventLoop_IoEvents events, void* context) {
  (void)el;
  (void)events;
  const auto* subscription = static_cast<Subscription*>(context);
  std::array<char, 512> message{};
  const ssize_t got = ::recv(fd, message.data(), message.size() - 1, MSG_DONTWAIT);
  if (got <= 0) return;
  const std::string_view text(message.data(), static_cast<std::size_t>(got));
  SysEvent_Info info{SysEvent_Events_None, {0, SysEvent_UpdateType_Invalid}};
  const std::string event = JsonString(text, "event");
  for (const auto& [value, name] : kEvents) {
    if (event == name) info.event = value;
  }
  SysEvent_Status status = SysEvent_Status_Invalid;
  const std::string status_name = JsonString(text, "status");
  for (const auto& [value, name] : kStatuses) {
    if (status_name == name) status = value;
  }
  const long long minutes = JsonNumber(text, "max_deferral_minutes");
  info.update.max_deferral_time_in_minutes = minutes > 0 ? static_cast<unsigned>(minutes) : 0;
  const std::string type = JsonString(text, "update_type");
  info.update.update_type = type == "App"      ? SysEvent_UpdateType_App
                            : type == "System" ? SysEvent_UpdateType_System
                                               : SysEvent_UpdateType_Invalid;
  if (info.event == SysEvent_Events_None) return;  // one this library does not know
  subscription->callback(info.event, status, &info, subscription->context);
}

int Fail(int error) {
  errno = error;
  return -1;
}

}  // namespace

extern "C" {

EventRegistration* SysEvent_RegisterForEventNotifications(EventLoop* el,
                                                          SysEvent_Events eventBitmask,
                                                          SysEvent_EventsCallback* callback,
                                                          void* context) {
  if (el == nullptr || callback == nullptr || eventBitmask == SysEvent_Events_None ||
      (eventBitmask & ~SysEvent_Events_Mask) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  std::string names;
  for (const auto& [value, name] : kEvents) {
    if ((eventBitmask & value) == 0) continue;
    names += std::string(names.empty() ? "" : ",") + "\"" + name + "\"";
  }
  const int fd = BrokerOpen(R"({"call":"sysevent.register","events":[)" + names + "]}");
  if (fd < 0) return nullptr;
  auto* subscription = new (std::nothrow) Subscription{callback, context, fd};
  EventRegistration* reg = subscription == nullptr ? nullptr
                                                   : EventLoop_RegisterIo(el, fd, EventLoop_Input,
                                                                          Arrived, subscription);
  if (reg == nullptr) {
    const int error = subscription == nullptr ? ENOMEM : errno;
    delete subscription;
    ::close(fd);
    (void)BrokerCall(R"({"call":"sysevent.unregister"})", {});
    errno = error;
  }
  return reg;
}

int SysEvent_UnregisterForEventNotifications(EventRegistration* reg) {
  if (reg == nullptr || reg->callback != Arrived) return Fail(EINVAL);
  auto* subscription = static_cast<Subscription*>(reg->context);
  if (EventLoop_UnregisterIo(reg->loop, reg) != 0) return -1;
  ::close(subscription->fd);
  delete subscription;
  return BrokerCall(R"({"call":"sysevent.unregister"})", {});
}

int SysEvent_Info_GetUpdateData(const SysEvent_Info* info, SysEvent_Info_UpdateData* update_info) {
  if (info == nullptr || update_info == nullptr) return Fail(EFAULT);
  if (info->event != SysEvent_Events_UpdateReadyForInstall) return Fail(EINVAL);
  *update_info = info->update;
  return 0;
}

int SysEvent_DeferEvent(SysEvent_Events event, uint32_t requested_defer_time_in_minutes) {
  if (event != SysEvent_Events_UpdateReadyForInstall) return Fail(EINVAL);
  return BrokerCall(R"({"call":"sysevent.defer","event":"UpdateReadyForInstall","minutes":)" +
                        std::to_string(requested_defer_time_in_minutes) + "}",
                    {});
}

int SysEvent_ResumeEvent(SysEvent_Events event) {
  if (event != SysEvent_Events_UpdateReadyForInstall) return Fail(EINVAL);
  return BrokerCall(R"({"call":"sysevent.resume","event":"UpdateReadyForInstall"})", {});
}

}  // extern "C"
