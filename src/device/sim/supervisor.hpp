#pragma once

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

// The simulated board's power, firmware and watchdog, so that A/B updates run for real on any
// Linux machine: `aspisd simulate`.
namespace aspis::device::sim {

struct SupervisorConfig {
  std::filesystem::path slots;         // the slot directories a and b, and the boot environment
  std::filesystem::path boot_id_file;  // written with a new ID at each boot
  std::vector<std::string> run_args;   // the options of `aspisd run`, without the boot ones
  int crash_restarts = 3;              // restarts within one boot before the watchdog reboots
  int failed_boots = 10;               // boots in a row without a runnable aspisd before giving up
};

// Boots the board: a new boot ID, the simulated bootloader's choice of slot, then that slot's own
// usr/sbin/aspisd with `run`, the given options and the simulator's bootloader. When it exits with
// kRebootExitCode the board boots again; when it dies otherwise it is restarted within the same
// boot, and after `crash_restarts` such deaths the watchdog reboots. SIGTERM or SIGINT is passed
// to aspisd, and its exit code returned; 1 with a message on `err` when the board cannot boot.
int Supervise(const SupervisorConfig& config, std::ostream& err);

}  // namespace aspis::device::sim
