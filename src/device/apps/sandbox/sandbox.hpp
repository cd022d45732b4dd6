#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/apps/sandbox/app_resolver.hpp"
#include "device/apps/sandbox/cgroup.hpp"
#include "device/apps/sandbox/denial.hpp"
#include "device/apps/sandbox/seccomp_policy.hpp"
#include "device/apps/sandbox/socket_mediator.hpp"

// One app's sandbox (DESIGN section 6): a process tree in its own mount, PID, IPC, UTS, cgroup and
// network namespaces, whose root is a read-only skeleton holding the OS's libraries read-only,
// the app's installed image read-only at /mnt/apps/<component ID> (Azure Sphere's place), a
// private /tmp and its own /proc; running as the app's own uid and gid with no capabilities (none
// in any set, the bounding set emptied, securebits locked), no_new_privs, and the seccomp filter,
// inside the app's control group. Its PID 1 is a small init of aspisd's, which starts the entry
// point, reaps orphans, passes SIGTERM on to every process, and says how the app ended.
namespace aspis::device::apps::sandbox {

struct SandboxSpec {
  std::string name;               // the app's name: the sandbox's host name
  std::string component_id;       // names /mnt/apps/<component_id>
  std::filesystem::path image;    // the installed version's directory
  std::string entry_point;        // absolute path inside the image (the manifest's EntryPoint)
  std::vector<std::string> args;  // after the entry point (the manifest's CmdArgs)
  std::vector<std::string> env;   // NAME=value, added to the sandbox's few
  // A directory of aspisd's for this sandbox: it holds the sandbox's generated /etc files and
  // `root`, where the sandbox's root is built in the sandbox's mount namespace only.
  std::filesystem::path run_dir;
  // What the app may reach; none when null. Its denials go to the sandbox's sink either way.
  std::shared_ptr<AppNetwork> network;
  // Serves the sandbox a resolver of its own, which its resolv.conf names; may be null.
  AppResolver* resolver = nullptr;
  uid_t uid = 0;  // the app's own; never 0
  gid_t gid = 0;
  std::uint64_t tmp_bytes = std::uint64_t{8} << 20;  // the size of the private /tmp
  // RLIMIT_FSIZE: no file the app writes grows past this (a write past it fails with EFBIG,
  // SIGXFSZ being ignored); 0: no limit.
  std::uint64_t max_file_bytes = 0;
  int output = -1;  // the app's stdout and stderr (duplicated); /dev/null when -1
  int broker = -1;  // passed to the app as descriptor 3 when given
  // The CPUs every process of the app runs on (empty: any), and the SCHED_FIFO priority they run
  // at (0: the normal policy). Set before the app starts; no app raises its priority
  // (RLIMIT_RTPRIO is 0).
  std::vector<int> cpus;
  int fifo_priority = 0;
};

// How the app's main process ended.
struct AppExit {
  bool signaled = false;
  int code = 0;         // the exit code, or the signal
  std::string failure;  // set when the app could not be started (execve's error)
  std::string ended;    // set for an app that is not a process: how it ended

  // "exited with code 3", "killed by signal 9 (Killed)", "could not start: ...", or `ended`.
  std::string Describe() const;
};

// One running app, however it runs: a sandbox's process tree, or firmware on a coprocessor.
class AppRun {
 public:
  virtual ~AppRun() = default;
  // Its main process, as the device's PID namespace numbers it; 0 when it is not a process.
  virtual pid_t pid() const = 0;
  // Readable (for poll) when the app may have ended: then Wait(0) says.
  virtual int exit_descriptor() const = 0;
  // Waits up to `timeout` for the app to end; nullopt while it runs.
  virtual std::optional<AppExit> Wait(std::chrono::milliseconds timeout) = 0;
  // Asks the app to end (SIGTERM) or ends it (SIGKILL). Returns at once.
  virtual void Signal(int signal) const = 0;
};

// Runs one app. `denials` receives what it was refused (denial.hpp). Thread-safe: Stop, Wait and
// the destructor may be called from any one thread while the sandbox's own thread answers the
// seccomp notifications.
class Sandbox final : public AppRun {
 public:
  // Builds the sandbox and starts the entry point in it, inside `cgroup`. Errors: kSandbox
  // naming the step that failed (a mount, the privilege drop, the filter), with nothing left
  // running; an entry point that cannot be executed is not an error here but an AppExit.
  static Expected<std::unique_ptr<Sandbox>> Start(const SandboxSpec& spec,
                                                  const SeccompProgram& filter,
                                                  const AppCgroup& cgroup, DenialSink denials);
  // Kills whatever still runs and waits for it.
  ~Sandbox() override;
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // The sandbox's init, as the device's PID namespace numbers it.
  pid_t pid() const override { return pid_; }
  // Readable once the app has ended.
  int exit_descriptor() const override { return pidfd_.get(); }
  std::optional<AppExit> Wait(std::chrono::milliseconds timeout) override;
  // Sends `signal` to the sandbox's init: SIGTERM is passed on to every process of the app,
  // SIGKILL ends them all.
  void Signal(int signal) const override;
  // SIGTERM to every process of the app, then SIGKILL to all after `grace`; how it ended.
  AppExit Stop(std::chrono::milliseconds grace);

 private:
  Sandbox(pid_t pid, Fd pidfd, Fd control, Fd listener, DenialSink denials,
          std::shared_ptr<AppNetwork> network, const AppResolver* resolvers,
          std::optional<AppResolver::Endpoint> resolver);
  void AnswerNotifications();

  const pid_t pid_;
  Fd pidfd_;
  Fd control_;
  Fd listener_;
  Fd wake_;  // an eventfd that ends the notification thread
  DenialSink denials_;
  std::optional<AppResolver::Endpoint> resolver_;
  SocketMediator mediator_;
  std::optional<AppExit> exit_;
  std::thread notifications_;
};

}  // namespace aspis::device::apps::sandbox
