// The cost of the app sandbox, each figure beside the same thing done without it in the same
// run (the hostile test app, tests/apps/hostile_app.c, is the app):
//  - install to running: the update agent verifies and unpacks the signed app package, switches
//    `current`, and the app manager starts it in its sandbox, until the app says it runs;
//  - restart: the running app is killed, and the app manager (restart delay 0) starts it again
//    until it says it runs;
//  - start: from Sandbox::Start until the app says it is running, beside fork + exec of the same
//    program until it says so (what restarting an app costs, less the restart delay);
//  - connect: one TCP connect and close to 127.0.0.1 mediated by aspisd (socket and connect go
//    through the seccomp listener and aspisd performs them), beside the same loop run directly;
//  - memory: what the sandbox adds per app (the init's proportional set size, and the cgroup's
//    charge), printed beside the app's own resident size run plainly.
// Needs root and the memory and pids cgroup controllers:
//   build/release/bench/app_bench
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "device/apps/app_manager.hpp"
#include "device/apps/sandbox/cgroup.hpp"
#include "device/apps/sandbox/sandbox.hpp"
#include "device/apps/sandbox/seccomp_policy.hpp"
#include "device/state/state_store.hpp"
#include "device/update/app_agent.hpp"
#include "device/update/app_health.hpp"
#include "limit_reporter.hpp"
#include "support/app_package.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace aspis;
using namespace aspis::device::apps::sandbox;
namespace apps = aspis::device::apps;
namespace update = aspis::device::update;
namespace fs = std::filesystem;

constexpr char kComponent[] = "6f1c2b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b";
constexpr int kConnects = 2000;

struct Fixture {
  testing::TempDir dir;
  CgroupLayout layout;
  SeccompProgram filter;
  fs::path image;
  int runs = 0;

  Fixture() {
    layout = *CgroupLayout::Find("/sys/fs/cgroup", "/proc/self/cgroup",
                                 "aspis-bench-" + std::to_string(::getpid()));
    filter = *BuildAppFilter();
    image = dir / "image";
    fs::create_directories(image / "bin");
    fs::copy_file(ASPIS_HOSTILE_APP, image / "bin" / "app");
  }
  ~Fixture() {
    for (const auto& parent : {layout.unified, layout.memory, layout.pids}) {
      if (!parent.empty()) ::rmdir(parent.c_str());
    }
  }

  SandboxSpec Spec(std::vector<std::string> args, int output, package::AppCapabilities grants) {
    SandboxSpec spec;
    spec.name = "bench";
    spec.component_id = kComponent;
    spec.image = image;
    spec.entry_point = "/bin/app";
    spec.args = std::move(args);
    spec.run_dir = dir / ("run-" + std::to_string(++runs));
    spec.uid = spec.gid = 7340200;
    spec.output = output;
    spec.network = std::make_shared<AppNetwork>(grants, [](const Denial&) {});
    return spec;
  }
};

Fixture& Shared() {
  static Fixture fixture;
  return fixture;
}

std::string ReadLine(int fd) {
  std::string line;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

struct Pipe {
  Fd read{-1};
  Fd write{-1};
  Pipe() {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) == 0) {
      read = Fd(fds[0]);
      write = Fd(fds[1]);
    }
  }
};

// Runs the app plainly: fork + exec, its output on `out`.
pid_t Spawn(const std::vector<std::string>& args, int out) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out, 1);
    std::vector<char*> argv;
    std::string program = ASPIS_HOSTILE_APP;
    argv.push_back(program.data());
    std::vector<std::string> copies = args;
    for (auto& arg : copies) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

void SandboxStart(benchmark::State& state) {
  Fixture& f = Shared();
  for (auto _ : state) {
    Pipe pipe;
    auto cgroup = AppCgroup::Create(f.layout, "bench", {});
    auto sandbox = Sandbox::Start(f.Spec({"sleep"}, pipe.write.get(), {}), f.filter, *cgroup, {});
    pipe.write = Fd(-1);
    if (!sandbox || ReadLine(pipe.read.get()) != "sleeping") {
      state.SkipWithError("the sandbox did not start");
      return;
    }
    state.PauseTiming();
    (*sandbox)->Stop(std::chrono::milliseconds(0));
    state.ResumeTiming();
  }
}

void PlainStart(benchmark::State& state) {
  for (auto _ : state) {
    Pipe pipe;
    const pid_t pid = Spawn({"sleep"}, pipe.write.get());
    pipe.write = Fd(-1);
    if (ReadLine(pipe.read.get()) != "sleeping") state.SkipWithError("the app did not start");
    state.PauseTiming();
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    state.ResumeTiming();
  }
}

