#include "device/apps/sandbox/cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "core/fd.hpp"
#include "device/apps/errors.hpp"

namespace aspis::device::apps::sandbox {

namespace fs = std::filesystem;

namespace {

Error Failed(const std::string& what, int err) {
  return Error(AppsErrc::kCgroup, what + ": " + std::generic_category().message(err));
}

// Control files take one write each; a short or failed write is the kernel refusing the value.
Expected<void> Write(const fs::path& file, const std::string& value) {
  Fd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(Failed("cannot open " + file.string(), errno));
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return std::unexpected(Failed("cannot write \"" + value + "\" to " + file.string(), errno));
  }
  return {};
}

std::string Read(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The number after `key` in a flat-keyed file ("oom_kill 3"); 0 when absent.
std::uint64_t KeyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value) {
    if (name == key) return value;
  }
  return 0;
}

std::uint64_t Number(const fs::path& file) {
  std::uint64_t value = 0;
  std::istringstream(Read(file)) >> value;
  return value;
}

// The group of this process in the hierarchy holding `controller` (v1), or the v2 group when
// `controller` is empty.
std::optional<std::string> OwnGroup(const fs::path& self_cgroup, const std::string& controller) {
  std::istringstream in(Read(self_cgroup));
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controller.empty()
            ? line.substr(0, first) == "0" && controllers.empty()
            : ("," + controllers + ",").find("," + controller + ",") != std::string::npos) {
      return path;
    }
  }
  return std::nullopt;
}

Expected<void> MakeDirectory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return std::unexpected(Failed("cannot make " + dir.string(), ec.value()));
  return {};
}

void KillMembers(const fs::path& dir) {
  std::istringstream in(Read(dir / "cgroup.procs"));
  pid_t pid = 0;
  while (in >> pid) ::kill(pid, SIGKILL);
}

// Removes an emptied group; processes killed a moment ago may still be leaving it.
bool Remove(const fs::path& dir) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    KillMembers(dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// v2 allows controllers in a group's children only while the group holds no process itself, so
// aspisd moves into a leaf of its own group first when it must.
Expected<void> EnableControllers(const fs::path& group) {
  const fs::path control = group / "cgroup.subtree_control";
  constexpr std::string_view kEnable = "+memory +pids";
  {
    Fd fd(::open(control.c_str(), O_WRONLY | O_CLOEXEC));
    if (fd.get() >= 0 &&
        ::write(fd.get(), kEnable.data(), kEnable.size()) == static_cast<ssize_t>(kEnable.size())) {
      return {};
    }
    if (errno != EBUSY) {
      return std::unexpected(Failed("cannot enable memory and pids in " + control.string(), errno));
    }
  }
  if (auto ok = MakeDirectory(group / "aspisd"); !ok) return ok;
  if (auto ok = Write(group / "aspisd" / "cgroup.procs", std::to_string(::getpid())); !ok) {
    return ok;
  }
  if (auto ok = Write(control, std::string(kEnable)); !ok) {
    return std::unexpected(
        Error(AppsErrc::kCgroup, "cannot enable memory and pids below " + group.string() +
                                     ", which holds processes other than aspisd (give aspisd "
                                     "a group of its own, as systemd's Delegate=yes does)"));
  }
  return {};
}

}  // namespace

Expected<CgroupLayout> CgroupLayout::Find(const fs::path& mount_root, const fs::path& self_cgroup,
                                          const std::string& parent) {
  CgroupLayout layout;
  const std::string controllers = " " + Read(mount_root / "cgroup.controllers") + " ";
  if (controllers.find(" memory") != std::string::npos &&
      controllers.find(" pids") != std::string::npos) {
    const auto own = OwnGroup(self_cgroup, "");
    if (!own) return Fail(AppsErrc::kCgroup, "this process's cgroup v2 group is unknown");
    const fs::path group = mount_root / fs::path(*own).relative_path();
    layout.v2 = true;
    layout.unified = group / parent;
    if (auto ok = EnableControllers(group); !ok) return std::unexpected(ok.error());
    if (auto ok = MakeDirectory(layout.unified); !ok) return std::unexpected(ok.error());
    if (auto ok = Write(layout.unified / "cgroup.subtree_control", "+memory +pids"); !ok) {
      return std::unexpected(ok.error());
    }
    return layout;
  }
  const auto memory = OwnGroup(self_cgroup, "memory");
  const auto pids = OwnGroup(self_cgroup, "pids");
  if (!memory || !pids || !fs::is_directory(mount_root / "memory") ||
      !fs::is_directory(mount_root / "pids")) {
    return Fail(AppsErrc::kCgroup,
                "the kernel offers neither cgroup v2 nor v1 hierarchies with memory and pids "
                "controllers under " +
                    mount_root.string());
  }
  layout.memory = mount_root / "memory" / fs::path(*memory).relative_path() / parent;
  layout.pids = mount_root / "pids" / fs::path(*pids).relative_path() / parent;
  if (auto ok = MakeDirectory(layout.memory); !ok) return std::unexpected(ok.error());
  if (auto ok = MakeDirectory(layout.pids); !ok) return std::unexpected(ok.error());
  return layout;
}

