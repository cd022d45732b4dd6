#include "device/sim/supervisor.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/file.hpp"
#include "core/log.hpp"
#include "crypto/encoding.hpp"
#include "device/daemon/daemon.hpp"
#include "device/update/boot/simulated_bootloader.hpp"
#include "package/measure.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace aspis::device::sim {

namespace {

// A started aspisd, or the reason it could not start.
Expected<pid_t> Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], nullptr, &attributes, args.data(), environ);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0)
    return Fail(CoreErrc::kIo, argv[0] + " does not run: " + std::generic_category().message(rc));
  return pid;
}

// Waits for `pid` while passing on SIGTERM and SIGINT; its exit code, or -1 when a signal
// killed it. *stopping is set when the supervisor was asked to stop.
int Wait(pid_t pid, const sigset_t& signals, bool* stopping) {
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    siginfo_t info{};
    const int signal = ::sigwaitinfo(&signals, &info);
    if (signal == SIGTERM || signal == SIGINT) {
      *stopping = true;
      ::kill(pid, SIGTERM);
    }
  }
}

}  // namespace

int Supervise(const SupervisorConfig& config, std::ostream& err) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int failed_boots = 0;
  for (;;) {
    auto boot_id = crypto::RandomUuid();
    if (!boot_id) {
      err << "aspisd simulate: " << boot_id.error().message() << "\n";
      return 1;
    }
    if (auto ok = file::WriteDurably(config.boot_id_file, AsBytes(*boot_id + "\n"), 0644); !ok) {
      err << "aspisd simulate: " << ok.error().message() << "\n";
      return 1;
    }
    auto boot = update::SimulatedBootloader::Open(file::RealFileSystem(), config.slots);
    auto slot = boot ? boot->Boot(*boot_id) : Expected<update::Slot>(std::unexpected(boot.error()));
    if (!slot) {
      err << "aspisd simulate: the bootloader failed: " << slot.error().message() << "\n";
      return 1;
    }
    const auto binary = boot->SlotDir(*slot) / package::kAspisdInRootfs;
    std::vector<std::string> argv = {binary.string(), "run"};
    argv.insert(argv.end(), config.run_args.begin(), config.run_args.end());
    argv.insert(argv.end(), {"--bootloader", "simulator", "--slots", config.slots.string(),
                             "--boot-id-file", config.boot_id_file.string()});
    log::Info("simulated board: boot {} runs slot {}", *boot_id, update::SlotName(*slot));
    bool runnable = false;
    for (int crashes = 0; crashes <= config.crash_restarts; ++crashes) {
      auto pid = Spawn(argv);
      if (!pid) {
        log::Warning("simulated board: {}", pid.error().message());
        break;
      }
      runnable = true;
      bool stopping = false;
      const int code = Wait(*pid, signals, &stopping);
      if (stopping) return code;
      if (code == kRebootExitCode) break;
      if (code == 0) return 0;
      log::Warning("simulated board: aspisd died ({}); restarting it", code);
      if (crashes == config.crash_restarts) log::Warning("simulated board: the watchdog reboots");
    }
    failed_boots = runnable ? 0 : failed_boots + 1;
    if (failed_boots >= config.failed_boots) {
      err << "aspisd simulate: no slot holds a runnable aspisd\n";
      return 1;
    }
  }
}

}  // namespace aspis::device::sim
