#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/apps/app_connections.hpp"
#include "device/apps/broker.hpp"
#include "device/apps/coprocessor.hpp"
#include "device/apps/sandbox/app_resolver.hpp"
#include "device/apps/sandbox/cgroup.hpp"
#include "device/apps/sandbox/sandbox.hpp"
#include "device/apps/sandbox/seccomp_policy.hpp"
#include "package/app_manifest.hpp"

// The app manager (DESIGN section 6, lifecycle): runs each installed app's current version in its
// sandbox (a real-time capable one pinned, under SCHED_FIFO, or on a coprocessor), restarts one
// that ends with a doubling delay, stops one with SIGTERM and then SIGKILL after a grace period,
// relays Application_Connect channels between apps (app_connections.hpp), and reports crashes and
// denials. The update agent stops an app before changing its files and starts it again once they
// have settled.
namespace aspis::device::apps {

struct AppManagerParts {
  std::filesystem::path apps_dir;  // the update agent's: <component>/current is what runs
  std::filesystem::path run_dir;   // aspisd's scratch space for the sandboxes (emptied)
  sandbox::CgroupLayout cgroups;
  sandbox::CgroupLimits limits;
  uid_t first_uid = 200000;  // apps run as first_uid, first_uid + 1, ... (and that gid)
  std::uint64_t tmp_bytes = std::uint64_t{8} << 20;
  std::chrono::milliseconds restart_delay{1000};        // after the first end; doubled each time
  std::chrono::milliseconds max_restart_delay{300000};  // the most it doubles to
  std::chrono::milliseconds stable_after{60000};        // a run this long starts the doubling again
  std::chrono::milliseconds stop_grace{5000};           // from SIGTERM to SIGKILL
  sandbox::AppResolver* resolver = nullptr;
  // Each app's mutable storage file is <storage_dir>/<component>/mutable-storage.
  std::filesystem::path storage_dir;
  // For DeviceAuthentication: the device's tenant once it attested (empty before), and the app
  // certificate (with its chain) and key the attestation left.
  std::function<std::string()> tenant;
  std::filesystem::path app_certificate;
  std::filesystem::path app_key;
  // Where apps granted SystemEventNotifications register for system events; null: none are sent.
  SystemEvents* events = nullptr;
  // The board and what opens its peripherals for apps; null: apps open none (ENODEV).
  const board::BoardDefinition* board = nullptr;
  board::PeripheralServer* peripherals = nullptr;
  // What aspisd does for apps granted PowerControls or SystemTime; null: nothing (ENOTSUP).
  const DeviceActions* actions = nullptr;
  // The board's Wi-Fi, for apps granted WifiConfig; null: the board has none (ENOTSUP).
  board::Wifi* wifi = nullptr;
  // The certificate store, for apps granted CertStore (and EAP-TLS networks); null: none (ENOTSUP).
  board::CertStore* cert_store = nullptr;
  // The interfaces aspisd manages, for apps granted NetworkConfig; null: none (ENOTSUP).
  board::NetworkControl* network = nullptr;
  board::TimeSync* time_sync = nullptr;  // the time sync aspisd keeps; null: none
  // The CPUs kept for real-time capable apps, as the MT3620 keeps its M4 cores: each runs one such
  // app, pinned under SCHED_FIFO at real_time_priority (a real-time app finding none free does
  // not start); the other apps run on the remaining CPUs. nullopt: the highest-numbered CPU aspisd
  // may run on, when it may run on two or more, and none on a single CPU.
  std::optional<std::vector<int>> real_time_cpus;
  int real_time_priority = 50;
  // The board's coprocessors: when it has any, real-time capable apps run there instead, one on
  // each (coprocessor.hpp), and one finding none free does not start.
  std::vector<CoprocessorConfig> coprocessors;
  // Where apps' stdout and stderr go (a descriptor aspisd keeps open, for tests); -1: each app
  // writes into a pipe of its own, which aspisd logs line by line, prefixed with the app's name
  // and at most kLogLinesPerMinute lines a minute.
  int output = -1;
};

// What is reported of an app (crashes and denials), on the manager's or a sandbox's thread.
struct AppReport {
  std::string component_id;
  std::string name;
  std::string kind;  // "exit" (the app ended), "denial"
  std::string description;
  int restarts = 0;  // for an exit: how often the app was restarted after ending, this one included
};

struct AppStatus {
  std::string component_id;
  std::string name;
  std::string state;  // "running", "stopped" (by an operator), "waiting" (to restart), "failed"
  pid_t pid = 0;
  std::uint64_t memory_bytes = 0;
  std::uint64_t memory_peak = 0;
  int restarts = 0;
  std::string last_exit;            // how it last ended, or why it could not start
  std::uint64_t storage_bytes = 0;  // its mutable storage, used
  std::uint64_t storage_limit = 0;  // and its SizeKB in bytes (0: none)
};

inline constexpr int kLogLinesPerMinute = 120;

// Thread-safe.
class AppManager {
 public:
  using Reporter = std::function<void(const AppReport&)>;

  // Errors: kSandbox when the seccomp filter cannot be built.
  static Expected<std::unique_ptr<AppManager>> Create(AppManagerParts parts, Reporter report);
  // Stops every app.
  ~AppManager();
  AppManager(const AppManager&) = delete;
  AppManager& operator=(const AppManager&) = delete;

  // Starts every installed app, in order of name then component ID.
  void StartAll();
  // Starts (again) `component`'s current version, clearing an operator's stop and the restart
  // delay. Errors: kUnknownApp when it has no installed version.
  Expected<void> Start(const std::string& component);
  // Stops it and keeps it stopped until Start (or aspisd's next start); returns once it ended.
  // `by_operator` false: stopped for an update, started again by Start once it settles.
  void Stop(const std::string& component, bool by_operator = true);
  // Stops `component` and deletes its mutable storage: the app was removed from the device.
  void Remove(const std::string& component);
  std::vector<AppStatus> Status() const;
  std::optional<AppStatus> Status(const std::string& component) const;

 private:
  struct App;
  AppManager(AppManagerParts parts, Reporter report, sandbox::SeccompProgram filter,
             sandbox::SeccompProgram real_time_filter, std::unique_ptr<AppConnections> connections,
             std::vector<int> other_cpus);
  void Supervise();
  // Starts `app` now (called with mutex_ held).
  void Launch(App& app);
  // Starts real-time app `app` on a free coprocessor; the reason when it cannot.
  std::optional<std::string> LaunchOnCoprocessor(App& app, const std::filesystem::path& version,
                                                 const package::AppManifest& manifest);
  // `app` ended, and its broker's call in flight was answered (called with mutex_ held).
  void Ended(App& app, const sandbox::AppExit& exit);
  // The next start after a failure: restart_delay doubled for each failure in a row, capped.
  void ScheduleRestart(App& app, std::chrono::steady_clock::time_point now) const;
  void Wake();
  // Logs what the app wrote, as far as its budget allows.
  void Drain(App& app);

  const AppManagerParts parts_;
  const Reporter report_;
  const sandbox::SeccompProgram filter_;
  const sandbox::SeccompProgram real_time_filter_;
  const std::unique_ptr<AppConnections> connections_;
  const std::vector<int> other_cpus_;  // where apps that are not real-time run (empty: any)
  Fd wake_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::unique_ptr<App>, std::less<>> apps_;  // guarded by mutex_
  uid_t next_uid_;                                                 // guarded by mutex_
  bool stopping_ = false;                                          // guarded by mutex_
  std::thread supervisor_;
};

}  // namespace aspis::device::apps
