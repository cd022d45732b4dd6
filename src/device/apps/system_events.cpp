#include "device/apps/system_events.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

#include "core/json.hpp"
#include "core/log.hpp"
#include "device/apps/errors.hpp"

namespace aspis::device::apps {

namespace {

using json::Json;

constexpr std::string_view kRecord = "update-deferral";

constexpr std::array kEvents = {
    std::pair{SysEvent::kUpdateReadyForInstall, std::string_view("UpdateReadyForInstall")},
    std::pair{SysEvent::kUpdateStarted, std::string_view("UpdateStarted")},
    std::pair{SysEvent::kNoUpdateAvailable, std::string_view("NoUpdateAvailable")},
};

std::string_view TypeName(UpdateType type) { return type == UpdateType::kApp ? "App" : "System"; }

std::string Message(SysEvent event, std::string_view status, Json fields = Json::object()) {
  fields["event"] = SysEventName(event);
  fields["status"] = status;
  return fields.dump();
}

}  // namespace

std::string_view SysEventName(SysEvent event) {
  for (const auto& [e, name] : kEvents) {
    if (e == event) return name;
  }
  return "None";
}

std::optional<SysEvent> SysEventFromName(std::string_view name) {
  for (const auto& [e, n] : kEvents) {
    if (n == name) return e;
  }
  return std::nullopt;
}

Expected<std::unique_ptr<SystemEvents>> SystemEvents::Open(state::StateStore store,
                                                           const Clock& clock,
                                                           std::chrono::seconds response_window) {
  auto record = store.Get(kRecord);
  if (!record && record.error() != CoreErrc::kCorrupt) return std::unexpected(record.error());
  std::unique_ptr<SystemEvents> events(new SystemEvents(std::move(store), clock, response_window));
  events->lost_ = !record;
  if (record && *record) {
    try {
      for (const auto& [image, since] : (**record).at("first_ready").items()) {
        events->first_ready_[image] = since.get<std::int64_t>();
      }
    } catch (const std::exception&) {
      events->lost_ = true;
    }
  }
  if (events->lost_) {
    // Not knowing how long updates waited, none waits any longer: deferral never stops updates.
    log::Error("the update deferral record is damaged: updates held back start now");
    events->first_ready_.clear();
    if (auto ok = events->store_.Erase(kRecord); !ok) return std::unexpected(ok.error());
  }
  return events;
}

Expected<Fd> SystemEvents::Register(const std::string& component, std::uint32_t events,
                                    bool may_defer) {
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) != 0) {
    return Fail(AppsErrc::kSandbox,
                "cannot make an events socket: " + std::generic_category().message(errno));
  }
  Fd app_end(pair[1]);
  const std::lock_guard lock(mutex_);
  listeners_.insert_or_assign(component, Listener{Fd(pair[0]), events, may_defer});
  // An app that (re)starts while an update waits is told at once.
  if (pending_ && (events & static_cast<std::uint32_t>(SysEvent::kUpdateReadyForInstall)) != 0) {
    Send(SysEvent::kUpdateReadyForInstall, PendingMessage(clock_.Now()), component);
  }
  return app_end;
}

void SystemEvents::Unregister(const std::string& component) {
  std::function<void()> wake;
  {
    const std::lock_guard lock(mutex_);
    listeners_.erase(component);
    // An app that ended or left holds nothing back.
    if (!pending_ || pending_->deferrals.erase(component) == 0) return;
    wake = wake_;
  }
  if (wake) wake();
}

Expected<std::chrono::minutes> SystemEvents::Defer(const std::string& component,
                                                   std::chrono::minutes minutes) {
  const std::lock_guard lock(mutex_);
  const auto listener = listeners_.find(component);
  if (!pending_ || listener == listeners_.end() ||
      (listener->second.events & static_cast<std::uint32_t>(SysEvent::kUpdateReadyForInstall)) ==
          0) {
    return Fail(AppsErrc::kNoEvent, "no update is pending for this app to defer");
  }
  if (!listener->second.may_defer) {
    return Fail(AppsErrc::kNotPermitted, "the app manifest grants no SoftwareUpdateDeferral");
  }
  const auto now = clock_.Now();
  const auto asked =
      std::clamp<std::chrono::minutes>(minutes, std::chrono::minutes(1), kMaxDeferral);
  const auto until = std::min(now + asked, pending_->deadline);
  pending_->deferrals[component] = until;
  const auto granted = std::chrono::floor<std::chrono::minutes>(until - now);
  Send(SysEvent::kUpdateReadyForInstall,
       Message(SysEvent::kUpdateReadyForInstall, "Deferred",
               {{"update_type", TypeName(pending_->type)}, {"deferred_minutes", granted.count()}}),
       component);
  return granted;
}

Expected<void> SystemEvents::Resume(const std::string& component) {
  std::function<void()> wake;
  {
    const std::lock_guard lock(mutex_);
    const auto listener = listeners_.find(component);
    if (!pending_ || listener == listeners_.end()) {
      return Fail(AppsErrc::kNoEvent, "no update is pending for this app to resume");
    }
    if (!listener->second.may_defer) {
      return Fail(AppsErrc::kNotPermitted, "the app manifest grants no SoftwareUpdateDeferral");
    }
    if (pending_->deferrals.erase(component) == 0) return {};
    wake = wake_;
  }
  if (wake) wake();
  return {};
}

