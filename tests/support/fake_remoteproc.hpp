#pragma once

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "core/fd.hpp"

namespace aspis::testing {

// A coprocessor as Linux's remoteproc shows it, with the test playing the kernel: a sysfs tree
// under `root` (class/remoteproc/remoteproc0 links to its device directory, which holds `state`,
// `firmware` and `recovery`) and a thread that answers what is written there as the kernel does:
// "start" loads <firmware_dir>/<firmware> and runs it (refused while running), making the
// rpmsg-raw endpoint's sysfs directory when the firmware announces one; "stop" goes offline and
// removes it (refused unless running); "recover" in `recovery` runs a crashed core's firmware
// again, as does a crash while `recovery` is "enabled". The endpoint's character device is a
// SOCK_SEQPACKET pair (one message per read and write, as rpmsg_char's): Open gives aspisd one
// end, firmware() is the other, closed when the core stops.
class FakeRemoteproc {
 public:
  // `state`: where the core starts ("offline", "running" as if a bootloader had started it, or
  // "crashed"). `stuck`: it never stops.
  FakeRemoteproc(std::filesystem::path root, std::filesystem::path firmware_dir,
                 bool announces_endpoint = true, const std::string& state = "offline",
                 bool stuck = false);
  ~FakeRemoteproc();
  FakeRemoteproc(const FakeRemoteproc&) = delete;
  FakeRemoteproc& operator=(const FakeRemoteproc&) = delete;

  std::filesystem::path remoteproc() const { return root_ / "class/remoteproc/remoteproc0"; }
  std::filesystem::path dev_dir() const { return root_ / "dev"; }
  const std::filesystem::path& firmware_dir() const { return firmware_dir_; }

  // aspisd opens the endpoint `path` (dev_dir()/rpmsgN while the firmware runs).
  Expected<Fd> Open(const std::filesystem::path& path);
  std::string Recovery() const;  // what `recovery` says
  // A copy of the firmware's end of the endpoint: -1 until aspisd opened it, and once the core
  // stopped.
  Fd firmware();
  std::string State() const;
  std::string loaded() const;  // the image the core last started
  int starts() const { return starts_; }
  // The core crashes: its state becomes "crashed", its endpoint goes.
  void Crash();

 private:
  void Kernel();
  void Set(const std::string& state);
  void Offline();
  void Load();  // runs the firmware `firmware` names, or goes offline

  const std::filesystem::path root_;
  const std::filesystem::path firmware_dir_;
  const std::filesystem::path device_;
  const bool announces_;
  const bool stuck_;
  mutable std::mutex mutex_;
  std::string loaded_;  // guarded by mutex_
  Fd firmware_{-1};     // guarded by mutex_
  std::atomic<int> starts_{0};
  std::string last_;  // what the kernel last set (its thread's)
  std::atomic<bool> stopping_{false};
  std::atomic<bool> crash_{false};  // asked of the kernel's thread
  std::thread kernel_;
};

}  // namespace aspis::testing
