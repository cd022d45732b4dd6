// Real-time app wake-up latency: how late a periodic wake-up comes (p50, p99, max), measured by
// one program (bench/apps/rt_latency_app.c, cyclictest's method: clock_nanosleep to an absolute
// time, then read the clock) run three ways in the same run, while a busy loop at normal priority
// runs on every CPU:
//  - as a real-time capable app, through the app manager: sandboxed, pinned, SCHED_FIFO;
//  - the limit: the same program started directly, pinned to the same CPU under SCHED_FIFO at the
//    same priority (what a real-time app could get with no sandbox at all);
//  - for reference: the same program under the normal policy.
// Needs root and the memory and pids cgroup controllers:
//   build/release/bench/rt_latency_bench [wake-ups] [interval-us]
#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "device/apps/app_manager.hpp"
#include "device/apps/sandbox/cgroup.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace aspis;
namespace apps = aspis::device::apps;
namespace fs = std::filesystem;

constexpr char kComponent[] = "7a1e3c5b-2d4f-4a6b-9c8d-0e1f2a3b4c5d";
constexpr int kPriority = 50;

// The first line `fd` gives.
std::string ReadLine(int fd) {
  std::string line;
  for (char c = 0; ::read(fd, &c, 1) == 1 && c != '\n';) line += c;
  return line;
}

// The program's line, run directly; under SCHED_FIFO pinned to `cpu` when given.
std::string RunDirectly(const std::vector<std::string>& args, std::optional<int> cpu) {
  std::array<int, 2> pipe{};
  if (::pipe2(pipe.data(), O_CLOEXEC) != 0) return "no pipe";
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {
    ::dup2(pipe[1], 1);
    if (cpu) {
      cpu_set_t cpus;
      CPU_ZERO(&cpus);
      CPU_SET(*cpu, &cpus);
      const sched_param param{.sched_priority = kPriority};
      if (::sched_setaffinity(0, sizeof(cpus), &cpus) != 0 ||
          ::sched_setscheduler(0, SCHED_FIFO, &param) != 0) {
        ::_exit(3);
      }
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(pipe[1]);
  std::string line = ReadLine(pipe[0]);
  ::close(pipe[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  return line.empty() ? "failed (status " + std::to_string(status) + ")" : line;
}

// The program's line, run as a real-time capable app pinned to `cpu`.
std::string RunAsApp(const std::vector<std::string>& args, int cpu) {
  testing::TempDir dir;
  auto layout = device::apps::sandbox::CgroupLayout::Find(
      "/sys/fs/cgroup", "/proc/self/cgroup", "aspis-rt-bench-" + std::to_string(::getpid()));
  if (!layout) return layout.error().message();
  const fs::path version = dir / "apps" / kComponent / "image-1";
  fs::create_directories(version / "bin");
  fs::copy_file(args[0], version / "bin" / "app");
  std::ofstream(version / "app_manifest.json")
      << R"({"SchemaVersion": 1, "Name": "rt-latency", "ComponentId": ")" << kComponent
      << R"(", "EntryPoint": "/bin/app", "CmdArgs": [")" << args[1] << R"(", ")" << args[2]
      << R"(", "stay"], "ApplicationType": "RealTimeCapable", "Capabilities": {}})";
  fs::create_directory_symlink("image-1", dir / "apps" / kComponent / "current");
  std::array<int, 2> pipe{};
  if (::pipe2(pipe.data(), O_CLOEXEC) != 0) return "no pipe";
  apps::AppManagerParts parts;
  parts.apps_dir = dir / "apps";
  parts.run_dir = dir / "run";
  parts.storage_dir = dir / "storage";
  parts.cgroups = *layout;
  parts.output = pipe[1];
  parts.real_time_cpus = std::vector<int>{cpu};
  parts.real_time_priority = kPriority;
  std::string line;
  {
    auto manager = apps::AppManager::Create(parts, nullptr);
    if (!manager) return manager.error().message();
    (*manager)->StartAll();
    line = ReadLine(pipe[0]);
  }
  ::close(pipe[0]);
  ::close(pipe[1]);
  for (const auto& parent : {layout->unified, layout->memory, layout->pids}) {
    if (!parent.empty()) ::rmdir(parent.c_str());
  }
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string wakeups = argc > 1 ? argv[1] : "5000";
  const std::string interval = argc > 2 ? argv[2] : "1000";
  const std::vector<std::string> args = {ASPIS_RT_LATENCY_APP, wakeups, interval};
  const int cpus = static_cast<int>(std::thread::hardware_concurrency());
  const int cpu = cpus - 1;
  std::atomic<bool> busy = true;
  std::vector<std::thread> load;
  for (int i = 0; i < cpus; ++i) {
    load.emplace_back([&busy] {
      while (busy.load(std::memory_order_relaxed)) {
      }
    });
  }
  std::printf(
      "wake-up latency: %s wake-ups every %s us, CPU %d, %d busy threads at normal "
      "priority\n\n",
      wakeups.c_str(), interval.c_str(), cpu, cpus);
  const std::string app = RunAsApp(args, cpu);
  const std::string limit = RunDirectly(args, cpu);
  const std::string normal = RunDirectly(args, std::nullopt);
  busy = false;
  for (auto& thread : load) thread.join();
  std::printf("%-52s %s\n", "real-time app (sandboxed, pinned, SCHED_FIFO)", app.c_str());
  std::printf("%-52s %s\n", "limit: same program, pinned, SCHED_FIFO, no sandbox", limit.c_str());
  std::printf("%-52s %s\n", "reference: same program, normal policy", normal.c_str());
  return 0;
}