void SystemEvents::OnResume(std::function<void()> wake) {
  const std::lock_guard lock(mutex_);
  wake_ = std::move(wake);
}

Clock::TimePoint SystemEvents::FirstReady(const std::vector<std::string>& image_ids,
                                          Clock::TimePoint now) {
  // Past its deadline: an update whose wait is unknown (a damaged record), or began "later than
  // now" (the clock was set back), so that no clock change grants a new 24 hours.
  const std::int64_t expired = UnixSeconds(now - kMaxDeferral);
  std::map<std::string, std::int64_t, std::less<>> kept;
  for (const auto& id : image_ids) {
    const auto found = first_ready_.find(id);
    if (found == first_ready_.end()) {
      kept[id] = lost_ ? expired : UnixSeconds(now);
    } else {
      kept[id] = found->second > UnixSeconds(now) ? expired : found->second;
    }
  }
  lost_ = false;
  if (kept != first_ready_) {
    first_ready_ = std::move(kept);
    Json ready = Json::object();
    for (const auto& [id, since] : first_ready_) ready[id] = since;
    // Not kept, the deferral would start again after a restart: logged, and still capped in this
    // run.
    if (auto ok = store_.Put(kRecord, {{"first_ready", ready}}); !ok) {
      log::Error("recording when the update was ready failed: {}", ok.error().message());
    }
  }
  std::int64_t earliest = UnixSeconds(now);
  for (const auto& [id, since] : first_ready_) earliest = std::min(earliest, since);
  return Clock::TimePoint(std::chrono::seconds(earliest));
}

std::optional<Clock::TimePoint> SystemEvents::Hold(const std::vector<std::string>& image_ids,
                                                   UpdateType type) {
  std::vector<std::string> ids = image_ids;
  std::sort(ids.begin(), ids.end());
  const auto now = clock_.Now();
  const auto deadline = FirstReady(ids, now) + kMaxDeferral;
  const std::lock_guard lock(mutex_);
  if (!pending_ || pending_->image_ids != ids || pending_->type != type) {
    pending_ = Pending{.image_ids = ids, .type = type, .deadline = deadline};
    if (now < deadline && AnnouncePending(now)) return pending_->window_end;
  } else if (now < pending_->deadline) {
    std::optional<Clock::TimePoint> until;
    for (const auto& [component, t] : pending_->deferrals) until = std::max(until.value_or(t), t);
    if (until && now < *until) return until;
    if (!until && now < pending_->window_end) return pending_->window_end;
    // A deferral ran out before the deadline: the apps may defer again, within what is left.
    if (until) {
      pending_->deferrals.clear();
      if (AnnouncePending(now)) return pending_->window_end;
    }
  }
  Send(SysEvent::kUpdateReadyForInstall,
       Message(SysEvent::kUpdateReadyForInstall, "Final", {{"update_type", TypeName(type)}}));
  pending_.reset();
  return std::nullopt;
}

void SystemEvents::Started(UpdateType type) {
  const std::lock_guard lock(mutex_);
  Send(SysEvent::kUpdateStarted,
       Message(SysEvent::kUpdateStarted, "Complete", {{"update_type", TypeName(type)}}));
}

void SystemEvents::NothingToUpdate() {
  if (!first_ready_.empty()) {
    first_ready_.clear();
    if (auto ok = store_.Erase(kRecord); !ok) {
      log::Error("removing the update deferral record failed: {}", ok.error().message());
    }
  }
  const std::lock_guard lock(mutex_);
  pending_.reset();
  Send(SysEvent::kNoUpdateAvailable, Message(SysEvent::kNoUpdateAvailable, "Complete"));
}

std::string SystemEvents::PendingMessage(Clock::TimePoint now) const {
  const auto left = std::chrono::floor<std::chrono::minutes>(pending_->deadline - now).count();
  return Message(SysEvent::kUpdateReadyForInstall, "Pending",
                 {{"update_type", TypeName(pending_->type)},
                  {"max_deferral_minutes", std::max<std::int64_t>(left, 0)}});
}

bool SystemEvents::AnnouncePending(Clock::TimePoint now) {
  pending_->window_end = now + window_;
  Send(SysEvent::kUpdateReadyForInstall, PendingMessage(now));
  return std::any_of(listeners_.begin(), listeners_.end(), [](const auto& entry) {
    return entry.second.may_defer &&
           (entry.second.events & static_cast<std::uint32_t>(SysEvent::kUpdateReadyForInstall)) !=
               0;
  });
}

void SystemEvents::Send(SysEvent event, const std::string& message, std::string_view only) {
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    const Listener& l = it->second;
    if ((l.events & static_cast<std::uint32_t>(event)) == 0 ||
        (!only.empty() && it->first != only)) {
      ++it;
      continue;
    }
    const ssize_t sent =
        ::send(l.socket.get(), message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno != EAGAIN && errno != EINTR) {
      it = listeners_.erase(it);  // the app closed its end
    } else {
      ++it;
    }
  }
}

}  // namespace aspis::device::apps