Expected<AppCgroup> AppCgroup::Create(const CgroupLayout& layout, const std::string& name,
                                      const CgroupLimits& limits) {
  AppCgroup group(layout.v2, layout.v2
                                 ? std::vector<fs::path>{layout.unified / name}
                                 : std::vector<fs::path>{layout.memory / name, layout.pids / name});
  for (const auto& dir : group.dirs_) {
    if (!Remove(dir))
      return std::unexpected(Failed("cannot remove the old " + dir.string(), errno));
    if (::mkdir(dir.c_str(), 0755) != 0) {
      return std::unexpected(Failed("cannot make " + dir.string(), errno));
    }
  }
  const std::string memory = std::to_string(limits.memory_bytes);
  const std::string processes = std::to_string(limits.max_processes);
  const fs::path& memory_dir = group.dirs_.front();
  const fs::path& pids_dir = group.dirs_.back();
  Expected<void> ok;
  if (layout.v2) {
    ok = Write(memory_dir / "memory.max", memory);
    if (ok && fs::exists(memory_dir / "memory.swap.max"))
      ok = Write(memory_dir / "memory.swap.max", "0");
  } else {
    ok = Write(memory_dir / "memory.limit_in_bytes", memory);
    // With swap accounting, memory and swap together stay within the limit.
    if (ok && fs::exists(memory_dir / "memory.memsw.limit_in_bytes")) {
      ok = Write(memory_dir / "memory.memsw.limit_in_bytes", memory);
    }
  }
  if (ok) ok = Write(pids_dir / "pids.max", processes);
  if (!ok) return std::unexpected(ok.error());
  return group;
}

AppCgroup::AppCgroup(AppCgroup&& other) noexcept
    : v2_(other.v2_), dirs_(std::exchange(other.dirs_, {})) {}

AppCgroup& AppCgroup::operator=(AppCgroup&& other) noexcept {
  if (this != &other) {
    Destroy();
    v2_ = other.v2_;
    dirs_ = std::exchange(other.dirs_, {});
  }
  return *this;
}

AppCgroup::~AppCgroup() { Destroy(); }

Expected<void> AppCgroup::Attach(pid_t pid) const {
  for (const auto& dir : dirs_) {
    if (auto ok = Write(dir / "cgroup.procs", std::to_string(pid)); !ok) return ok;
  }
  return {};
}

Expected<CgroupUsage> AppCgroup::Usage() const {
  if (dirs_.empty()) return Fail(AppsErrc::kCgroup, "the group was removed");
  const fs::path& memory = dirs_.front();
  const fs::path& pids = dirs_.back();
  CgroupUsage usage;
  if (v2_) {
    usage.memory_bytes = Number(memory / "memory.current");
    usage.memory_peak = Number(memory / "memory.peak");
    usage.oom_kills = KeyedValue(Read(memory / "memory.events"), "oom_kill");
  } else {
    usage.memory_bytes = Number(memory / "memory.usage_in_bytes");
    usage.memory_peak = Number(memory / "memory.max_usage_in_bytes");
    usage.oom_kills = KeyedValue(Read(memory / "memory.oom_control"), "oom_kill");
  }
  usage.process_limit_hits = KeyedValue(Read(pids / "pids.events"), "max");
  return usage;
}

void AppCgroup::Destroy() {
  for (const auto& dir : dirs_) {
    if (!v2_ || !fs::exists(dir / "cgroup.kill") || !Write(dir / "cgroup.kill", "1")) {
      KillMembers(dir);
    }
    Remove(dir);
  }
  dirs_.clear();
}

std::vector<fs::path> AppCgroup::directories() const { return dirs_; }

}  // namespace aspis::device::apps::sandbox