// The app as the update agent installs it and the app manager runs it, as aspisd does: a signed
// package of the test app, verified and unpacked, its `current` switched, then started in its
// sandbox; its output on `lines`.
class Device {
 public:
  Device() {
    keys_.Add(key_.Public());
    (void)file::EnsureDirectory(dir_ / "state", 0700);
    package_ = Pack();
    Pipe pipe;
    lines_ = std::move(pipe.read);
    output_ = std::move(pipe.write);
    Fixture& f = Shared();
    manager_ = std::move(*apps::AppManager::Create({.apps_dir = dir_ / "apps",
                                                    .run_dir = dir_ / "run",
                                                    .cgroups = f.layout,
                                                    .limits = {},
                                                    .first_uid = 7340300,
                                                    .restart_delay = std::chrono::milliseconds(0),
                                                    .storage_dir = dir_ / "storage",
                                                    .output = output_.get()},
                                                   {}));
    agent_.emplace(std::move(*update::AppAgent::Open(
        {.store = store_,
         .apps_dir = dir_ / "apps",
         .publishers = [this] { return package::Publishers{.apps = &keys_}; },
         .health = update::CheckAppRunsHere,
         .stop = [this](const std::string& c) { manager_->Stop(c, false); },
         .settled =
             [this](const std::string& c) {
               if (auto ok = manager_->Start(c); !ok)
                 std::fprintf(stderr, "%s\n", ok.error().message().c_str());
             },
         .removed = [this](const std::string& c) { manager_->Remove(c); }})));
  }

  // Installs the app; returns once it said it runs.
  bool Install() {
    if (!agent_->Install({kComponent, image_, "1.0", 1, package_})) return false;
    return ReadLine(lines_.get()) == "sleeping";
  }
  // Removes it (not timed); the app says it was stopped.
  bool Remove() { return agent_->Retire({}) && ReadLine(lines_.get()) == "terminated"; }
  // Kills the running app and returns once the manager restarted it and it said it runs.
  bool Restart() {
    const auto status = manager_->Status(kComponent);
    if (!status || status->pid <= 0) return false;
    ::kill(status->pid, SIGKILL);
    return ReadLine(lines_.get()) == "sleeping";
  }

 private:
  fs::path Pack() {
    const fs::path tree = dir_ / "tree";
    fs::create_directories(tree / "bin");
    fs::copy_file(ASPIS_HOSTILE_APP, tree / "bin/app");
    std::ofstream(tree / "app_manifest.json")
        << R"({"SchemaVersion": 1, "Name": "bench", "ComponentId": ")" << kComponent
        << R"(", "EntryPoint": "/bin/app", "CmdArgs": ["sleep"], "Capabilities": {}})";
    const fs::path path = dir_ / "app.aspkg";
    auto m = testing::PackApp(tree, path, key_, "1.0");
    image_ = m ? m->image_id : "";
    return path;
  }

  testing::TempDir dir_;
  device::state::StateStore store_{file::RealFileSystem(), dir_ / "state"};
  crypto::PrivateKey key_ = *crypto::PrivateKey::GenerateP256();
  crypto::dsse::TrustedKeys keys_;
  fs::path package_;
  std::string image_;
  Fd lines_{-1};
  Fd output_{-1};
  std::unique_ptr<apps::AppManager> manager_;
  std::optional<update::AppAgent> agent_;
};

void InstallToRunning(benchmark::State& state) {
  Device device;
  for (auto _ : state) {
    if (!device.Install()) {
      state.SkipWithError("the app was not installed and started");
      return;
    }
    state.PauseTiming();
    if (!device.Remove()) {
      state.SkipWithError("the app was not removed");
      return;
    }
    state.ResumeTiming();
  }
}

void Restart(benchmark::State& state) {
  Device device;
  if (!device.Install()) {
    state.SkipWithError("the app was not installed and started");
    return;
  }
  for (auto _ : state) {
    if (!device.Restart()) {
      state.SkipWithError("the app was not restarted");
      return;
    }
  }
}

// A listener that accepts and closes, for the connect loops.
struct Listener {
  Fd socket{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  int port = 0;
  std::jthread thread;
  Listener() {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
    socklen_t size = sizeof(address);
    ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&address), &size);
    port = ntohs(address.sin_port);
    ::listen(socket.get(), 4096);
    thread = std::jthread([this](const std::stop_token& stop) {
      while (!stop.stop_requested()) {
        const int client = ::accept4(socket.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) return;
        ::close(client);
      }
    });
  }
  ~Listener() {
    thread.request_stop();
    ::shutdown(socket.get(), SHUT_RDWR);
  }
};

