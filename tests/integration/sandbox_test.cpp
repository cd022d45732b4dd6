// The app sandbox on the real kernel: namespaces, the privilege drop, seccomp with reported
// denials, and cgroup limits, against a hostile app (tests/apps/hostile_app.c) that tries each
// escape. Every refusal has a positive twin that the same sandbox allows.
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/file.hpp"
#include "device/apps/sandbox/cgroup.hpp"
#include "device/apps/sandbox/sandbox.hpp"
#include "device/apps/sandbox/seccomp_policy.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::apps::sandbox {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uid_t kAppUid = 7340100;
constexpr char kComponent[] = "6f1c2b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b";

const SeccompProgram& Filter() {
  static const SeccompProgram filter = *BuildAppFilter();
  return filter;
}

// Answers "pong" to whatever arrives, over TCP and UDP on one port of 127.0.0.1, until destroyed.
class EchoServer {
 public:
  EchoServer()
      : tcp_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)),
        udp_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (;;) {
      address.sin_port = htons(static_cast<std::uint16_t>(testing::FreePort()));
      if (::bind(tcp_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
          ::bind(udp_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
        break;
      }
      tcp_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      udp_ = Fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    }
    port_ = ntohs(address.sin_port);
    ::listen(tcp_.get(), 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~EchoServer() {
    ::shutdown(tcp_.get(), SHUT_RDWR);
    ::shutdown(udp_.get(), SHUT_RDWR);
    thread_.join();
  }
  std::string port() const { return std::to_string(port_); }

 private:
  void Serve() {
    for (;;) {
      std::array<pollfd, 2> fds{{{tcp_.get(), POLLIN, 0}, {udp_.get(), POLLIN, 0}}};
      ::poll(fds.data(), fds.size(), -1);
      if ((fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) return;
      std::array<char, 64> buffer{};
      if ((fds[0].revents & POLLIN) != 0) {
        Fd client(::accept4(tcp_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (client.get() < 0) return;
        if (::recv(client.get(), buffer.data(), buffer.size(), 0) > 0) {
          ::send(client.get(), "pong", 4, MSG_NOSIGNAL);
        }
      }
      if ((fds[1].revents & POLLIN) != 0) {
        sockaddr_storage from{};
        socklen_t size = sizeof(from);
        if (::recvfrom(udp_.get(), buffer.data(), buffer.size(), 0,
                       reinterpret_cast<sockaddr*>(&from), &size) > 0) {
          ::sendto(udp_.get(), "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), size);
        }
      }
    }
  }

  Fd tcp_;
  Fd udp_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

struct AppRun {
  AppExit exit;
  std::string output;
  std::vector<Denial> denials;
  CgroupUsage usage;

  bool Denied(const std::string& syscall) const { return Has("syscall", syscall); }
  bool Has(const std::string& what, const std::string& detail) const {
    for (const auto& d : denials) {
      if (d.what == what && d.detail == detail) return true;
    }
    return false;
  }
};

// One line from `fd`, without its newline (blocking until it is there).
std::string ReadLine(int fd) {
  std::string line;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

class Sandbox : public ::testing::Test {
 protected:
  void SetUp() override {
    auto layout = CgroupLayout::Find("/sys/fs/cgroup", "/proc/self/cgroup",
                                     "aspis-sandbox-test-" + std::to_string(::getpid()));
    ASSERT_TRUE(layout) << layout.error().message();
    layout_ = *layout;
    ASSERT_TRUE(BuildAppFilter()) << BuildAppFilter().error().message();
    image_ = dir_ / "image";
    fs::create_directories(image_ / "bin");
    fs::copy_file(ASPIS_HOSTILE_APP, image_ / "bin" / "app");
    fs::create_directories(dir_ / "root");
  }
  void TearDown() override {
    for (const auto& parent : {layout_.unified, layout_.memory, layout_.pids}) {
      if (!parent.empty()) ::rmdir(parent.c_str());
    }
  }

  SandboxSpec Spec(std::vector<std::string> args, const std::string& name = "hostile") {
    SandboxSpec spec;
    spec.name = name;
    spec.component_id = kComponent;
    spec.image = image_;
    spec.entry_point = "/bin/app";
    spec.args = std::move(args);
    spec.run_dir = dir_ / ("run-" + name);
    spec.uid = kAppUid;
    spec.gid = kAppUid;
    return spec;
  }

  struct Started {
    std::unique_ptr<sandbox::Sandbox> sandbox;
    AppCgroup cgroup;
    fs::path output;
    Fd pipe{-1};  // the read end of the app's output, when it is a pipe
  };

  Started Start(SandboxSpec spec, const CgroupLimits& limits = {}) {
    auto cgroup = AppCgroup::Create(layout_, spec.name, limits);
    EXPECT_TRUE(cgroup) << cgroup.error().message();
    const fs::path output = dir_ / (spec.name + std::to_string(++runs_) + ".out");
    Fd out(::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (spec.output < 0) spec.output = out.get();
    auto sandbox = sandbox::Sandbox::Start(spec, Filter(), *cgroup, [this](const Denial& d) {
      std::lock_guard lock(mutex_);
      denials_.push_back(d);
    });
    EXPECT_TRUE(sandbox) << sandbox.error().message();
    return {sandbox ? std::move(*sandbox) : nullptr, std::move(*cgroup), output};
  }

  // `run` with what the app wrote to `output` and every denial so far.
  AppRun Finish(AppRun run, const fs::path& output) {
    std::ifstream in(output);
    std::stringstream text;
    text << in.rdbuf();
    run.output = text.str();
    std::lock_guard lock(mutex_);
    run.denials = denials_;
    return run;
  }

  // Starts an app that says `ready` ("sleeping" once its signal handling is set), and waits for
  // that.
  Started StartReady(SandboxSpec spec, const std::string& ready = "sleeping") {
    std::array<int, 2> pipe{};
    EXPECT_EQ(::pipe2(pipe.data(), O_CLOEXEC), 0);
    Fd read_end(pipe[0]);
    Fd write_end(pipe[1]);
    spec.output = write_end.get();
    auto started = Start(spec);
    write_end = Fd(-1);
    if (started.sandbox) {
      EXPECT_EQ(ReadLine(read_end.get()), ready);
    }
    started.pipe = std::move(read_end);  // kept open: the app writes again when it ends
    return started;
  }

  // Another app that runs beside every app of the test: it must run on, and stop when asked, as
  // before (CheckBystander).
  void StartBystander(const std::function<void(SandboxSpec&)>& adjust = {}) {
    auto spec = Spec({"sleep"}, "bystander");
    if (adjust) adjust(spec);
    bystander_.emplace(StartReady(spec));
    ASSERT_TRUE(bystander_->sandbox);
  }
  void CheckBystander() {
    if (!bystander_ || !bystander_->sandbox) return;
    EXPECT_EQ(bystander_->sandbox->Wait(milliseconds(0)), std::nullopt) << "the other app was hurt";
    EXPECT_EQ(bystander_->sandbox->Stop(seconds(10)).Describe(), "exited with code 0");
    bystander_.reset();
  }

  // Runs the hostile app with `args` to its end.
  AppRun RunApp(std::vector<std::string> args, const CgroupLimits& limits = {},
                const std::function<void(SandboxSpec&)>& adjust = {}) {
    auto spec = Spec(std::move(args));
    if (adjust) adjust(spec);
    auto started = Start(spec, limits);
    AppRun run;
    if (!started.sandbox) return run;
    run.exit = *started.sandbox->Wait(milliseconds(-1));
    run.usage = started.cgroup.Usage().value_or(CgroupUsage{});
    started.sandbox.reset();
    return Finish(std::move(run), started.output);
  }

  // What an app with `capabilities` may reach, its denials joining the others.
  std::function<void(SandboxSpec&)> Granted(package::AppCapabilities capabilities) {
    return [this, capabilities](SandboxSpec& spec) {
      spec.network = std::make_shared<AppNetwork>(capabilities, [this](const Denial& d) {
        std::lock_guard lock(mutex_);
        denials_.push_back(d);
      });
      spec.resolver = resolver_.get();
    };
  }
  static package::AppCapabilities Connections(std::vector<std::string> allowed) {
    package::AppCapabilities capabilities;
    capabilities.allowed_connections = std::move(allowed);
    return capabilities;
  }
  // Starts aspisd's resolvers on port 53 of 127.83.0.0/16, from a /24 of this process's (by its
  // pid), so that test processes running in parallel, each app taking the first address free,
  // seldom meet: a test that frees an address finds it free again.
  void StartResolver(AppResolver::Lookup lookup = AppResolver::SystemLookup,
                     AppResolver::Servers servers = {}) {
    auto resolver =
        AppResolver::Start(FirstResolverAddress(), 53, std::move(lookup), std::move(servers));
    ASSERT_TRUE(resolver) << resolver.error().message();
    resolver_ = std::move(*resolver);
  }
  static std::string FirstResolverAddress() {
    return "127.83." + std::to_string(1 + ::getpid() % 250) + ".1";
  }
  // The resolver the sandbox of the app `name` names in its resolv.conf.
  std::string ResolverOf(const std::string& name) const {
    std::ifstream in(dir_ / ("run-" + name) / "resolv.conf");
    std::string word;
    std::string address;
    in >> word >> address;
    EXPECT_EQ(word, "nameserver");
    return address;
  }

  testing::TempDir dir_;
  std::unique_ptr<AppResolver> resolver_;
  std::optional<Started> bystander_;
  fs::path image_;
  CgroupLayout layout_;
  std::mutex mutex_;
  std::vector<Denial> denials_;
  int runs_ = 0;
};

TEST_F(Sandbox, AnAppRunsAsItsOwnUserWithNoCapabilitiesUnderSeccompInItsOwnNamespaces) {
  const AppRun run = RunApp({"status"});
  EXPECT_EQ(run.exit.Describe(), "exited with code 0");
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_NE(run.output.find(std::string(set) + ":\t0000000000000000"), std::string::npos)
        << set << " in " << run.output;
  }
  EXPECT_NE(run.output.find("NoNewPrivs:\t1"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("Seccomp:\t2"), std::string::npos) << run.output;
  const std::string ids = "uid " + std::to_string(kAppUid) + " euid " + std::to_string(kAppUid) +
                          " gid " + std::to_string(kAppUid) + " pid 2 host hostile";
  EXPECT_NE(run.output.find(ids), std::string::npos) << run.output;
  EXPECT_TRUE(run.denials.empty());
}

TEST_F(Sandbox, AnAppMayForkWriteItsTmpReadItsImageAndUseUnixSockets) {
  EXPECT_EQ(RunApp({"fork"}).output, "fork allowed\n");
  EXPECT_EQ(RunApp({"write", "/tmp/scratch"}).output, "write allowed\n");
  EXPECT_EQ(RunApp({"read", std::string("/mnt/apps/") + kComponent + "/bin/app"}).output,
            "read allowed\n");
  const AppRun run = RunApp({"unix-socket"});
  EXPECT_EQ(run.output, "unix-socket allowed\n");
  EXPECT_TRUE(run.denials.empty());
}

// Each escape: the app is refused with EPERM by aspisd (the seccomp listener), and the denial
// names the call.
struct Escape {
  const char* mode;
  const char* syscall;
};

class SandboxEscape : public Sandbox, public ::testing::WithParamInterface<Escape> {};

TEST_P(SandboxEscape, IsDeniedAndReported) {
  auto bystander = StartReady(Spec({"sleep"}, "bystander"));
  ASSERT_TRUE(bystander.sandbox);
  const AppRun run = RunApp({GetParam().mode});
  EXPECT_TRUE(run.output.ends_with(std::string(GetParam().mode) + " denied EPERM\n")) << run.output;
  EXPECT_TRUE(run.Denied(GetParam().syscall)) << "no denial of " << GetParam().syscall;
  EXPECT_EQ(run.exit.Describe(), "exited with code 0");
  // The other app runs on, and stops when asked, as before.
  EXPECT_EQ(bystander.sandbox->Wait(milliseconds(0)), std::nullopt);
  EXPECT_EQ(bystander.sandbox->Stop(std::chrono::seconds(10)).Describe(), "exited with code 0");
}

INSTANTIATE_TEST_SUITE_P(Attacks, SandboxEscape,
                         ::testing::Values(Escape{"ptrace", "ptrace"}, Escape{"mount", "mount"},
                                           Escape{"unshare", "unshare"}, Escape{"setns", "setns"},
                                           Escape{"clone-namespace", "clone"},
                                           Escape{"module", "finit_module"},
                                           Escape{"raw-socket", "socket"},
                                           Escape{"packet-socket", "socket"},
                                           Escape{"open-by-handle", "name_to_handle_at"},
                                           Escape{"chroot", "chroot"}, Escape{"setuid", "setuid"}),
                         [](const auto& test) {
                           std::string name = test.param.mode;
                           std::erase(name, '-');
                           return name;
                         });

TEST_F(Sandbox, SandboxEscapeByWritingItsOwnImageFailsAndRemountingItIsDenied) {
  const std::string entry = std::string("/mnt/apps/") + kComponent + "/bin/app";
  EXPECT_EQ(RunApp({"write", entry}).output, "write denied EROFS\n");
  EXPECT_EQ(RunApp({"write", std::string("/mnt/apps/") + kComponent + "/new"}).output,
            "write denied EROFS\n");
  const AppRun run = RunApp({"remount", std::string("/mnt/apps/") + kComponent});
  EXPECT_EQ(run.output, "remount denied EPERM\n");
  EXPECT_TRUE(run.Denied("mount"));
}

TEST_F(Sandbox, SandboxEscapeToTheDevicesFilesFindsNothingOutsideTheSandbox) {
  fs::create_directories(dir_ / "other-app");
  std::ofstream(dir_ / "other-app" / "secret") << "another app's file";
  ::chmod(dir_.path().c_str(), 0755);
  for (const fs::path& path : {dir_ / "other-app" / "secret", fs::path("/etc/shadow"),
                               fs::path("/var/lib/aspisd"), fs::path("/root")}) {
    EXPECT_EQ(RunApp({"read", path.string()}).output, "read denied ENOENT\n") << path;
  }
  // Its positive twin: the same read of the image the app was given succeeds.
  EXPECT_EQ(RunApp({"read", std::string("/mnt/apps/") + kComponent + "/bin/app"}).output,
            "read allowed\n");
}

TEST_F(Sandbox, SandboxEscapeThroughInitsMemoryIsRefused) {
  EXPECT_EQ(RunApp({"proc-mem"}).output, "proc-mem denied EACCES\n");
}

TEST_F(Sandbox, SandboxEscapeByASetuidRootBinaryInTheImageGainsNothing) {
  const fs::path suid = image_ / "bin" / "suid";
  fs::copy_file(ASPIS_HOSTILE_APP, suid);
  ASSERT_EQ(::chown(suid.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(suid.c_str(), 04755), 0);
  const AppRun run =
      RunApp({"exec", std::string("/mnt/apps/") + kComponent + "/bin/suid", "setuid"});
  EXPECT_EQ(run.output, "euid " + std::to_string(kAppUid) + "\nsetuid denied EPERM\n");
  EXPECT_TRUE(run.Denied("setuid"));
}

TEST_F(Sandbox, AForkBombStopsAtTheProcessLimitWhileAnotherAppRuns) {
  auto other = StartReady(Spec({"sleep"}, "bystander"));
  ASSERT_TRUE(other.sandbox);
  const AppRun run =
      RunApp({"fork-bomb"}, {.memory_bytes = std::uint64_t{256} << 20, .max_processes = 16});
  EXPECT_NE(run.output.find("denied EAGAIN"), std::string::npos) << run.output;
  EXPECT_GE(run.usage.process_limit_hits, 1U);
  EXPECT_EQ(other.sandbox->Wait(milliseconds(0)), std::nullopt) << "the other app was hurt";
  EXPECT_EQ(other.sandbox->Stop(seconds(10)).Describe(), "exited with code 0");
}

TEST_F(Sandbox, MemoryPastTheLimitGetsTheAppKilledWhileAnotherAppRuns) {
  auto other = StartReady(Spec({"sleep"}, "bystander"));
  ASSERT_TRUE(other.sandbox);
  const AppRun run = RunApp({"memory"}, {.memory_bytes = std::uint64_t{32} << 20});
  EXPECT_EQ(run.exit.Describe(), "killed by signal 9 (Killed)") << run.output;
  EXPECT_GE(run.usage.oom_kills, 1U);
  EXPECT_LE(run.usage.memory_peak, std::uint64_t{32} << 20);
  EXPECT_EQ(other.sandbox->Wait(milliseconds(0)), std::nullopt) << "the other app was hurt";
}

TEST_F(Sandbox, AWritePastTheFileSizeLimitFailsWithEfbig) {
  const auto limit = [](SandboxSpec& spec) { spec.max_file_bytes = 16 << 10; };
  EXPECT_EQ(RunApp({"file-size", "16"}, {}, limit).output, "file-size allowed\n");
  EXPECT_EQ(RunApp({"file-size", "17"}, {}, limit).output, "file-size denied EFBIG\n");
}

TEST_F(Sandbox, StopSendsSigtermAndTheAppMayExitCleanly) {
  auto started = StartReady(Spec({"sleep"}));
  ASSERT_TRUE(started.sandbox);
  EXPECT_EQ(started.sandbox->Stop(seconds(10)).Describe(), "exited with code 0");
}

TEST_F(Sandbox, StopKillsAnAppThatIgnoresSigtermAfterTheGracePeriod) {
  auto started = StartReady(Spec({"ignore-term"}));  // it ignores SIGTERM from now on
  ASSERT_TRUE(started.sandbox);
  EXPECT_EQ(started.sandbox->Stop(milliseconds(300)).Describe(), "killed by signal 9 (Killed)");
}

TEST_F(Sandbox, HowAnAppEndedIsToldApart) {
  EXPECT_EQ(RunApp({"exit", "3"}).exit.Describe(), "exited with code 3");
  EXPECT_EQ(RunApp({"abort"}).exit.Describe(), "killed by signal 6 (Aborted)");
  auto missing = RunApp({}, {}, [](SandboxSpec& spec) { spec.entry_point = "/bin/none"; });
  EXPECT_EQ(missing.exit.Describe(), "could not start: execve: No such file or directory");
}

TEST_F(Sandbox, AnAppIsNeverStartedAsRoot) {
  auto spec = Spec({"status"});
  spec.uid = 0;
  auto cgroup = AppCgroup::Create(layout_, spec.name, {});
  ASSERT_TRUE(cgroup);
  EXPECT_FALSE(sandbox::Sandbox::Start(spec, Filter(), *cgroup, {}));
}

}  // namespace
}  // namespace aspis::device::apps::sandbox

namespace aspis::device::apps::sandbox {
namespace {

class SandboxNetwork : public Sandbox {
 protected:
  void SetUp() override {
    Sandbox::SetUp();
    StartResolver([this](const std::string& name, bool v6) { return lookup_(name, v6); },
                  [this] {
                    const std::lock_guard lock(dns_mutex_);
                    return dns_;
                  });
    StartBystander(Granted(Connections({"localhost"})));
  }
  void TearDown() override {
    CheckBystander();
    Sandbox::TearDown();
  }
  void UseDnsServers(std::vector<in_addr> servers) {
    const std::lock_guard lock(dns_mutex_);
    dns_ = std::move(servers);
  }
  // How the device looks names up, and the custom DNS servers asked instead; set before the apps
  // run.
  AppResolver::Lookup lookup_ = AppResolver::SystemLookup;
  std::mutex dns_mutex_;
  std::vector<in_addr> dns_;
  EchoServer server_;
};

// A DNS server on a loopback address of its own: dnsmasq, answering sensor.example with
// 192.0.2.77 and, as a hostile network's would, localhost with a link-local address; knowing
// nothing else (no upstream servers, no hosts file).
class DnsServer {
 public:
  explicit DnsServer(const fs::path& dir)
      : address_("127.53." + std::to_string((::getpid() >> 8) & 0xff) + "." +
                 std::to_string((::getpid() & 0xfe) | 1)),
        log_(dir / "dnsmasq.log"),
        process_({"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                  "--listen-address=" + address_, "--bind-interfaces", "--port=53",
                  "--address=/sensor.example/192.0.2.77", "--address=/localhost/169.254.169.254",
                  "--log-facility=-", "--pid-file=" + (dir / "dnsmasq.pid").string()},
                 std::nullopt, 15, log_.string()) {}
  // Waits up to 10 s for it to serve.
  bool Ready() const {
    for (int i = 0; i < 100; ++i) {
      std::ifstream in(log_);
      const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      if (text.find("started") != std::string::npos) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return false;
  }
  in_addr address() const {
    in_addr a{};
    ::inet_pton(AF_INET, address_.c_str(), &a);
    return a;
  }

 private:
  std::string address_;
  fs::path log_;
  testing::BackgroundProcess process_;
};

TEST_F(SandboxNetwork, AnAppsNamesAreLookedUpAtTheCustomDnsServersAppsSet) {
  DnsServer dns(dir_.path());
  ASSERT_TRUE(dns.Ready());
  // The device's own resolver, standing in, answers every name with 192.0.2.99.
  lookup_ = [](const std::string&, bool v6) {
    return v6 ? std::vector<IpAddress>{} : std::vector<IpAddress>{*IpAddress::Parse("192.0.2.99")};
  };
  const auto granted = Granted(Connections({"sensor.example"}));
  EXPECT_EQ(RunApp({"dns-address", "sensor.example"}, {}, granted).output,
            "dns-address 192.0.2.99\n");
  UseDnsServers({dns.address()});
  EXPECT_EQ(RunApp({"dns-address", "sensor.example"}, {}, granted).output,
            "dns-address 192.0.2.77\n");
  // A custom server among aspisd's own resolvers is never asked: it would ask itself.
  in_addr own{};
  ::inet_pton(AF_INET, FirstResolverAddress().c_str(), &own);
  UseDnsServers({own});
  EXPECT_EQ(RunApp({"dns-address", "sensor.example"}, {}, granted).output,
            "dns-address 192.0.2.99\n");
  // What the custom server answers is held to the same rules: a name not in AllowedConnections
  // is not looked up at all.
  UseDnsServers({dns.address()});
  const AppRun other =
      RunApp({"dns-address", "sensor.example"}, {}, Granted(Connections({"x.example"})));
  EXPECT_EQ(other.output, "dns-address none\n");
  EXPECT_TRUE(other.Has("lookup", "sensor.example (not in AllowedConnections)"));
}

// "localhost" passes the rebinding filter, so a network that answered it could send an app's
// local traffic anywhere: it is never asked.
TEST_F(SandboxNetwork, DnsRebindingACustomServerNeverAnswersLocalhost) {
  DnsServer dns(dir_.path());
  ASSERT_TRUE(dns.Ready());
  lookup_ = [](const std::string& name, bool v6) {
    return name == "localhost" && !v6 ? std::vector<IpAddress>{*IpAddress::Parse("127.0.0.1")}
                                      : std::vector<IpAddress>{};
  };
  UseDnsServers({dns.address()});
  const auto granted = Granted(Connections({"localhost", "sensor.example"}));
  EXPECT_EQ(RunApp({"dns-address", "localhost"}, {}, granted).output, "dns-address 127.0.0.1\n");
  EXPECT_EQ(RunApp({"dns-address", "sensor.example"}, {}, granted).output,
            "dns-address 192.0.2.77\n");
}

// A DNS server that truncates its answer over UDP and then says nothing over TCP: glibc would wait
// for the TCP answer without end.
class SilentOverTcpDns {
 public:
  SilentOverTcpDns()
      : address_("127.55." + std::to_string((::getpid() >> 8) & 0xff) + "." +
                 std::to_string((::getpid() & 0xfe) | 1)) {
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_port = htons(53);
    ::inet_pton(AF_INET, address_.c_str(), &at.sin_addr);
    const auto* any = reinterpret_cast<const sockaddr*>(&at);
    ready_ = ::bind(udp_.get(), any, sizeof at) == 0 && ::bind(tcp_.get(), any, sizeof at) == 0 &&
             ::listen(tcp_.get(), 8) == 0;
    thread_ = std::thread([this] { Serve(); });
  }
  ~SilentOverTcpDns() {
    ::shutdown(udp_.get(), SHUT_RDWR);
    ::shutdown(tcp_.get(), SHUT_RDWR);
    thread_.join();
  }
  bool ready() const { return ready_; }
  in_addr address() const {
    in_addr a{};
    ::inet_pton(AF_INET, address_.c_str(), &a);
    return a;
  }

 private:
  void Serve() {
    std::vector<Fd> held;  // TCP connections, never answered
    for (;;) {
      std::array<pollfd, 2> fds{{{udp_.get(), POLLIN, 0}, {tcp_.get(), POLLIN, 0}}};
      if (::poll(fds.data(), fds.size(), 200) < 0 ||
          ((fds[0].revents | fds[1].revents) & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
        return;
      }
      if ((fds[1].revents & POLLIN) != 0) {
        held.emplace_back(::accept4(tcp_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (held.back().get() < 0) return;
      }
      if ((fds[0].revents & POLLIN) == 0) continue;
      std::array<std::uint8_t, 512> query{};
      sockaddr_in from{};
      socklen_t from_size = sizeof from;
      const ssize_t got = ::recvfrom(udp_.get(), query.data(), query.size(), 0,
                                     reinterpret_cast<sockaddr*>(&from), &from_size);
      if (got < 12) return;
      // The query, as an answer with its TC bit set and one A record, 192.0.2.88.
      std::vector<std::uint8_t> reply(query.begin(), query.begin() + got);
      reply[2] = 0x82;  // QR, TC
      reply[3] = 0x80;
      reply[7] = 1;  // ANCOUNT
      const std::array<std::uint8_t, 16> answer = {0xc0, 0x0c, 0, 1, 0,   1, 0, 0,
                                                   0,    60,   0, 4, 192, 0, 2, 88};
      reply.insert(reply.end(), answer.begin(), answer.end());
      ::sendto(udp_.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from),
               from_size);
    }
  }

  std::string address_;
  Fd udp_{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  Fd tcp_{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  bool ready_ = false;
  std::thread thread_;
};

TEST(AppResolverLookupAt, AServerThatTruncatesThenSaysNothingOverTcpNeverHoldsALookup) {
  SilentOverTcpDns dns;
  ASSERT_TRUE(dns.ready());
  const std::array<in_addr, 1> servers = {dns.address()};
  auto done = std::make_shared<std::promise<std::vector<IpAddress>>>();
  auto answered = done->get_future();
  std::thread([done, servers] {
    done->set_value(AppResolver::LookupAt(servers, "sensor.example", false));
  }).detach();
  // A hang detector, not a measure: the lookup answers at once from the truncated answer.
  ASSERT_EQ(answered.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(answered.get(), std::vector<IpAddress>{*IpAddress::Parse("192.0.2.88")});
}

TEST_F(SandboxNetwork, AnAppConnectsToAnAddressItsManifestAllows) {
  const AppRun run =
      RunApp({"connect", "127.0.0.1", server_.port()}, {}, Granted(Connections({"127.0.0.1"})));
  EXPECT_EQ(run.output, "connect allowed pong\n");
  EXPECT_TRUE(run.denials.empty());
}

TEST_F(SandboxNetwork, SandboxEscapeToAHostNotInAllowedConnectionsByAddressIsRefused) {
  const AppRun run =
      RunApp({"connect", "127.0.0.1", server_.port()}, {}, Granted(Connections({"127.0.0.2"})));
  EXPECT_EQ(run.output, "connect denied EACCES\n");
  EXPECT_TRUE(
      run.Has("connection", "127.0.0.1:" + server_.port() + " (not in AllowedConnections)"));
}

TEST_F(SandboxNetwork, AnAppWithoutNetworkingCapabilitiesReachesNothing) {
  const AppRun run = RunApp({"connect", "127.0.0.1", server_.port()});
  EXPECT_EQ(run.output, "connect denied EACCES\n");
  EXPECT_TRUE(
      run.Has("connection", "127.0.0.1:" + server_.port() + " (not in AllowedConnections)"));
}

TEST_F(SandboxNetwork, AnAppConnectsToANameItsManifestAllowsThroughAspisdsResolver) {
  const AppRun run =
      RunApp({"connect", "localhost", server_.port()}, {}, Granted(Connections({"localhost"})));
  EXPECT_EQ(run.output, "connect allowed pong\n");
}

TEST_F(SandboxNetwork, SandboxEscapeToAHostNotInAllowedConnectionsByNameIsRefused) {
  const AppRun run =
      RunApp({"connect", "ip6-localhost", server_.port()}, {}, Granted(Connections({"localhost"})));
  EXPECT_TRUE(run.output.starts_with("connect unresolved")) << run.output;
  EXPECT_TRUE(run.Has("lookup", "ip6-localhost (not in AllowedConnections)"));
  // A name allowed only grants the addresses the resolver answered for it.
  const AppRun by_address =
      RunApp({"connect", "127.0.0.1", server_.port()}, {}, Granted(Connections({"example.com"})));
  EXPECT_EQ(by_address.output, "connect denied EACCES\n");
}

TEST_F(SandboxNetwork, AnAppSendsUdpOnlyToAllowedHosts) {
  EXPECT_EQ(
      RunApp({"udp", "127.0.0.1", server_.port()}, {}, Granted(Connections({"127.0.0.1"}))).output,
      "udp allowed pong\n");
  const AppRun run =
      RunApp({"udp", "127.0.0.1", server_.port()}, {}, Granted(Connections({"127.0.0.2"})));
  EXPECT_EQ(run.output, "udp denied EACCES\n");
  EXPECT_TRUE(
      run.Has("connection", "127.0.0.1:" + server_.port() + " (not in AllowedConnections)"));
}

TEST_F(SandboxNetwork, AnAppListensOnAnAllowedTcpServerPortAndIsReachable) {
  const int port = testing::FreePort();
  package::AppCapabilities capabilities;
  capabilities.allowed_tcp_server_ports = {static_cast<std::uint16_t>(port)};
  auto spec = Spec({"listen-tcp", std::to_string(port)});
  Granted(capabilities)(spec);
  auto started = Start(spec);
  ASSERT_TRUE(started.sandbox);
  ASSERT_TRUE(testing::WaitForPort(port));
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  std::array<char, 8> reply{};
  EXPECT_EQ(::recv(client.get(), reply.data(), reply.size(), 0), 2);
  EXPECT_EQ(std::string(reply.data()), "hi");
}

TEST_F(SandboxNetwork, SandboxEscapeByListeningOnAPortNotAllowedIsRefused) {
  const int port = testing::FreePort();
  package::AppCapabilities capabilities;
  capabilities.allowed_tcp_server_ports = {static_cast<std::uint16_t>(port + 1)};
  const AppRun run = RunApp({"listen-tcp", std::to_string(port)}, {}, Granted(capabilities));
  EXPECT_EQ(run.output, "listen-tcp denied EACCES\n");
  EXPECT_TRUE(
      run.Has("listen", "TCP port " + std::to_string(port) + " (not in AllowedTcpServerPorts)"));
  const AppRun udp = RunApp({"listen-udp", std::to_string(port)}, {}, Granted(capabilities));
  EXPECT_EQ(udp.output, "listen-udp denied EACCES\n");
  const AppRun anywhere = RunApp({"listen-anywhere"}, {}, Granted(capabilities));
  EXPECT_EQ(anywhere.output, "listen-anywhere denied EACCES\n");
}

TEST_F(SandboxNetwork, SandboxEscapeThroughAUnixSocketPathIsRefused) {
  const AppRun run = RunApp({"unix-connect", "/run/aspisd/admin.sock"});
  EXPECT_EQ(run.output, "unix-connect denied EACCES\n");
  EXPECT_TRUE(run.Has("connection",
                      "to the Unix socket /run/aspisd/admin.sock (apps reach each "
                      "other through Application_Connect)"));
}

}  // namespace
}  // namespace aspis::device::apps::sandbox

namespace aspis::device::apps::sandbox {
namespace {

// Regressions from the hostile review of the sandbox: each attack, and the twin that still works.

TEST_F(SandboxNetwork, SandboxEscapeByAnIpv6RoutingHeaderIsDenied) {
  const AppRun run = RunApp({"rthdr"}, {}, Granted(Connections({"2001:db8::1"})));
  EXPECT_EQ(run.output, "rthdr denied EPERM\n");
  EXPECT_TRUE(run.Denied("setsockopt"));
}

TEST_F(SandboxNetwork, SandboxEscapeByControlMessagesSentWithAspisdsPrivilegesIsDenied) {
  const AppRun run =
      RunApp({"cmsg", "127.0.0.1", server_.port()}, {}, Granted(Connections({"127.0.0.1"})));
  EXPECT_EQ(run.output, "cmsg denied EPERM\n");
  EXPECT_TRUE(run.Denied("a send with control messages"));
  // The same datagram without them goes out.
  EXPECT_EQ(
      RunApp({"udp", "127.0.0.1", server_.port()}, {}, Granted(Connections({"127.0.0.1"}))).output,
      "udp allowed pong\n");
}

TEST_F(SandboxNetwork, SocketCallsFromAnyThreadOfTheAppAreMediated) {
  EXPECT_EQ(RunApp({"thread-connect", "127.0.0.1", server_.port()}, {},
                   Granted(Connections({"127.0.0.1"})))
                .output,
            "connect allowed pong\n");
  EXPECT_EQ(RunApp({"thread-connect", "127.0.0.1", server_.port()}, {},
                   Granted(Connections({"127.0.0.2"})))
                .output,
            "connect denied EACCES\n");
}

TEST_F(SandboxNetwork, DnsRebindingAnAllowedNameToTheDevicesOwnAddressesGrantsNothing) {
  lookup_ = [](const std::string& name, bool v6) -> std::vector<IpAddress> {
    if (name == "rebind.example") return {*IpAddress::Parse(v6 ? "::1" : "127.0.0.1")};
    return AppResolver::SystemLookup(name, v6);
  };
  const AppRun run = RunApp({"connect", "rebind.example", server_.port()}, {},
                            Granted(Connections({"rebind.example"})));
  EXPECT_TRUE(run.output.starts_with("connect unresolved")) << run.output;
  // "localhost" itself still names the device.
  EXPECT_EQ(
      RunApp({"connect", "localhost", server_.port()}, {}, Granted(Connections({"localhost"})))
          .output,
      "connect allowed pong\n");
}

// The machine's own IPv4 address on its network (not loopback), if it has one.
std::optional<IpAddress> OwnAddress() {
  std::optional<IpAddress> own;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return own;
  for (const ifaddrs* it = list; it != nullptr && !own; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    const auto a = IpAddress::FromV4(reinterpret_cast<const sockaddr_in*>(it->ifa_addr)->sin_addr);
    if (!a.IsLocal()) own = a;
  }
  ::freeifaddrs(list);
  return own;
}

TEST_F(SandboxNetwork, DnsRebindingAnAllowedNameToTheDevicesInterfaceAddressGrantsNothing) {
  // The device's own address on its network: a service bound to every address answers there.
  const std::optional<IpAddress> own = OwnAddress();
  ASSERT_TRUE(own) << "the machine has no IPv4 address but loopback";
  lookup_ = [&](const std::string& name, bool v6) -> std::vector<IpAddress> {
    if (name == "rebind.example" && !v6) return {*own};
    if (name == "lan.example" && !v6) return {*IpAddress::Parse("192.0.2.7")};
    if (name == "group.example" && !v6) return {*IpAddress::Parse("224.0.0.251")};
    return AppResolver::SystemLookup(name, v6);
  };
  for (const char* name : {"rebind.example", "group.example"}) {
    const AppRun run = RunApp({"connect", name, server_.port()}, {}, Granted(Connections({name})));
    EXPECT_TRUE(run.output.starts_with("connect unresolved")) << name << ": " << run.output;
  }
  // The twin: an address elsewhere is answered.
  EXPECT_EQ(RunApp({"dns-answers", "rebind.example"}, {}, Granted(Connections({"rebind.example"})))
                .output,
            "dns-answers 0\n");
  EXPECT_EQ(
      RunApp({"dns-answers", "lan.example"}, {}, Granted(Connections({"lan.example"}))).output,
      "dns-answers 1\n");
}

TEST_F(SandboxNetwork, SandboxEscapeToTheDeviceThroughAnAddressLearnedForANameIsRefused) {
  // An address the resolver answered for an allowed name became the device's own afterwards (an
  // app with NetworkConfig put it on an interface): connecting to it would reach the device's
  // services bound to every address.
  const std::optional<IpAddress> own = OwnAddress();
  ASSERT_TRUE(own) << "the machine has no IPv4 address but loopback";
  const std::string port = std::to_string(testing::FreePort());
  const AppRun run = RunApp({"connect", own->ToString(), port}, {}, [&](SandboxSpec& spec) {
    Granted(Connections({"service.example"}))(spec);
    spec.network->policy.Learn(*own, NetworkPolicy::Clock::now() + std::chrono::minutes(1));
  });
  EXPECT_EQ(run.output, "connect denied EACCES\n");
  EXPECT_TRUE(run.Has("connection", own->ToString() + ":" + port +
                                        " (an address of the device's, answered for a name)"));
  // Its twin: listed as it is, the address is the manifest's to grant; nothing listens there.
  EXPECT_EQ(RunApp({"connect", own->ToString(), port}, {}, Granted(Connections({own->ToString()})))
                .output,
            "connect denied ECONNREFUSED\n");
}

TEST_F(SandboxNetwork, OneAppsSlowNameDoesNotHoldUpAnotherAppsLookups) {
  std::mutex mutex;
  std::condition_variable changed;
  bool entered = false;
  bool released = false;
  lookup_ = [&](const std::string& name, bool v6) -> std::vector<IpAddress> {
    if (name != "slow.example") return AppResolver::SystemLookup(name, v6);
    std::unique_lock lock(mutex);
    entered = true;
    changed.notify_all();
    changed.wait(lock, [&] { return released; });
    return {};
  };
  auto spec = Spec({"connect", "slow.example", server_.port()}, "slow");
  Granted(Connections({"slow.example"}))(spec);
  auto slow = Start(spec);
  ASSERT_TRUE(slow.sandbox);
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return entered; });
  }
  EXPECT_EQ(
      RunApp({"connect", "localhost", server_.port()}, {}, Granted(Connections({"localhost"})))
          .output,
      "connect allowed pong\n");
  {
    std::lock_guard lock(mutex);
    released = true;
  }
  changed.notify_all();
  slow.sandbox->Stop(milliseconds(0));
}

TEST_F(SandboxNetwork, AnAppsLookupsInFlightAreCappedAcrossItsRestarts) {
  std::mutex mutex;
  std::condition_variable changed;
  int blocked = 0;
  bool released = false;
  lookup_ = [&](const std::string& name, bool v6) -> std::vector<IpAddress> {
    if (name != "slow.example") return AppResolver::SystemLookup(name, v6);
    std::unique_lock lock(mutex);
    ++blocked;
    changed.notify_all();
    changed.wait(lock, [&] { return released; });
    return {};
  };
  // Each start asks for A and AAAA, both held: two starts fill the app's four.
  std::vector<std::string> resolvers;
  for (int start = 1; start <= 2; ++start) {
    auto spec = Spec({"connect", "slow.example", server_.port()}, "slow");
    Granted(Connections({"slow.example"}))(spec);
    auto slow = Start(spec);
    ASSERT_TRUE(slow.sandbox);
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return blocked == 2 * start; });
    }
    resolvers.push_back(ResolverOf("slow"));
    slow.sandbox->Stop(milliseconds(0));  // its lookups go on without it
  }
  // The address of an ended sandbox is free at once, its lookups still running.
  EXPECT_EQ(resolvers[0], resolvers[1]);
  const AppRun third = RunApp({"connect", "slow.example", server_.port()}, {},
                              Granted(Connections({"slow.example"})));
  EXPECT_TRUE(third.output.starts_with("connect unresolved")) << third.output;
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(blocked, 4);
    released = true;
  }
  changed.notify_all();
}

TEST_F(SandboxNetwork, SandboxEscapeByADotInsideALabelIsRefused) {
  lookup_ = [](const std::string& name, bool v6) -> std::vector<IpAddress> {
    if (name.ends_with(".example.com") && !v6) return {*IpAddress::Parse("192.0.2.7")};
    return {};
  };
  // The labels [evil.example][com] name a domain under com, whose text passes "*.example.com".
  const AppRun run =
      RunApp({"dns-labels", "evil.example", "com"}, {}, Granted(Connections({"*.example.com"})));
  EXPECT_EQ(run.output, "dns-query answered rcode 5\n");
  EXPECT_TRUE(run.Has("lookup", "evil\\.example.com (not a host name)"));
  EXPECT_EQ(
      RunApp({"dns-labels", "evil", "example", "com"}, {}, Granted(Connections({"*.example.com"})))
          .output,
      "dns-query answered rcode 0\n");
}

TEST_F(SandboxNetwork, SandboxEscapeByReusingTheUdpPortOfADeviceServiceIsRefused) {
  // A device service shares its UDP port with SO_REUSEADDR; the app sets it too and lists the
  // port: with the option kept, the kernel would give the app the service's datagrams.
  const auto port = static_cast<std::uint16_t>(testing::FreePort());
  Fd service(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ASSERT_EQ(::setsockopt(service.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(service.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  package::AppCapabilities capabilities = Connections({"127.0.0.1"});
  capabilities.allowed_udp_server_ports = {port};
  auto spec = Spec({"listen-udp", std::to_string(port)}, "server");
  Granted(capabilities)(spec);
  // Read as it is said: had the bind succeeded, the app would wait for a datagram.
  StartReady(spec, "listen-udp denied EADDRINUSE");
  // The twin: on a port nobody holds, the same app serves UDP.
  service = Fd(-1);
  auto server = StartReady(spec, "listen-udp allowed");
  ASSERT_TRUE(server.sandbox);
  Fd client(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(
      ::sendto(client.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 1);
  std::array<char, 8> reply{};
  pollfd ready{client.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 10000), 1);
  EXPECT_EQ(::recv(client.get(), reply.data(), reply.size(), 0), 2);
  EXPECT_EQ(std::string(reply.data(), 2), "hi");
  server.sandbox->Stop(milliseconds(0));
}

TEST_F(SandboxNetwork, SandboxEscapeByZeroCopySendsOfAspisdsMemoryIsDenied) {
  // The option, and the flag on a send aspisd performs: either would have the kernel send from
  // aspisd's heap after aspisd reused it.
  const auto port = static_cast<std::uint16_t>(testing::FreePort());
  package::AppCapabilities capabilities = Connections({"127.0.0.1"});
  capabilities.allowed_tcp_server_ports = {port};
  const AppRun option = RunApp({"zerocopy", std::to_string(port)}, {}, Granted(capabilities));
  EXPECT_EQ(option.output, "zerocopy-option denied EPERM\n");
  EXPECT_TRUE(option.Denied("setsockopt"));
  const AppRun flag = RunApp({"send-zerocopy", "127.0.0.1", server_.port()}, {},
                             Granted(Connections({"127.0.0.1"})));
  EXPECT_EQ(flag.output, "send-zerocopy denied EPERM\n");
  EXPECT_TRUE(flag.Has("syscall", "a send with flags 0x4000000"));
}

TEST_F(SandboxNetwork, SandboxEscapeByJoiningTheDevicesReusePortGroupIsDenied) {
  // A device service (root) listens with SO_REUSEPORT on a port the app's manifest lists: the
  // kernel would take aspisd's sockets for the same owner's and share the port.
  const auto port = static_cast<std::uint16_t>(testing::FreePort());
  Fd service(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ASSERT_EQ(::setsockopt(service.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(service.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(service.get(), 16), 0);
  package::AppCapabilities capabilities;
  capabilities.allowed_tcp_server_ports = {port};
  const AppRun run = RunApp({"reuseport", std::to_string(port)}, {}, Granted(capabilities));
  EXPECT_EQ(run.output, "reuseport denied EADDRINUSE\n");
  EXPECT_TRUE(run.Denied("setsockopt"));
}

TEST_F(SandboxNetwork, SandboxEscapeByReadingTheDevicesInterfacesIsDenied) {
  const AppRun run = RunApp({"ifconf"}, {}, Granted(Connections({})));
  EXPECT_EQ(run.output, "ifconf denied EPERM\n");
  EXPECT_TRUE(run.Denied("ioctl"));
  // The twin: what a descriptor has queued is the app's to ask.
  EXPECT_EQ(RunApp({"fionread"}).output, "queued 3\nfionread allowed\n");
}

TEST_F(SandboxNetwork, SandboxEscapeThroughTheUnspecifiedAddressToTheDevicesLoopbackIsRefused) {
  // 0.0.0.0 is the device itself to the kernel: listing it grants nothing.
  const AppRun run =
      RunApp({"connect", "0.0.0.0", server_.port()}, {}, Granted(Connections({"0.0.0.0"})));
  EXPECT_EQ(run.output, "connect denied EACCES\n");
  EXPECT_TRUE(run.Has("connection", "0.0.0.0:" + server_.port() + " (not in AllowedConnections)"));
}

TEST_F(SandboxNetwork, AnAppsOwnResolverTakesOnlyDnsOverUdp) {
  EXPECT_EQ(
      RunApp({"dns-query", "own", "localhost"}, {}, Granted(Connections({"localhost"}))).output,
      "dns-query answered rcode 0\n");
  const AppRun run = RunApp({"connect-resolver"}, {}, Granted(Connections({})));
  EXPECT_EQ(run.output, "connect-resolver denied EACCES\n");
  EXPECT_TRUE(run.Has("connection", ResolverOf("hostile") + ":53 (the apps' resolvers' range)"));
}

TEST_F(SandboxNetwork, SandboxEscapeByQueryingAnotherAppsResolverIsRefused) {
  // Even listed in its own manifest, the bystander's resolver is not the app's to ask (or flood).
  const std::string other = ResolverOf("bystander");
  ASSERT_TRUE(resolver_->InRange(IpAddress::Parse(other).value_or(IpAddress{}))) << other;
  const AppRun run =
      RunApp({"dns-query", other, "localhost"}, {}, Granted(Connections({other, "localhost"})));
  EXPECT_EQ(run.output, "dns-query denied EACCES\n");
  EXPECT_TRUE(run.Has("connection", other + ":53 (the apps' resolvers' range)"));
  EXPECT_NE(ResolverOf("hostile"), other);
}

TEST_F(SandboxNetwork, SandboxEscapeByTakingTheResolversAddressesIsRefused) {
  // Bound by an app, an address of the range is one a later app's resolver cannot have.
  package::AppCapabilities capabilities;
  capabilities.allowed_udp_server_ports = {53};
  const AppRun run = RunApp({"bind-udp", "127.83.255.254", "53"}, {}, Granted(capabilities));
  EXPECT_EQ(run.output, "bind-udp denied EACCES\n");
  EXPECT_TRUE(run.Has("listen", "on 127.83.255.254:53 (the apps' resolvers' range)"));
  const auto pid = static_cast<unsigned>(::getpid());
  const std::string outside =
      "127.82." + std::to_string((pid >> 8) & 0xff) + "." + std::to_string((pid & 0xff) | 1);
  EXPECT_EQ(RunApp({"bind-udp", outside, "53"}, {}, Granted(capabilities)).output,
            "bind-udp allowed\n");
}

TEST_F(SandboxNetwork, OneAppFloodingItsResolverDoesNotStarveAnotherAppsLookups) {
  auto spec = Spec({"dns-flood", "flood.example"}, "flooder");
  Granted(Connections({}))(spec);
  auto flooder = StartReady(spec, "flooding");
  ASSERT_TRUE(flooder.sandbox);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(
        RunApp({"connect", "localhost", server_.port()}, {}, Granted(Connections({"localhost"})))
            .output,
        "connect allowed pong\n");
  }
  EXPECT_EQ(flooder.sandbox->Wait(milliseconds(0)), std::nullopt);
  flooder.sandbox->Stop(milliseconds(0));
}

TEST_F(Sandbox, ADenialFloodIsSlowedAndReportedAsACount) {
  const AppRun run = RunApp({"flood", "3000"});
  EXPECT_EQ(run.output, "flood allowed\n");
  std::size_t each = 0;
  bool counted = false;
  for (const auto& d : run.denials) {
    if (d.detail == "ptrace") ++each;
    if (d.detail.ends_with("more denials within a second")) counted = true;
  }
  // Past the first 100 of each second, denials wait and are counted: the flood takes seconds,
  // so counts are reported, and far fewer denials one by one than were made.
  EXPECT_TRUE(counted);
  EXPECT_GE(each, 1U);
  EXPECT_LT(each, 3000U) << "each denial of a flood was reported";
}

TEST_F(Sandbox, AnAppHasAFixedDescriptorLimitAndNoTerminal) {
  const AppRun files = RunApp({"fd-limit"});
  EXPECT_EQ(files.output, "files 256 256\nfd-limit denied EPERM\n");
  const AppRun session = RunApp({"session"});
  EXPECT_EQ(session.output, "session 1 pid 2\nsession denied ENOENT\n");
}

}  // namespace
}  // namespace aspis::device::apps::sandbox

#include "device/apps/broker.hpp"

namespace aspis::device::apps::sandbox {
namespace {

constexpr char kTenant[] = "7f0e9a2c-1b3d-4e5f-8a9b-0c1d2e3f4a5b";

// The capability broker: storage, the app certificate, and what an app may not ask for.
class SandboxBroker : public Sandbox {
 protected:
  void SetUp() override {
    Sandbox::SetUp();
    StartBystander();
    grants_.component_id = kComponent;
    grants_.storage_file = dir_ / "storage" / kComponent / "mutable";
    grants_.tenant = [] { return std::string(kTenant); };
    grants_.app_certificate = dir_ / "app" / "certificate.pem";
    grants_.app_key = dir_ / "app" / "key.pem";
    fs::create_directories(dir_ / "app");
    std::ofstream(grants_.app_certificate) << "-----BEGIN CERTIFICATE-----\napp\n";
    std::ofstream(grants_.app_key) << "-----BEGIN PRIVATE KEY-----\napp\n";
  }
  void TearDown() override {
    CheckBystander();
    Sandbox::TearDown();
  }

  // Runs the app with the broker on its descriptor 3, answering it until the app ends.
  AppRun RunBrokered(std::vector<std::string> args) {
    const auto app = StartBrokered(std::move(args), false);
    AppRun run;
    if (!app->started.sandbox) return run;
    app->server.join();
    run.exit = *app->started.sandbox->Wait(milliseconds(-1));
    app->started.sandbox.reset();
    return Finish(std::move(run), app->started.output);
  }

  // An app whose broker is served on a thread of its own until the app ends (or the test does).
  struct Brokered {
    explicit Brokered(Started s) : started(std::move(s)) {}
    Brokered(const Brokered&) = delete;
    Brokered& operator=(const Brokered&) = delete;
    Started started;
    Fd stop{-1};      // written to end the serving early
    Fd stopping{-1};  // what the server reads that from
    std::thread server;
    ~Brokered() {
      if (!server.joinable()) return;
      const char end = 0;
      (void)::write(stop.get(), &end, 1);
      server.join();
    }
  };

  // Starts the app with the broker on its descriptor 3; with `lines` its output arrives on
  // started.pipe, otherwise in started.output.
  std::unique_ptr<Brokered> StartBrokered(std::vector<std::string> args, bool lines) {
    auto broker = Broker::Create(grants_, [this](const Denial& d) {
      std::lock_guard lock(mutex_);
      denials_.push_back(d);
    });
    EXPECT_TRUE(broker) << broker.error().message();
    auto spec = Spec(std::move(args));
    spec.broker = broker->app_end();
    if (grants_.capabilities.mutable_storage_kb)
      spec.max_file_bytes = std::uint64_t{*grants_.capabilities.mutable_storage_kb} * 1024;
    std::array<int, 2> output{};
    std::array<int, 2> stop{};
    EXPECT_EQ(::pipe2(output.data(), O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(stop.data(), O_CLOEXEC), 0);
    Fd write_end(output[1]);
    Fd read_end(output[0]);
    if (lines) spec.output = write_end.get();
    auto app = std::make_unique<Brokered>(Start(spec));
    app->stop = Fd(stop[1]);
    app->stopping = Fd(stop[0]);
    write_end = Fd(-1);
    if (lines) app->started.pipe = std::move(read_end);
    broker->CloseAppEnd();
    if (!app->started.sandbox) return app;
    app->server = std::thread([served = std::move(*broker), stopped = app->stopping.get(),
                               exited = app->started.sandbox->exit_descriptor()]() mutable {
      for (;;) {
        std::array<pollfd, 3> fds{
            {{served.descriptor(), POLLIN, 0}, {exited, POLLIN, 0}, {stopped, POLLIN, 0}}};
        ::poll(fds.data(), fds.size(), -1);
        if (fds[0].revents != 0 && served.Serve()) continue;
        if (fds[1].revents != 0 || fds[2].revents != 0) return;
      }
    });
    return app;
  }

  // Grants system events (and deferral, with `defer`) through events_.
  void GrantEvents(bool defer) {
    grants_.events = events_.get();
    grants_.capabilities.system_event_notifications = true;
    grants_.capabilities.software_update_deferral = defer;
  }

  BrokerGrants grants_;
  SimulatedClock clock_{Clock::TimePoint(std::chrono::seconds(1'800'000'000))};
  std::unique_ptr<SystemEvents> events_ =
      *SystemEvents::Open(state::StateStore(file::RealFileSystem(), dir_.path()), clock_);
};

TEST_F(SandboxBroker, AnAppWritesItsMutableStorageUpToSizeKbAndNoFurther) {
  grants_.capabilities.mutable_storage_kb = 16;
  EXPECT_EQ(RunBrokered({"storage-write", "16"}).output, "storage-write allowed\n");
  EXPECT_EQ(RunBrokered({"storage-size"}).output, "storage 16384\n") << "kept across runs";
  const AppRun past = RunBrokered({"storage-write", "17"});
  EXPECT_EQ(past.output, "storage-write denied EFBIG\n");
  EXPECT_EQ(past.exit.Describe(), "exited with code 0") << "the app is unharmed";
  EXPECT_EQ(QuotaOf(grants_).used, 16384U);
  EXPECT_EQ(QuotaOf(grants_).limit, 16384U);
}

TEST_F(SandboxBroker, AnAppWithoutMutableStorageGetsNoneAndTheRefusalIsReported) {
  const AppRun run = RunBrokered({"storage-write", "1"});
  EXPECT_EQ(run.output, "storage-write denied EACCES\n");
  EXPECT_TRUE(run.Has("broker", "storage.open (the app manifest grants no MutableStorage)"));
}

TEST_F(SandboxBroker, SandboxEscapeToAnotherAppsStorageIsRefusedAndReported) {
  grants_.capabilities.mutable_storage_kb = 16;
  const AppRun run = RunBrokered({"storage-other"});
  EXPECT_EQ(run.output, "storage-other denied EPERM\n");
  ASSERT_FALSE(run.denials.empty());
  EXPECT_EQ(run.denials.back().what, "broker");
  EXPECT_NE(run.denials.back().detail.find("not a broker call"), std::string::npos);
  // Nor through the file system: another app's storage is not in the sandbox.
  EXPECT_EQ(RunApp({"read", (dir_ / "storage").string()}).output, "read denied ENOENT\n");
}

TEST_F(SandboxBroker, OnlyAnAppWithDeviceAuthenticationForTheDevicesTenantGetsTheAppCertificate) {
  grants_.capabilities.device_authentication = kTenant;
  EXPECT_EQ(RunBrokered({"deviceauth"}).output,
            "-----BEGIN CERTIFICATE-----\ndeviceauth allowed\n");
  grants_.capabilities.device_authentication = "00000000-1b3d-4e5f-8a9b-0c1d2e3f4a5b";
  EXPECT_EQ(RunBrokered({"deviceauth"}).output, "deviceauth denied EACCES\n");
  grants_.capabilities.device_authentication.clear();
  const AppRun run = RunBrokered({"deviceauth"});
  EXPECT_EQ(run.output, "deviceauth denied EACCES\n");
  EXPECT_TRUE(run.Has("broker",
                      "deviceauth.open (the app manifest grants no "
                      "DeviceAuthentication)"));
}

TEST_F(SandboxBroker, ABrokerFloodIsRefusedAndReportedAtMost100ASecondWithoutTheAppsText) {
  const AppRun run = RunBrokered({"broker-flood", "3000"});
  EXPECT_EQ(run.output, "broker-flood refused 3000\n");
  std::size_t reported = 0;
  for (const auto& d : run.denials) {
    if (d.what != "broker") continue;
    EXPECT_EQ(d.detail.find("flood."), std::string::npos) << d.detail;
    reported += d.detail == "unknown call (not a broker call)";
  }
  EXPECT_GE(reported, 1U);
  EXPECT_LT(reported, 1500U) << "each refusal reported";
}

TEST_F(SandboxBroker, SandboxEscapeByBindingAnAbstractNameInTheDevicesNamespaceIsRefused) {
  // The broker's socket lives in the device's network namespace: a name bound there would squat
  // one a device service uses. The app's own Unix sockets bind in its own namespace.
  const std::string name = "aspis-test-" + std::to_string(::getpid());
  const AppRun run = RunBrokered({"abstract-bind", name});
  EXPECT_EQ(run.output, "abstract-bind denied EACCES\nabstract-bind-own allowed\n");
  EXPECT_TRUE(run.Has("listen",
                      "an abstract Unix name on a socket aspisd made (it lives in the device's "
                      "network namespace)"));
  Fd service(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path + 1, name.data(), name.size());
  EXPECT_EQ(::bind(service.get(), reinterpret_cast<const sockaddr*>(&address),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())),
            0)
      << "the device's name was taken";
}

TEST_F(SandboxBroker, SandboxEscapeToTheRuntimeKeyIsRefusedAndReported) {
  grants_.capabilities.device_authentication = kTenant;
  const AppRun run = RunBrokered({"runtime-key"});
  EXPECT_EQ(run.output, "runtime-key denied EPERM\n");
  EXPECT_TRUE(run.Has("broker", "unknown call (not a broker call)"));
  EXPECT_EQ(RunApp({"read", "/var/lib/aspisd/runtime.key"}).output, "read denied ENOENT\n");
}

const std::vector<std::string> kUpdate = {"9b1d6a4e-4b5d-4f38-9a57-2f0f3e6c1a33"};

TEST_F(SandboxBroker, AnAppWithSoftwareUpdateDeferralDefersAnUpdateItIsToldOf) {
  GrantEvents(true);
  const auto app = StartBrokered({"sysevent", "90"}, true);
  ASSERT_TRUE(app->started.sandbox);
  const int lines = app->started.pipe.get();
  ASSERT_EQ(ReadLine(lines), "registered");
  const auto announced = clock_.Now();
  EXPECT_EQ(events_->Hold(kUpdate, UpdateType::kSystem), announced + kResponseWindow);
  const std::string pending = ReadLine(lines);
  EXPECT_NE(pending.find(R"("status":"Pending")"), std::string::npos) << pending;
  EXPECT_NE(pending.find(R"("update_type":"System")"), std::string::npos) << pending;
  EXPECT_NE(pending.find(R"("max_deferral_minutes":1440)"), std::string::npos) << pending;
  EXPECT_EQ(ReadLine(lines), "defer allowed");
  const std::string deferred = ReadLine(lines);
  EXPECT_NE(deferred.find(R"("deferred_minutes":90)"), std::string::npos) << deferred;
  EXPECT_EQ(events_->Hold(kUpdate, UpdateType::kSystem), announced + std::chrono::minutes(90))
      << "the update waits";
  events_->NothingToUpdate();
  EXPECT_NE(ReadLine(lines).find("NoUpdateAvailable"), std::string::npos);
}

TEST_F(SandboxBroker, SandboxEscapeByDeferringAnUpdateWithoutSoftwareUpdateDeferralIsRefused) {
  GrantEvents(false);
  const auto app = StartBrokered({"sysevent", "90"}, true);
  ASSERT_TRUE(app->started.sandbox);
  const int lines = app->started.pipe.get();
  ASSERT_EQ(ReadLine(lines), "registered");
  EXPECT_EQ(events_->Hold(kUpdate, UpdateType::kApp), std::nullopt)
      << "no app that may defer: the update starts at once";
  EXPECT_NE(ReadLine(lines).find("Pending"), std::string::npos);
  EXPECT_EQ(ReadLine(lines), "defer denied EACCES");
  EXPECT_NE(ReadLine(lines).find(R"("status":"Final")"), std::string::npos);
  events_->NothingToUpdate();
  EXPECT_NE(ReadLine(lines).find("NoUpdateAvailable"), std::string::npos);
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(AppRun{.denials = denials_}.Has(
      "broker", "sysevent.defer (the app manifest grants no SoftwareUpdateDeferral)"));
}

TEST_F(SandboxBroker, AnAppWithoutSystemEventNotificationsHearsNoEventsAndIsReported) {
  const AppRun run = RunBrokered({"sysevent"});
  EXPECT_EQ(run.output, "sysevent denied EACCES\n");
  EXPECT_TRUE(
      run.Has("broker", "sysevent.register (the app manifest grants no SystemEventNotifications)"));
}

}  // namespace
}  // namespace aspis::device::apps::sandbox
