#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stop_token>
#include <string>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "device/env.hpp"
#include "rot/root_of_trust.hpp"
#include "wire/admin.hpp"

// aspisd's main loop: measured launch, then attestation and renewal, and check-ins with the
// update manifest verified, its targets downloaded and verified into the staging area, and the OS
// installed through the update agent, with status served on the admin socket, until asked to
// stop or to reboot.
namespace aspis::device {

inline constexpr char kRuntimeVersion[] = "0.1.0";
// `aspisd run` exits with this code when the update agent asks for a reboot; the simulator's
// supervisor (`aspisd simulate`) then boots the board again.
inline constexpr int kRebootExitCode = 10;

struct DaemonConfig {
  std::filesystem::path state_dir = "/var/lib/aspisd";
  std::string service_url;             // https://host[:port]
  std::filesystem::path trust_bundle;  // PEM: the platform root CA(s) this device pins
  std::string rot = "software";        // "software" or "tpm2"
  std::string tcti = "device:/dev/tpmrm0";
  std::filesystem::path boot_id_file = rot::kBootIdFile;
  std::filesystem::path os_image;  // the OS slot image: a file, or a directory on the simulator
  // The A/B bootloader the OS is updated through: empty (the OS is not updated), "simulator"
  // (slot directories `a` and `b` under `slots`; the booted slot's etc/aspis/trust-bundle.pem is
  // the trust bundle), or "u-boot" or "grub": the OS partitions `slot_a` and `slot_b` hold file
  // system images, the bootloader's environment is `boot_environment` (U-Boot: its
  // fw_env.config; GRUB: its grubenv block), and the boot script names the booted slot on
  // `kernel_cmdline` (aspis.slot=A|B). With a bootloader, the booted slot is the OS measured.
  std::string bootloader;
  std::filesystem::path slots;
  std::filesystem::path slot_a;
  std::filesystem::path slot_b;
  std::filesystem::path boot_environment;
  std::filesystem::path kernel_cmdline = "/proc/cmdline";
  // How long a new OS may take to attest and check in before it is reverted.
  std::chrono::seconds trial_time = std::chrono::minutes(10);
  std::filesystem::path board;  // the board definition; packages must list its name
  std::filesystem::path aspisd_binary = "/proc/self/exe";
  std::filesystem::path admin_socket = std::string(wire::admin::kDefaultSocket);
  std::string os_version = "unknown";  // reported at check-in
  // The tenant's publisher root fingerprint, provisioned out of band; empty: trust on first use.
  std::string publisher_root;
  // How long one check-in may spend downloading before it lets attestation run.
  std::chrono::seconds download_budget = std::chrono::seconds(60);
  // Bytes the staging area for downloaded targets may hold.
  std::uint64_t staging_capacity = std::uint64_t{2} << 30;
  // Check-ins follow each attestation and repeat at this interval (with up to 10 % jitter).
  std::chrono::seconds check_in_interval = std::chrono::hours(20);
  // Retries while the service is unreachable or refuses: exponential from `retry_base`, capped.
  std::chrono::milliseconds retry_base = std::chrono::seconds(2);
  std::chrono::milliseconds retry_cap = std::chrono::minutes(10);
  // Run the installed apps, each in its sandbox (DESIGN section 6): needs root and the memory
  // and pids cgroup controllers.
  bool run_apps = false;
  // Where aspisd's resolvers for apps listen (port 53): each app's sandbox gets a loopback address
  // of its own, the first free one from this to the end of its /16, which no app may reach
  // except its own and no other server of the device should use.
  std::string app_resolver = "127.83.0.1";
  std::uint64_t app_memory_bytes = std::uint64_t{64} << 20;  // per app, memory and swap
  std::uint32_t app_max_processes = 64;                      // per app, processes and threads
  std::uint32_t app_first_uid = 200000;  // apps run as this uid and gid, and the ones after it
};

enum class DaemonExit { kStopped, kReboot };

// Runs until `stop` is requested (SIGTERM in aspisd), then returns after the current step, or
// until the update agent asks for a reboot (kReboot). Errors are those that keep the device from
// running at all (no trust bundle, a root of trust that will not open, a measurement log that
// does not explain the register, a damaged update record); a service that cannot be reached or
// refuses is retried, never an error. The loop sleeps on `env.clock`; every durable file (the boot
// environment, the update records, the publisher pin, the measurement log, the credentials and
// the staging area's downloads) goes through `env.fs`. Installed trees and an app's `current`
// link are written directly, and synced before the update record moves past the step that made
// them (a step is entered again after a restart).
Expected<DaemonExit> RunDaemon(const DaemonConfig& config, const Env& env,
                               const std::stop_token& stop);

class ServiceLink;
// The same, talking to `service` instead of config.service_url (tests).
Expected<DaemonExit> RunDaemon(const DaemonConfig& config, const Env& env,
                               const std::stop_token& stop, ServiceLink* service);

}  // namespace aspis::device
