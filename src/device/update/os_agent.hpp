#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/json.hpp"
#include "device/env.hpp"
#include "device/state/state_store.hpp"
#include "device/update/boot/bootloader.hpp"
#include "package/manifest.hpp"
#include "rot/root_of_trust.hpp"

// The OS half of the update agent: a staged, verified OS package goes to the inactive A/B slot,
// the bootloader tries it, and it is committed only once healthy, or reverted. The install is an
// explicit state machine (Mender v4's): each step is persisted in the state store before its
// effects, so aspisd killed or the power cut at any instant resumes or reverts, and the device
// always boots a complete, checked OS.
namespace aspis::device::update {

// The steps of an OS install.
enum class Step {
  kIdle,     // nothing in progress
  kInstall,  // writing the package into the inactive slot, and checking what was written
  kSwitch,   // having the bootloader try the new slot from the next boot
  kReboot,   // waiting for the reboot into the new slot
  kTrial,    // running the new slot until it is healthy, or its time runs out
  kCommit,   // keeping the new slot, and raising the anti-rollback counter to its version
  kRevert,   // marking the new slot bad, and rebooting into the old one if it runs
};

// What moves the machine.
enum class Event {
  kStaged,     // a verified OS package was staged
  kDone,       // the step's effects are complete
  kFailed,     // the step failed
  kRebooted,   // the device booted again
  kHealthy,    // the new OS attested and checked in
  kUnhealthy,  // the new OS failed its health check, or its trial time ran out
  kFellBack,   // the device booted the old slot: the bootloader gave up on the new one
};

// How the last install ended.
enum class Outcome { kNone, kInstalled, kReverted, kFailed, kKeep };

struct Transition {
  Step from;
  Event on;
  Step to;
  Outcome outcome;  // recorded by the transition; kKeep leaves it
};

// Every transition of the machine; any other (step, event) is refused (kBadState).
inline constexpr Transition kTransitions[] = {
    {Step::kIdle, Event::kStaged, Step::kInstall, Outcome::kNone},
    {Step::kInstall, Event::kDone, Step::kSwitch, Outcome::kKeep},
    {Step::kInstall, Event::kFailed, Step::kIdle, Outcome::kFailed},
    {Step::kSwitch, Event::kDone, Step::kReboot, Outcome::kKeep},
    {Step::kSwitch, Event::kFailed, Step::kRevert, Outcome::kFailed},
    {Step::kSwitch, Event::kRebooted, Step::kTrial, Outcome::kKeep},
    {Step::kReboot, Event::kRebooted, Step::kTrial, Outcome::kKeep},
    {Step::kTrial, Event::kHealthy, Step::kCommit, Outcome::kKeep},
    {Step::kTrial, Event::kUnhealthy, Step::kRevert, Outcome::kReverted},
    {Step::kTrial, Event::kFellBack, Step::kIdle, Outcome::kReverted},
    {Step::kCommit, Event::kDone, Step::kIdle, Outcome::kInstalled},
    {Step::kRevert, Event::kDone, Step::kIdle, Outcome::kKeep},
    {Step::kRevert, Event::kRebooted, Step::kIdle, Outcome::kKeep},
};

// The transition for `event` in `step`, if there is one.
std::optional<Transition> NextStep(Step step, Event event);
std::string_view StepName(Step step);
std::string_view OutcomeName(Outcome outcome);

// The root of trust's counter that holds the committed OS security version (counter 0 holds the
// update manifest sequence).
inline constexpr std::uint32_t kOsSecurityVersionCounter = 1;

// A staged OS package whose signature, board and digest were verified.
struct OsTarget {
  std::string image_id;
  std::string version;
  std::uint64_t security_version = 0;
  std::filesystem::path package;
};

// The persisted record of the machine ("os" in the state store).
struct OsRecord {
  Step step = Step::kIdle;
  OsTarget target;               // what is being installed, or was last
  Slot slot = Slot::kB;          // the slot it goes to
  std::string boot_id;           // the boot during which the record was last written
  std::int64_t trial_until = 0;  // Unix seconds
  Outcome outcome = Outcome::kNone;
  std::string reason;  // why it failed or was reverted
  // What the committed slot holds; empty image ID for the factory install.
  std::string installed_image_id;
  std::string installed_version;
  std::uint64_t installed_security_version = 0;
};

json::Json ToJson(const OsRecord& record);
// Errors: kCorrupt.
Expected<OsRecord> OsRecordFrom(const json::Json& doc);

// Decides, from a package's verified manifest, whether it may be written; an error refuses it.
using AcceptPackage = std::function<Expected<void>(const package::Manifest&)>;
inline Expected<void> AcceptAnyPackage(const package::Manifest& /*manifest*/) { return {}; }

// Writes an OS package into a slot. Implementations: the simulator's directory slots; block
// devices on boards.
class SlotWriter {
 public:
  virtual ~SlotWriter() = default;
  // Verifies the package again and asks `accept` of its manifest before touching the slot; then
  // replaces what `slot` holds with the package's payload, durably, and checks what was written
  // against the package's signed measurements. Returns the manifest it verified. Errors (those of
  // `accept`, kInstall and those of the package reader) after the slot was touched leave it
  // unusable until written again.
  virtual Expected<package::Manifest> Write(Slot slot, const std::filesystem::path& package,
                                            const AcceptPackage& accept) = 0;
};

struct OsAgentParts {
  Env env;
  state::StateStore& store;
  Bootloader& boot;
  SlotWriter& writer;
  rot::RootOfTrust& rot;
  // Asks for a reboot; aspisd stops soon after. Called with the record already persisted.
  std::function<void()> reboot;
  // How long a new OS may take to become healthy before it is reverted.
  std::chrono::seconds trial_time = std::chrono::minutes(10);
};

// Not thread-safe: the daemon's loop drives it. Each method persists before it acts and returns
// the first error; after an error (a full disk, a power cut) the agent must be opened again.
class OsAgent {
 public:
  // Loads the record (a new one when there is none). `boot_id` names the current boot.
  static Expected<OsAgent> Open(OsAgentParts parts, std::string boot_id);

