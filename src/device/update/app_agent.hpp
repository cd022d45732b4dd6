#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"
#include "device/state/state_store.hpp"
#include "device/update/os_agent.hpp"
#include "package/package.hpp"
#include "rot/root_of_trust.hpp"

// The app half of the update agent. Each app (component) lives in its own directory under the
// apps directory: one directory per version (named by image ID) and a `current` symbolic link
// to the version that runs. A new version is unpacked beside the running one, verified, switched
// to atomically (the link is replaced by rename), and the previous version is kept until the new
// one is healthy, then removed; an unhealthy one is switched back. An app no longer deployed is
// removed. Each component's install is a persisted state machine, like the OS's.
namespace aspis::device::update {

enum class AppStep {
  kIdle,     // nothing in progress
  kInstall,  // unpacking the new version beside the running one
  kSwitch,   // pointing `current` at the new version
  kTrial,    // running the new version until it is healthy
  kCommit,   // removing the previous version
  kRevert,   // pointing `current` back at the previous version, removing the new one
  kRemove,   // removing an app that is no longer deployed
};

enum class AppEvent { kStaged, kDone, kFailed, kHealthy, kUnhealthy, kRetired };

struct AppTransition {
  AppStep from;
  AppEvent on;
  AppStep to;
  Outcome outcome;  // kKeep leaves it
};

inline constexpr AppTransition kAppTransitions[] = {
    {AppStep::kIdle, AppEvent::kStaged, AppStep::kInstall, Outcome::kNone},
    {AppStep::kInstall, AppEvent::kDone, AppStep::kSwitch, Outcome::kKeep},
    {AppStep::kInstall, AppEvent::kFailed, AppStep::kIdle, Outcome::kFailed},
    {AppStep::kSwitch, AppEvent::kDone, AppStep::kTrial, Outcome::kKeep},
    {AppStep::kSwitch, AppEvent::kFailed, AppStep::kRevert, Outcome::kFailed},
    {AppStep::kTrial, AppEvent::kHealthy, AppStep::kCommit, Outcome::kKeep},
    {AppStep::kTrial, AppEvent::kUnhealthy, AppStep::kRevert, Outcome::kReverted},
    {AppStep::kCommit, AppEvent::kDone, AppStep::kIdle, Outcome::kInstalled},
    {AppStep::kRevert, AppEvent::kDone, AppStep::kIdle, Outcome::kKeep},
    {AppStep::kIdle, AppEvent::kRetired, AppStep::kRemove, Outcome::kNone},
};

std::optional<AppTransition> NextAppStep(AppStep step, AppEvent event);
std::string_view AppStepName(AppStep step);

// A staged app package whose signature, digest and target were verified.
struct AppTarget {
  std::string component_id;
  std::string image_id;
  std::string version;
  std::uint64_t security_version = 0;
  std::filesystem::path package;
};

// The persisted record of one component (all of them are the record "apps" of the state store).
struct AppRecord {
  AppStep step = AppStep::kIdle;
  AppTarget target;  // what is being installed, or was last
  Outcome outcome = Outcome::kNone;
  std::string reason;
  std::string installed_image_id;  // what `current` points at once committed; empty: none
  std::string installed_version;
  std::uint64_t installed_security_version = 0;
  std::string previous_image_id;  // kept while a new version is on trial
};

json::Json ToJson(const AppRecord& record);
// Errors: kCorrupt.
Expected<AppRecord> AppRecordFrom(const json::Json& doc);

// The root of trust's counter holding the generation of the app records: each write of the records
// raises it, so records put back from an older copy are told apart from the latest.
inline constexpr std::uint32_t kAppRecordsCounter = 2;

struct AppAgentParts {
  state::StateStore& store;
  // With a root of trust, the records carry a generation that kAppRecordsCounter follows (written
  // first, then the counter raised), so the installed security versions cannot be lowered by
  // restoring the state files from an old copy or deleting them.
  rot::RootOfTrust* rot = nullptr;
  std::filesystem::path apps_dir;
  // Verify app packages again before they are unpacked (the tenant's publishers).
  std::function<package::Publishers()> publishers;
  // Judges a version on trial at once, given its directory: success commits it, an error reverts
  // it with the error's message as the reason (app_health.hpp). Without it a version stays on
  // trial until Healthy or Unhealthy is called.
  std::function<Expected<void>(const std::filesystem::path&)> health;
  // Called before a component's files change (switching, reverting or removing it): the app
  // manager stops the running app and returns once it has ended.
  std::function<void(const std::string& component)> stop;
  // Called once a component settles after a change (committed or reverted): the app manager
  // starts what `current` now names.
  std::function<void(const std::string& component)> settled;
  // Called once a component was removed from the device: its mutable storage goes with it.
  std::function<void(const std::string& component)> removed;
};

// Not thread-safe: the daemon's loop drives it. Each method persists before it acts and returns
// the first error; after one the agent must be opened again.
class AppAgent {
 public:
  // Loads the components' records. Errors: kCorrupt, kIo; kRollback when the records are of an
  // older generation than the root of trust's counter (restored from an old copy, or deleted
  // while apps stay installed; a state reset with no app installed starts again).
  static Expected<AppAgent> Open(AppAgentParts parts);

  // Continues what a restart interrupted, for every component.
  Expected<void> Resume();
  // Installs `target` when its component is idle: refused (kRollback) below the component's
  // installed security version; ignored when it is installed, or was reverted. Leaves the new
  // version on trial, unless `health` judges it at once. (Apps' deferrals are asked before, by the
  // device loop: apps/system_events.hpp.)
  Expected<void> Install(const AppTarget& target);
  // The app on trial came up (commit) or did not (revert, with `reason`).
  Expected<void> Healthy(const std::string& component_id);
  Expected<void> Unhealthy(const std::string& component_id, std::string reason);
  // Removes every installed component that `deployed` does not name.
  Expected<void> Retire(const std::vector<std::string>& deployed);

  // The components with a record, and each record.
  const std::map<std::string, AppRecord, std::less<>>& records() const { return records_; }
  // The directory `current` of a component: what runs.
  std::filesystem::path Current(const std::string& component_id) const;

 private:
  explicit AppAgent(AppAgentParts parts) : parts_(std::move(parts)) {}
  Expected<void> Fire(const std::string& component, AppEvent event, std::string reason = {},
                      const std::function<void(AppRecord&)>& change = {});
  Expected<void> Enter(const std::string& component);
  Expected<void> PointCurrentAt(const std::string& component, const std::string& image_id) const;
  // Writes `records` as the next generation, then raises the counter to it.
  Expected<void> Persist(const std::map<std::string, AppRecord, std::less<>>& records);

  AppAgentParts parts_;
  std::map<std::string, AppRecord, std::less<>> records_;
  std::uint64_t generation_ = 0;
};

}  // namespace aspis::device::update