// Runs the app's connect loop; sets the iteration time to its own measurement per connect.
void ConnectLoop(benchmark::State& state, bool sandboxed) {
  Fixture& f = Shared();
  Listener listener;
  const std::vector<std::string> args = {"connect-loop", "127.0.0.1", std::to_string(listener.port),
                                         std::to_string(kConnects)};
  package::AppCapabilities grants;
  grants.allowed_connections = {"127.0.0.1"};
  for (auto _ : state) {
    Pipe pipe;
    std::string line;
    if (sandboxed) {
      auto cgroup = AppCgroup::Create(f.layout, "bench", {});
      auto sandbox = Sandbox::Start(f.Spec(args, pipe.write.get(), grants), f.filter, *cgroup, {});
      pipe.write = Fd(-1);
      line = ReadLine(pipe.read.get());
      if (sandbox) (*sandbox)->Wait(std::chrono::milliseconds(-1));
    } else {
      const pid_t pid = Spawn(args, pipe.write.get());
      pipe.write = Fd(-1);
      line = ReadLine(pipe.read.get());
      ::waitpid(pid, nullptr, 0);
    }
    const double ns = std::atof(line.c_str());
    if (ns <= 0) {
      state.SkipWithError(("the connect loop failed: " + line).c_str());
      return;
    }
    state.SetIterationTime(ns / 1e9 / kConnects);
  }
}

void MediatedConnect(benchmark::State& state) { ConnectLoop(state, true); }
void PlainConnect(benchmark::State& state) { ConnectLoop(state, false); }

std::uint64_t StatusKib(pid_t pid, const std::string& file, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key)) {
      std::istringstream fields(line.substr(key.size()));
      std::uint64_t kib = 0;
      fields >> kib;
      return kib;
    }
  }
  return 0;
}

// Not timed: what one sandboxed app costs in memory, beside the app itself run plainly.
void PrintMemory() {
  Fixture& f = Shared();
  Pipe pipe;
  auto cgroup = AppCgroup::Create(f.layout, "bench-memory", {});
  auto sandbox = Sandbox::Start(f.Spec({"sleep"}, pipe.write.get(), {}), f.filter, *cgroup, {});
  pipe.write = Fd(-1);
  if (!sandbox || ReadLine(pipe.read.get()) != "sleeping") return;
  const std::uint64_t init_pss = StatusKib((*sandbox)->pid(), "smaps_rollup", "Pss:");
  const std::uint64_t charged = cgroup->Usage().value_or(CgroupUsage{}).memory_bytes >> 10;
  (*sandbox)->Stop(std::chrono::milliseconds(0));
  Pipe plain_pipe;
  const pid_t pid = Spawn({"sleep"}, plain_pipe.write.get());
  plain_pipe.write = Fd(-1);
  ReadLine(plain_pipe.read.get());
  const std::uint64_t plain_rss = StatusKib(pid, "status", "VmRSS:");
  const std::uint64_t plain_pss = StatusKib(pid, "smaps_rollup", "Pss:");
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  std::printf(
      "\nmemory per app: sandbox init PSS %llu KiB, cgroup charge (app, init, tmpfs, "
      "kernel) %llu KiB; the app run plainly: RSS %llu KiB, PSS %llu KiB\n",
      static_cast<unsigned long long>(init_pss), static_cast<unsigned long long>(charged),
      static_cast<unsigned long long>(plain_rss), static_cast<unsigned long long>(plain_pss));
}

}  // namespace

BENCHMARK(InstallToRunning)->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(Restart)->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(SandboxStart)->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(PlainStart)->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK(MediatedConnect)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(5);
BENCHMARK(PlainConnect)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(5);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  aspis::bench::LimitReporter reporter(
      {{"InstallToRunning/min_time:2.000", "PlainStart/min_time:2.000"},
       {"Restart/min_time:2.000", "PlainStart/min_time:2.000"},
       {"SandboxStart/min_time:2.000", "PlainStart/min_time:2.000"},
       {"MediatedConnect/iterations:5/manual_time", "PlainConnect/iterations:5/manual_time"}});
  benchmark::RunSpecifiedBenchmarks(&reporter);
  PrintMemory();
  benchmark::Shutdown();
  return 0;
}