  // Continues what a restart interrupted: an install or switch is done again, a reboot that
  // happened moves to the trial (or to idle when the old slot came back), a trial whose new slot
  // did not boot ends as reverted.
  Expected<void> Resume();
  // Installs `target` when idle: refused (kRollback) when its security version is below the
  // anti-rollback counter; ignored when it is what the committed slot holds or what the last
  // install failed with. Returns once the reboot is asked for, or the install failed.
  Expected<void> Install(const OsTarget& target);
  // The running OS is `target` (the daemon measured it so): when idle, records it as installed
  // and raises the anti-rollback counter to its security version. Refused (kRollback) when that
  // version is below the counter.
  Expected<void> Adopt(const OsTarget& target);
  // The running OS attested and checked in: a trial is committed; when idle, the booted slot is
  // marked good, so that it keeps its tries.
  Expected<void> Healthy();
  // The running OS failed its health check: a trial is reverted with `reason`.
  Expected<void> Unhealthy(std::string reason);
  // Reverts a trial whose time ran out.
  Expected<void> Tick();

  const OsRecord& record() const { return record_; }
  // When a running trial ends, if one runs.
  std::optional<Clock::TimePoint> TrialDeadline() const;

 private:
  OsAgent(OsAgentParts parts, std::string boot_id, OsRecord record)
      : parts_(std::move(parts)), boot_id_(std::move(boot_id)), record_(std::move(record)) {}
  // Moves by `event` (after `change` to the record), persists, then enters the new step.
  Expected<void> Fire(Event event, std::string reason = {},
                      const std::function<void(OsRecord&)>& change = {});
  Expected<void> Enter();
  Expected<void> Persist(const OsRecord& record);
  Expected<void> CheckSecurityVersion(std::uint64_t version);

  OsAgentParts parts_;
  std::string boot_id_;
  OsRecord record_;
};

}  // namespace aspis::device::update
