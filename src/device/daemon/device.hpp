#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "device/apps/app_manager.hpp"
#include "device/apps/system_events.hpp"
#include "device/attest/renewal.hpp"
#include "device/daemon/credentials.hpp"
#include "device/daemon/daemon.hpp"
#include "device/daemon/service_link.hpp"
#include "device/env.hpp"
#include "device/reports/error_queue.hpp"
#include "device/update/app_agent.hpp"
#include "device/update/os_agent.hpp"
#include "device/update/publisher_trust.hpp"
#include "device/update/staging.hpp"
#include "rot/root_of_trust.hpp"
#include "wire/attestation.hpp"
#include "wire/check_in.hpp"

// The running device (DESIGN sections 4 and 5): one loop that attests when its certificates need
// renewing, checks in after each attestation and at its interval, has the targets of each verified
// update manifest downloaded and handed to the update agents, and watches the trial of a new OS.
// It sleeps on the Env's clock between steps, so tests drive it with a SimulatedClock.
namespace aspis::device {

// The highest update-manifest sequence accepted so far lives in this monotonic counter of the root
// of trust, not in a file: deleting or restoring state files cannot lower it (replay).
inline constexpr std::uint32_t kManifestSequenceCounter = 0;

// What a Device is made of; RunDaemon builds them from the machine.
struct DeviceParts {
  const DaemonConfig& config;
  const Env& env;
  ServiceLink& service;
  std::unique_ptr<rot::RootOfTrust> rot;
  std::vector<wire::MeasurementEvent> events;  // this launch's measurements
  Credentials credentials;
  std::vector<crypto::Certificate> roots;  // the pinned platform roots
  std::string device_id;
  std::uint64_t manifest_sequence = 0;  // the highest accepted, as the root of trust keeps it
  update::PublisherTrust trust;
  update::Staging staging;
  update::OsAgent* os = nullptr;  // null: the OS is not updated (no bootloader)
  update::AppAgent* apps = nullptr;
  apps::AppManager* app_manager = nullptr;  // null: apps are installed but not run
  // Told of updates, and asked whether apps defer them; null: updates start at once.
  apps::SystemEvents* system_events = nullptr;
  reports::ErrorQueue* errors = nullptr;  // null: nothing is reported
  const bool* reboot_asked = nullptr;     // set by the OS agent's reboot hook, on the loop's thread
  std::string update_error;               // why an update agent is off, for the admin socket
  // The OS the booted slot holds, as its verified header says (with a bootloader): what runs,
  // even when the bootloader fell back to a slot the update record does not name.
  std::optional<wire::InstalledImage> booted_os;
  std::uint64_t booted_security_version = 0;  // as the booted slot's header signs
};

// How long after aspisd started an app's reboot waits for a check-in that does not come.
inline constexpr std::chrono::minutes kAppRebootHold{10};

class Device {
 public:
  explicit Device(DeviceParts parts);
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // The loop: returns once `stop` is requested (promptly, even mid-sleep) or a reboot is asked.
  void Run(const std::stop_token& stop);

  // An admin socket request ("status", or "attest", which waits up to 90 s for an attestation
  // that began after it). Thread-safe.
  json::Json Handle(const json::Json& request);

  // Has the device ask again at once about the update the apps held back: an app allowed it.
  // Thread-safe.
  void ReconsiderHeldUpdate();
  // Ends the loop for a reboot an app asked for (PowerControls): once the device checked in
  // since it started, or kAppRebootHold after it started when it cannot, so that an app that
  // reboots the device as soon as it runs cannot keep a fixed version (or OS) from installing.
  // Thread-safe.
  void RequestReboot();
  bool reboot_requested() const { return app_reboot_.load(); }

  // The tenant's publishers this device trusts; read by the loop's thread only.
  const update::PublisherTrust& trust() const { return trust_; }
  // The tenant of the last trusted attestation; empty before one. Thread-safe.
  std::string Tenant();

