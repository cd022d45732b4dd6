#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/apps/sandbox/sandbox.hpp"

// Real-time apps on a coprocessor (DESIGN section 6). On a board whose definition lists
// coprocessors (a Cortex-M beside the Linux cores, as the MT3620 has its M4s), a real-time capable
// app's entry point is firmware for that core, an ELF image, and Linux's remoteproc runs it:
// aspisd copies the image where the kernel's firmware loader looks
// (<firmware_dir>/aspis-<component ID>.elf), names it in <remoteproc>/firmware and writes "start"
// to <remoteproc>/state. The firmware talks over RPMsg: it announces an "rpmsg-raw" channel, for
// which Linux's rpmsg_char makes a character device (/dev/rpmsgN, found under the remoteproc's
// device in sysfs) carrying one message per read or write, and aspisd relays that device as it
// relays a real-time process's channel (app_connections.hpp). The app has ended once the state
// is no longer "running" (the core crashed, or something stopped it).
//
// The firmware runs outside aspisd's sandbox: what keeps it from Linux's memory and from
// peripherals no manifest gave it is the SoC's isolation (its firewall or memory protection as
// the device tree sets it).
namespace aspis::device::apps {

struct CoprocessorConfig {
  std::string name;                  // the board definition's ("M4")
  std::filesystem::path remoteproc;  // /sys/class/remoteproc/remoteproc0
  std::filesystem::path firmware_dir = "/lib/firmware";
  std::filesystem::path dev_dir = "/dev";
  // Opens the endpoint's character device for reading and writing, non-blocking; open(2) when
  // empty (tests stand in for the device).
  std::function<Expected<Fd>(const std::filesystem::path&)> open_endpoint;
  // How long the core may take to stop, to start, and to announce its endpoint.
  std::chrono::milliseconds start_timeout{5000};
  // How often a running app's state is read.
  std::chrono::milliseconds poll_interval{100};
};

struct CoprocessorStart {
  std::unique_ptr<sandbox::AppRun> run;  // stops the core when destroyed
  std::optional<Fd> endpoint;            // the RPMsg endpoint, when asked for
};

// Stops whatever the core runs, loads `image` (app `component`'s entry point) and starts it, and
// with `endpoint` opens the endpoint its firmware announces. Errors: kSandbox when the image is
// not an ELF file, when the kernel refuses a step (with its errno's text), or when the core is not
// running, or announced no endpoint, within start_timeout; the core is then stopped and the copy
// of the image removed.
Expected<CoprocessorStart> StartOnCoprocessor(const CoprocessorConfig& core,
                                              const std::filesystem::path& image,
                                              const std::string& component, bool endpoint);

}  // namespace aspis::device::apps
