#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/state/state_store.hpp"

// System events (Azure Sphere's sysevent.h) and update deferral. Apps whose manifest grants
// SystemEventNotifications register through the broker and receive the events on a descriptor of
// their own; an app that also holds SoftwareUpdateDeferral may defer an update it was told about.
//
// Before an update changes what runs (an installed app's new version, or a new OS), the device
// loop asks Hold. The first time an update is asked about, when that was is persisted: from then
// on it waits at most kMaxDeferral in all, whatever the apps ask and however often aspisd
// restarts. The registered apps are told UpdateReadyForInstall (Pending, with the minutes left to
// defer); when one that may defer is registered, the update waits kResponseWindow for an answer,
// then as long as the apps deferred it. A deferral that ran out is announced again (Pending), so
// an app may defer again within the total. At the end the apps are told Final (no deferral), the
// update starts, and UpdateStarted follows; a check-in with nothing to install sends
// NoUpdateAvailable.
//
// Each event is one SOCK_SEQPACKET message, a JSON object:
//   {"event": "UpdateReadyForInstall", "status": "Pending", "update_type": "App",
//    "max_deferral_minutes": 1440}
// "status" is Pending, Deferred (the app's deferral was granted; "deferred_minutes" says how
// long), Final, or Complete (UpdateStarted, NoUpdateAvailable); "update_type" is App or System.
// An app that does not read its events loses the ones its socket has no room for.
namespace aspis::device::apps {

enum class SysEvent : std::uint32_t {
  kUpdateReadyForInstall = 1,
  kUpdateStarted = 2,
  kNoUpdateAvailable = 4,
};
enum class UpdateType { kApp, kSystem };

std::string_view SysEventName(SysEvent event);
std::optional<SysEvent> SysEventFromName(std::string_view name);

inline constexpr std::chrono::hours kMaxDeferral{24};
inline constexpr std::chrono::seconds kResponseWindow{10};

// Thread-safe: the app manager's thread serves the broker's calls while the device loop asks.
class SystemEvents {
 public:
  // When updates were first ready is kept in `store` (record "update-deferral"); a damaged record
  // is logged, and what was held starts at once. Errors: kIo.
  static Expected<std::unique_ptr<SystemEvents>> Open(
      state::StateStore store, const Clock& clock,
      std::chrono::seconds response_window = kResponseWindow);

  // For the broker, on behalf of an app granted SystemEventNotifications: registers `component`
  // for `events` (a mask of SysEvent), replacing its earlier registration, and returns the app's
  // end of the socket the events arrive on. Errors: kSandbox (no socket).
  Expected<Fd> Register(const std::string& component, std::uint32_t events, bool may_defer);
  // Ends the registration and withdraws the app's deferral (an app that ended holds nothing).
  void Unregister(const std::string& component);
  // Defers the update announced as Pending by `minutes` from now (at least 1), to no later than
  // its deadline; returns what was granted. Errors: kNoEvent when no update is pending or the app
  // is not registered for it; kNotPermitted when its registration may not defer.
  Expected<std::chrono::minutes> Defer(const std::string& component, std::chrono::minutes minutes);
  // Withdraws the app's deferral, and calls the wake set by OnResume. Errors: as Defer's.
  Expected<void> Resume(const std::string& component);
  // What Resume calls (on the broker's thread), so the device asks Hold again soon; empty: none.
  void OnResume(std::function<void()> wake);

  // For the device loop: whether the update installing `image_ids` (an OS update when `type` is
  // kSystem) may start now. nullopt: start it; the apps were told Final. Otherwise when to ask
  // again.
  std::optional<Clock::TimePoint> Hold(const std::vector<std::string>& image_ids, UpdateType type);
  // The update that Hold let through has started (UpdateStarted).
  void Started(UpdateType type);
  // The device checked and has nothing to install (NoUpdateAvailable); what Hold remembered goes.
  void NothingToUpdate();

 private:
  struct Listener {
    Fd socket{-1};
    std::uint32_t events = 0;
    bool may_defer = false;
  };
  struct Pending {
    std::vector<std::string> image_ids;
    UpdateType type = UpdateType::kApp;
    Clock::TimePoint deadline;
    Clock::TimePoint window_end;
    std::map<std::string, Clock::TimePoint, std::less<>> deferrals;  // by component
  };

  SystemEvents(state::StateStore store, const Clock& clock, std::chrono::seconds window)
      : store_(std::move(store)), clock_(clock), window_(window) {}
  // When the update of `image_ids` was first ready, persisting the ones first seen now.
  Clock::TimePoint FirstReady(const std::vector<std::string>& image_ids, Clock::TimePoint now);
  // UpdateReadyForInstall Pending for `pending_` at `now` (with mutex_ held).
  std::string PendingMessage(Clock::TimePoint now) const;
  // Tells the apps registered for UpdateReadyForInstall that `pending_` waits; returns whether
  // one of them may defer it.
  bool AnnouncePending(Clock::TimePoint now);
  // Sends `message` to the apps registered for `event` (all of them, or only `only`); drops the
  // registrations whose app closed its end.
  void Send(SysEvent event, const std::string& message, std::string_view only = {});

  state::StateStore store_;  // used by the loop's thread only
  const Clock& clock_;
  const std::chrono::seconds window_;
  std::map<std::string, std::int64_t, std::less<>> first_ready_;  // by image ID, Unix seconds
  bool lost_ = false;  // the record was damaged: what is held now is past its deadline
  std::mutex mutex_;
  std::map<std::string, Listener, std::less<>> listeners_;  // guarded by mutex_
  std::optional<Pending> pending_;                          // guarded by mutex_
  std::function<void()> wake_;                              // guarded by mutex_
};

}  // namespace aspis::device::apps