 private:
  // What the admin socket reports; guarded by waiter_'s mutex.
  struct Status {
    std::string verdict = "never attested";  // "trusted", "untrusted", "unreachable"
    std::string reason;
    std::int64_t last_attempt = 0;
    std::int64_t next_attempt = 0;
    std::int64_t certificate_expiry = 0;
    std::string tenant;
    std::int64_t last_check_in = 0;
    std::uint64_t manifest_sequence = 0;
    std::string check_in_error;
    std::string publisher_keys_error;  // why the last key set the service relayed was refused
    std::vector<wire::TargetStatus> targets;  // as the last check-in left them, reported next
  };

  // The update agent asked for a reboot, or an app did and its reboot is due (RequestReboot).
  bool RebootAsked() const;
  Clock::TimePoint FirstAttempt() const;
  std::string Reason();
  void Unhealthy(const std::string& reason);
  void TickTrial();
  // The OS target's status as the OS agent's record says now.
  void RefreshOsStatus();
  void InstallTargets(const std::vector<wire::UpdateTarget>& targets,
                      std::vector<wire::TargetStatus>& statuses);
  // InstallTargets again for the held targets; returns whether a target's status changed.
  bool InstallHeld();
  void InstallOs(const wire::UpdateTarget& t, const std::optional<std::filesystem::path>& staged,
                 wire::TargetStatus& status);
  void InstallApp(const wire::UpdateTarget& t, const std::optional<std::filesystem::path>& staged,
                  wire::TargetStatus& status);
  // Whether installing the staged `t` would change what runs: a new OS, or a new version of an
  // installed app (what the apps are told of, and may defer).
  bool ChangesWhatRuns(const wire::UpdateTarget& t, package::Kind kind) const;
  Expected<package::Manifest> StagedManifest(const std::filesystem::path& staged) const;
  bool Runs(const package::Manifest& m) const;
  std::vector<wire::InstalledImage> InstalledImages() const;
  std::optional<std::filesystem::path> DeltaBase(const wire::UpdateTarget& t) const;
  std::string RunningOsVersion() const;
  void RetireApps(const std::vector<wire::UpdateTarget>& targets);
  Clock::TimePoint AttestOnce(bool* trusted, bool* refused);
  Clock::TimePoint CheckInOnce(bool* refused, bool* checked_in);
  json::Json StatusJson();
  json::Json HandleApps(const std::string& command, const json::Json& request);
  // Queues an error report entry, when the device keeps them.
  void Report(std::string_view type, std::string_view event_class, std::string description);

  const DaemonConfig& config_;
  const WaitableClock& clock_;
  Waiter waiter_;  // what the loop sleeps on; its mutex guards status_ and the requests
  ServiceLink& service_;
  std::unique_ptr<rot::RootOfTrust> rot_;
  const std::vector<wire::MeasurementEvent> events_;
  Credentials credentials_;
  const std::vector<crypto::Certificate> roots_;
  const std::string device_id_;
  update::PublisherTrust trust_;  // used by the loop's thread only
  update::Staging staging_;
  update::OsAgent* os_agent_;    // used by the loop's thread only
  update::AppAgent* app_agent_;  // used by the loop's thread only
  apps::AppManager* app_manager_;
  apps::SystemEvents* system_events_;
  // When to ask the apps again about the update they hold back (the last verified manifest's
  // targets), without checking in; used by the loop's thread only.
  std::optional<Clock::TimePoint> install_wait_;
  std::vector<wire::UpdateTarget> held_targets_;
  reports::ErrorQueue* errors_;
  const bool* reboot_asked_;
  std::atomic<bool> app_reboot_{false};
  Clock::TimePoint started_;             // when Run started
  std::atomic<bool> checked_in_{false};  // since Run started
  const std::string update_error_;
  const std::optional<wire::InstalledImage> booted_os_;
  const std::uint64_t booted_security_version_;
  bool attested_ = false;  // this run attested trusted
  bool reported_healthy_ = false;
  bool reporting_ = false;  // the next check-in is to report new target statuses
  std::stop_token stop_;
  attest::Uniform uniform_;
  attest::Backoff backoff_;
  attest::Backoff check_in_backoff_;

  std::condition_variable done_;
  bool attest_requested_ = false;
  bool reconsider_ = false;     // guarded by waiter_'s mutex
  std::uint64_t requests_ = 0;  // attestations asked for on the admin socket
  std::uint64_t served_ = 0;    // of those, how many an attempt that began after them answered
  Status status_;
};

}  // namespace aspis::device
