#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"

// The control groups that bound an app's memory and number of processes (DESIGN section 6), on
// cgroup v2 where the kernel offers memory and pids there, otherwise on cgroup v1's memory and
// pids hierarchies. Each app's group is made below the group aspisd runs in, so that aspisd's own
// limits (a service manager's) bound its apps too.
namespace aspis::device::apps::sandbox {

struct CgroupLimits {
  std::uint64_t memory_bytes = std::uint64_t{64} << 20;  // memory and swap together
  std::uint32_t max_processes = 64;                      // processes and threads
};

struct CgroupUsage {
  std::uint64_t memory_bytes = 0;  // in use now
  std::uint64_t memory_peak = 0;   // most in use since the group was made
  std::uint64_t oom_kills = 0;     // processes the kernel killed for reaching the memory limit
  std::uint64_t process_limit_hits = 0;  // forks refused for reaching the process limit
};

// Where the groups live: found once per daemon.
struct CgroupLayout {
  bool v2 = false;
  std::filesystem::path unified;  // v2: the parent of every app's group
  std::filesystem::path memory;   // v1: the parent in the memory hierarchy
  std::filesystem::path pids;     // v1: the parent in the pids hierarchy

  // Looks under `mount_root` (normally /sys/fs/cgroup) for v2 with memory and pids, then for v1
  // memory and pids hierarchies, and makes `parent` below the group this process is in
  // (`self_cgroup`, normally /proc/self/cgroup). Errors: kCgroup, saying what is missing.
  static Expected<CgroupLayout> Find(const std::filesystem::path& mount_root,
                                     const std::filesystem::path& self_cgroup,
                                     const std::string& parent);
};

// One app's group: made with its limits, removed on destruction once empty (Destroy kills what
// is left). Not thread-safe.
class AppCgroup {
 public:
  // `name` is a path segment (the app's component ID). An old group of that name left behind by
  // a killed aspisd is emptied and reused. Errors: kCgroup.
  static Expected<AppCgroup> Create(const CgroupLayout& layout, const std::string& name,
                                    const CgroupLimits& limits);
  AppCgroup(AppCgroup&& other) noexcept;
  AppCgroup& operator=(AppCgroup&& other) noexcept;
  AppCgroup(const AppCgroup&) = delete;
  AppCgroup& operator=(const AppCgroup&) = delete;
  ~AppCgroup();

  // Moves process `pid` into the group. Errors: kCgroup.
  Expected<void> Attach(pid_t pid) const;
  // Errors: kCgroup.
  Expected<CgroupUsage> Usage() const;
  // SIGKILLs every process left in the group and removes it. Idempotent.
  void Destroy();

  // The group's directories: one for v2, memory then pids for v1.
  std::vector<std::filesystem::path> directories() const;

 private:
  AppCgroup(bool v2, std::vector<std::filesystem::path> dirs) : v2_(v2), dirs_(std::move(dirs)) {}

  bool v2_ = false;
  std::vector<std::filesystem::path> dirs_;
};

}  // namespace aspis::device::apps::sandbox
