#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/apps/firmware_image.hpp"
#include "device/apps/sandbox/sandbox.hpp"

// Real-time apps on a coprocessor (DESIGN section 6). On a board whose definition lists
// coprocessors (a Cortex-M beside the Linux cores, as the MT3620 has its M4s), a real-time capable
// app's entry point is firmware for that core, an ELF image, and Linux's remoteproc runs it:
// aspisd turns the kernel's own crash recovery off (aspisd restarts apps itself), copies the image
// where the kernel's firmware loader looks (<firmware_dir>/aspis-<component ID>.elf), names it in
// <remoteproc>/firmware and writes "start" to <remoteproc>/state. The firmware talks over RPMsg:
// it announces an "rpmsg-raw" channel, for which Linux's rpmsg_char makes a character device
// (/dev/rpmsgN, found under the remoteproc's device in sysfs) carrying one message per read or
// write; aspisd opens it (checking it is the device sysfs names) and relays it as it relays a
// real-time process's channel (app_connections.hpp), or drains it when the manifest lists no
// connections. The app has ended once the state is no longer "running".
//
// The firmware runs outside aspisd's sandbox: what keeps it from Linux's memory and from
// peripherals no manifest gave it is the SoC's isolation (its firewall or memory protection as
// the device tree sets it). What the firmware's resource table asks of Linux is checked before the
// kernel reads it (firmware_image.hpp).
//
// Every wait here is bounded: the kernel changes a core's state before its write returns, so
// settle_timeout only bounds a kernel or test that is slower; the endpoint is looked for while
// the app runs, not while it starts.
namespace aspis::device::apps {

struct CoprocessorConfig {
  std::string name;                  // the board definition's ("M4")
  std::filesystem::path remoteproc;  // /sys/class/remoteproc/remoteproc0
  std::filesystem::path firmware_dir = "/lib/firmware";
  std::filesystem::path dev_dir = "/dev";
  // Opens the endpoint's character device for reading and writing, non-blocking, given its path
  // and its sysfs directory; when empty, open(2), refusing a device whose number is not the one
  // sysfs gives (tests stand in for the device).
  std::function<Expected<Fd>(const std::filesystem::path& device,
                             const std::filesystem::path& sysfs)>
      open_endpoint;
  std::chrono::milliseconds settle_timeout{1000};    // for the state to follow a write
  std::chrono::milliseconds endpoint_timeout{5000};  // for the firmware to announce its endpoint
  std::chrono::milliseconds poll_interval{100};      // how often a running app's state is read
  std::uint64_t max_image_bytes = std::uint64_t{8} << 20;
  FirmwareLimits firmware_limits;  // what its resource table may ask of Linux
};

// Receives a running app's RPMsg endpoint once its firmware announced it (on the thread that
// calls the run's Wait).
using EndpointSink = std::function<void(Fd)>;

// Checks `image` (app `component`'s entry point: a regular ELF file of at most max_image_bytes,
// whose resource table asks for no more than firmware_limits allow), stops whatever the core runs,
// loads the image and starts it. The run hands the endpoint to `endpoint` when it
// appears; with `needs_endpoint`, a firmware that announces none within endpoint_timeout ends the
// run. Errors: kSandbox when the image is refused, the kernel refuses a step (with its errno's
// text), or the core does not run within settle_timeout; the core is then stopped and the copy of
// the image removed.
Expected<std::unique_ptr<sandbox::AppRun>> StartOnCoprocessor(const CoprocessorConfig& core,
                                                              const std::filesystem::path& image,
                                                              const std::string& component,
                                                              bool needs_endpoint,
                                                              EndpointSink endpoint);

// Stops the core and removes what earlier runs left in the firmware directory: for aspisd's start,
// when no app of its own runs there yet.
void ResetCoprocessor(const CoprocessorConfig& core);

}  // namespace aspis::device::apps
