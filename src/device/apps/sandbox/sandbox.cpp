#include "device/apps/sandbox/sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>

#include "device/apps/errors.hpp"

namespace aspis::device::apps::sandbox {

namespace fs = std::filesystem;

namespace {

constexpr rlim_t kMaxFiles = 256;  // descriptors per process of an app

// What init tells aspisd over the control socket, one datagram each.
enum class Message : int {
  kFailed = 1,  // a setup step failed: a = the step, b = errno
  kListener,    // the seccomp listener is descriptor a in init
  kExecFailed,  // execve of the entry point failed: b = errno
  kExited,      // the app's main process ended: a = its wait status
};
struct Report {
  Message kind;
  int a;
  int b;
};

// The setup steps, named in errors.
constexpr std::array<const char*, 21> kSteps = {
    "waiting for aspisd",
    "making the cgroup namespace",
    "making mounts private",
    "mounting the root",
    "making a directory",
    "making a link",
    "making a mount point",
    "binding a path",
    "making a binding read-only",
    "mounting /proc",
    "mounting /tmp",
    "pivoting to the root",
    "leaving the old root",
    "making the root read-only",
    "setting the host name",
    "dropping capabilities",
    "changing to the app's user",
    "setting limits",
    "installing the seccomp filter",
    "starting the app",
    "placing it on its CPUs",
};

struct Bind {
  std::string source;
  std::string target;  // under the root, before pivoting
  bool directory = false;
  bool device = false;  // a device node: the binding keeps dev
};

struct Link {
  std::string target;
  std::string path;  // under the root
};

// Everything init needs, made before clone: after it, init (a copy of a multi-threaded process)
// runs only system calls, with no allocation.
struct Plan {
  std::string root;
  std::vector<std::string> directories;  // under the root, parents first
  std::vector<Link> links;
  std::vector<Bind> binds;
  std::string proc;
  std::string tmp;
  std::string tmp_options;
  std::string hostname;
  std::string workdir;  // inside the sandbox
  std::string entry;    // inside the sandbox
  std::vector<std::string> argv_text;
  std::vector<std::string> envp_text;
  std::vector<char*> argv;
  std::vector<char*> envp;
  uid_t uid = 0;
  gid_t gid = 0;
  int last_capability = 0;
  std::uint64_t max_file_bytes = 0;
  std::optional<cpu_set_t> cpus;
  int fifo_priority = 0;
  sock_fprog filter{};
  int control = -1;
  int output = -1;
  int broker = -1;
};

// --- init: async-signal-safe from here to the end of RunApp ---

void Send(int control, Message kind, int a, int b) {
  const Report report{kind, a, b};
  (void)::send(control, &report, sizeof(report), MSG_NOSIGNAL);
}

[[noreturn]] void FailStep(const Plan& plan, int step) {
  Send(plan.control, Message::kFailed, step, errno);
  ::_exit(127);
}

void SetHandler(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  ::sigaction(signal, &action, nullptr);
}

[[noreturn]] void RunApp(const Plan& plan) {
  // Init's handlers are undone before its signals are unblocked: a SIGTERM that init passed on
  // already must end the app, not run init's handler.
  // SIGPIPE too: aspisd ignores it, and an ignored signal would stay ignored across exec.
  for (const int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGIO, SIGPIPE}) {
    SetHandler(signal, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  if (plan.max_file_bytes != 0) SetHandler(SIGXFSZ, SIG_IGN);
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const int out = plan.output >= 0 ? plan.output : null;
  if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0 ||
      (plan.broker >= 0 && ::dup2(plan.broker, 3) < 0)) {
    Send(plan.control, Message::kExecFailed, 0, errno);
    ::_exit(127);
  }
  // Every other descriptor (the control socket among them) closes at exec.
  ::syscall(SYS_close_range, plan.broker >= 0 ? 4U : 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (::chdir(plan.workdir.c_str()) == 0) {
    ::execve(plan.entry.c_str(), plan.argv.data(), plan.envp.data());
  }
  Send(plan.control, Message::kExecFailed, 0, errno);
  ::_exit(127);
}

void Ignore(int /*signal*/) {}

// Whether aspisd's end of the control socket is closed (aspisd died).
bool AspisdGone(const Plan& plan) {
  char byte = 0;
  return ::recv(plan.control, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

void BuildRoot(const Plan& plan) {
  int step = 2;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) FailStep(plan, step);
  step = 3;
  if (::mount("tmpfs", plan.root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") !=
      0) {
    FailStep(plan, step);
  }
  for (const auto& dir : plan.directories) {
    if (::mkdir(dir.c_str(), 0755) != 0) FailStep(plan, 4);
  }
  for (const auto& link : plan.links) {
    if (::symlink(link.target.c_str(), link.path.c_str()) != 0) FailStep(plan, 5);
  }
  for (const auto& bind : plan.binds) {
    if (!bind.directory) {
      const int fd = ::open(bind.target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) FailStep(plan, 6);
      ::close(fd);
    }
    if (::mount(bind.source.c_str(), bind.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) !=
        0) {
      FailStep(plan, 7);
    }
    const unsigned long flags =
        MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | (bind.device ? MS_NOEXEC : MS_NODEV);
    if (::mount(nullptr, bind.target.c_str(), nullptr, flags, nullptr) != 0) FailStep(plan, 8);
  }
  if (::mount("proc", plan.proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    FailStep(plan, 9);
  }
  if (::mount("tmpfs", plan.tmp.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, plan.tmp_options.c_str()) !=
      0) {
    FailStep(plan, 10);
  }
  // The old root is stacked under the new one and detached, so nothing of the device's file
  // system stays reachable but what was bound.
  if (::chdir(plan.root.c_str()) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0) {
    FailStep(plan, 11);
  }
  if (::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0) FailStep(plan, 12);
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
              nullptr) != 0) {
    FailStep(plan, 13);
  }
}

void DropPrivileges(const Plan& plan) {
  constexpr unsigned long kLocked = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                    SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                    SECBIT_NO_CAP_AMBIENT_RAISE |
                                    SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if (::prctl(PR_SET_SECUREBITS, kLocked, 0, 0, 0) != 0) FailStep(plan, 15);
  for (int cap = 0; cap <= plan.last_capability; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) FailStep(plan, 15);
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) FailStep(plan, 15);
  // The C library's wrappers would wait for the threads this copy of aspisd does not have.
  if (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
      ::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0 ||
      ::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
    FailStep(plan, 16);
  }
  // With SECBIT_NO_SETUID_FIXUP the change of user kept the capabilities: clear them all.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, 2> data{};
  if (::syscall(SYS_capset, &header, data.data()) != 0) FailStep(plan, 15);
  if (::syscall(SYS_capget, &header, data.data()) != 0 || data[0].permitted != 0 ||
      data[1].permitted != 0 || data[0].effective != 0 || data[1].effective != 0 ||
      data[0].inheritable != 0 || data[1].inheritable != 0) {
    errno = EPERM;
    FailStep(plan, 15);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) FailStep(plan, 15);
  // Init's memory stays out of the app's reach through /proc/1/mem.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) FailStep(plan, 15);
  const rlimit no_core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) FailStep(plan, 17);
  // Each socket the app holds is made in the device's namespace: the descriptor limit, with the
  // process limit, bounds how many ports one app can hold.
  const rlimit files{kMaxFiles, kMaxFiles};
  if (::setrlimit(RLIMIT_NOFILE, &files) != 0) FailStep(plan, 17);
  if (plan.max_file_bytes != 0) {
    const rlimit size{plan.max_file_bytes, plan.max_file_bytes};
    if (::setrlimit(RLIMIT_FSIZE, &size) != 0) FailStep(plan, 17);
  }
  // Whatever limit aspisd was started with, no app raises its own scheduling priority.
  const rlimit no_real_time{0, 0};
  if (::setrlimit(RLIMIT_RTPRIO, &no_real_time) != 0) FailStep(plan, 17);
}

// Init and the app it starts (and the app's own processes) run on the plan's CPUs, under its
// policy: set while init still holds CAP_SYS_NICE, inherited by each fork.
void Place(const Plan& plan) {
  if (plan.cpus && ::syscall(SYS_sched_setaffinity, 0, sizeof(*plan.cpus), &*plan.cpus) != 0) {
    FailStep(plan, 20);
  }
  const sched_param param{.sched_priority = plan.fifo_priority};
  if (plan.fifo_priority > 0 && ::syscall(SYS_sched_setscheduler, 0, SCHED_FIFO, &param) != 0) {
    FailStep(plan, 20);
  }
}

// Init is a copy of aspisd that never execs: it keeps only the descriptors it passes on, or it
// would hold aspisd's sockets (an admin client, a listener) open for as long as the app runs.
void CloseInherited(const Plan& plan) {
  std::array<int, 3> keep{plan.control, plan.output, plan.broker};
  std::sort(keep.begin(), keep.end());
  unsigned from = 3;
  for (const int fd : keep) {
    if (fd < static_cast<int>(from)) continue;
    if (static_cast<unsigned>(fd) > from) {
      ::syscall(SYS_close_range, from, static_cast<unsigned>(fd) - 1, 0);
    }
    from = static_cast<unsigned>(fd) + 1;
  }
  ::syscall(SYS_close_range, from, ~0U, 0);
}

int InitMain(void* arg) {
  const Plan& plan = *static_cast<const Plan*>(arg);
  CloseInherited(plan);
  // A namespace's init receives only the signals it handles: handled from the start, so that a
  // SIGTERM sent as soon as the sandbox exists is kept (blocked) until the loop below takes it.
  sigset_t handled;
  sigemptyset(&handled);
  for (const int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGIO}) {
    struct sigaction action {};
    action.sa_handler = Ignore;
    ::sigaction(signal, &action, nullptr);
    sigaddset(&handled, signal);
  }
  ::pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  char go = 0;
  if (::recv(plan.control, &go, 1, 0) != 1) FailStep(plan, 0);
  if (::unshare(CLONE_NEWCGROUP) != 0) FailStep(plan, 1);
  BuildRoot(plan);
  // Init keeps none of aspisd's standard streams either: anything it might write (under a
  // sanitizer, say) goes nowhere, not into aspisd's log under the app's file size limit.
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) FailStep(plan, 12);
  for (int fd = 0; fd <= 2; ++fd) {
    if (fd != plan.control && fd != plan.output && fd != plan.broker && fd != null) {
      ::dup2(null, fd);
    }
  }
  if (null > 2) ::close(null);
  if (::sethostname(plan.hostname.data(), plan.hostname.size()) != 0) FailStep(plan, 14);
  // A session of its own: no controlling terminal, so no terminal of aspisd's to write into
  // (TIOCSTI) or to be hung up with.
  if (::setsid() < 0) FailStep(plan, 14);
  Place(plan);
  DropPrivileges(plan);
  const int listener = static_cast<int>(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                                  SECCOMP_FILTER_FLAG_NEW_LISTENER, &plan.filter));
  if (listener < 0) FailStep(plan, 18);
  // aspisd takes its own copy of the listener (pidfd_getfd) and says so; the app never has one.
  Send(plan.control, Message::kListener, listener, 0);
  if (::recv(plan.control, &go, 1, 0) != 1) ::_exit(127);
  ::close(listener);
  // aspisd's death closes its end of the control socket, which raises SIGIO here: init then ends
  // the app rather than leave it running unwatched, its filtered calls failing.
  const long flags = ::syscall(SYS_fcntl, plan.control, F_GETFL);
  if (flags < 0 || ::syscall(SYS_fcntl, plan.control, F_SETOWN, ::syscall(SYS_getpid)) != 0 ||
      ::syscall(SYS_fcntl, plan.control, F_SETFL, flags | O_ASYNC) != 0) {
    ::_exit(127);
  }
  if (AspisdGone(plan)) ::_exit(0);

  // A plain fork system call: the C library's fork would run aspisd's fork handlers.
  const auto app = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
  if (app < 0) FailStep(plan, 19);
  if (app == 0) RunApp(plan);
  for (;;) {
    siginfo_t info{};
    if (::sigwaitinfo(&handled, &info) < 0) continue;
    if (info.si_signo == SIGIO) {
      if (AspisdGone(plan)) {
        ::kill(-1, SIGKILL);
        ::_exit(0);
      }
      continue;
    }
    if (info.si_signo != SIGCHLD) {
      ::kill(-1, info.si_signo);
      continue;
    }
    int status = 0;
    pid_t gone = 0;
    while ((gone = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (gone == app) {
        Send(plan.control, Message::kExited, status, 0);
        ::_exit(0);  // the kernel then kills what is left in the namespace
      }
    }
  }
}

// --- aspisd's side ---

Error SandboxError(const std::string& what) { return Error(AppsErrc::kSandbox, what); }

int LastCapability() {
  int last = CAP_LAST_CAP;
  std::ifstream("/proc/sys/kernel/cap_last_cap") >> last;
  return last;
}

// The OS's programs and libraries, and the few files of /etc that the C library and TLS need.
constexpr std::array<const char*, 7> kOsDirectories = {"/usr",   "/bin",   "/sbin",  "/lib",
                                                       "/lib32", "/lib64", "/libx32"};
constexpr std::array<const char*, 7> kEtc = {
    "/etc/ld.so.cache", "/etc/host.conf",    "/etc/gai.conf",       "/etc/localtime",
    "/etc/ssl",         "/etc/alternatives", "/etc/ca-certificates"};
constexpr std::array<const char*, 5> kDevices = {"/dev/null", "/dev/zero", "/dev/full",
                                                 "/dev/random", "/dev/urandom"};

// Names resolve only through aspisd's resolver (app_resolver.hpp): no hosts file answers first.
Expected<void> WriteNameService(const SandboxSpec& spec, const std::string& resolver) {
  const std::pair<const char*, std::string> files[] = {
      {"resolv.conf", "nameserver " + resolver + "\noptions timeout:2 attempts:2\n"},
      {"hosts", "# Apps' names are answered by aspisd's resolver.\n"},
      {"nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"}};
  for (const auto& [name, text] : files) {
    std::ofstream out(spec.run_dir / name, std::ios::trunc);
    out << text;
    if (!out.flush()) {
      return std::unexpected(SandboxError("cannot write " + (spec.run_dir / name).string()));
    }
  }
  return {};
}

// `resolver`: the address the sandbox's resolv.conf names.
Expected<Plan> MakePlan(const SandboxSpec& spec, const SeccompProgram& filter,
                        const std::string& resolver) {
  if (spec.uid == 0 || spec.gid == 0) {
    return std::unexpected(SandboxError("an app never runs as root"));
  }
  if (!spec.entry_point.starts_with('/')) {
    return std::unexpected(SandboxError("the entry point is not an absolute path"));
  }
  if (std::any_of(spec.cpus.begin(), spec.cpus.end(),
                  [](int cpu) { return cpu < 0 || cpu >= CPU_SETSIZE; }) ||
      (spec.fifo_priority != 0 && (spec.fifo_priority < sched_get_priority_min(SCHED_FIFO) ||
                                   spec.fifo_priority > sched_get_priority_max(SCHED_FIFO)))) {
    return std::unexpected(SandboxError("no such CPU or real-time priority"));
  }
  std::error_code made;
  fs::create_directories(spec.run_dir / "root", made);
  if (made) return std::unexpected(SandboxError("cannot make " + spec.run_dir.string()));
  if (auto ok = WriteNameService(spec, resolver); !ok) return std::unexpected(ok.error());
  Plan plan;
  plan.root = (spec.run_dir / "root").string();
  const auto under = [&](const std::string& inside) { return plan.root + inside; };
  const std::string image_at = "/mnt/apps/" + spec.component_id;
  for (const char* dir : {"/dev", "/etc", "/proc", "/tmp", "/mnt", "/mnt/apps", image_at.c_str()}) {
    plan.directories.push_back(under(dir));
  }
  std::error_code ec;
  for (const char* dir : kOsDirectories) {
    const auto status = fs::symlink_status(dir, ec);
    if (fs::is_symlink(status)) {
      plan.links.push_back({fs::read_symlink(dir, ec).string(), under(dir)});
    } else if (fs::is_directory(status)) {
      plan.directories.push_back(under(dir));
      plan.binds.push_back({dir, under(dir), true, false});
    }
  }
  for (const char* path : kEtc) {
    const auto status = fs::status(path, ec);  // a link (localtime) is bound as what it names
    if (fs::is_directory(status)) {
      plan.directories.push_back(under(path));
      plan.binds.push_back({path, under(path), true, false});
    } else if (fs::is_regular_file(status)) {
      plan.binds.push_back({path, under(path), false, false});
    }
  }
  for (const char* name : {"resolv.conf", "hosts", "nsswitch.conf"}) {
    plan.binds.push_back(
        {(spec.run_dir / name).string(), under(std::string("/etc/") + name), false, false});
  }
  for (const char* device : kDevices) plan.binds.push_back({device, under(device), false, true});
  plan.links.push_back({"/proc/self/fd", under("/dev/fd")});
  plan.binds.push_back({spec.image.string(), under(image_at), true, false});
  plan.proc = under("/proc");
  plan.tmp = under("/tmp");
  plan.tmp_options =
      fmt::format("size={},mode=0700,uid={},gid={}", spec.tmp_bytes, spec.uid, spec.gid);
  plan.hostname = spec.name.substr(0, 64);
  plan.workdir = image_at;
  plan.entry = image_at + spec.entry_point;
  plan.argv_text.push_back(plan.entry);
  plan.argv_text.insert(plan.argv_text.end(), spec.args.begin(), spec.args.end());
  plan.envp_text = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp",
                    "LANG=C.UTF-8"};
  plan.envp_text.insert(plan.envp_text.end(), spec.env.begin(), spec.env.end());
  for (auto& arg : plan.argv_text) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (auto& var : plan.envp_text) plan.envp.push_back(var.data());
  plan.envp.push_back(nullptr);
  plan.uid = spec.uid;
  plan.gid = spec.gid;
  plan.last_capability = LastCapability();
  plan.max_file_bytes = spec.max_file_bytes;
  if (!spec.cpus.empty()) {
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    for (const int cpu : spec.cpus) CPU_SET(cpu, &cpus);
    plan.cpus = cpus;
  }
  plan.fifo_priority = spec.fifo_priority;
  plan.filter.len = static_cast<unsigned short>(filter.instructions.size());
  plan.filter.filter = const_cast<sock_filter*>(filter.instructions.data());
  plan.output = spec.output;
  plan.broker = spec.broker;
  return plan;
}

// The C library has no wrappers for these in Debian 12.
int PidfdGetfd(int pidfd, int fd) {
  return static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
}
int PidfdSignal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

std::optional<Report> Receive(int control, int timeout_ms) {
  pollfd p{control, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
  Report report{};
  if (::recv(control, &report, sizeof(report), MSG_DONTWAIT) != sizeof(report)) {
    return std::nullopt;
  }
  return report;
}

}  // namespace

std::string AppExit::Describe() const {
  if (!failure.empty()) return "could not start: " + failure;
  if (!ended.empty()) return ended;
  if (!signaled) return fmt::format("exited with code {}", code);
  const char* name = ::sigdescr_np(code);
  return fmt::format("killed by signal {} ({})", code, name != nullptr ? name : "unknown");
}

Expected<std::unique_ptr<Sandbox>> Sandbox::Start(const SandboxSpec& spec,
                                                  const SeccompProgram& filter,
                                                  const AppCgroup& cgroup, DenialSink denials) {
  auto network = spec.network != nullptr
                     ? spec.network
                     : std::make_shared<AppNetwork>(package::AppCapabilities{}, denials);
  std::optional<AppResolver::Endpoint> resolver;
  if (spec.resolver != nullptr) {
    auto opened = spec.resolver->Open(spec.component_id, network);
    if (!opened) return std::unexpected(SandboxError(opened.error().message()));
    resolver.emplace(std::move(*opened));
  }
  // With no resolver, names resolve nowhere (nothing on the app's loopback answers).
  auto plan = MakePlan(spec, filter, resolver ? resolver->address().ToString() : "127.0.0.1");
  if (!plan) return std::unexpected(plan.error());
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) != 0) {
    return std::unexpected(
        SandboxError(std::string("socketpair: ") + std::generic_category().message(errno)));
  }
  Fd control(pair[0]);
  Fd child_end(pair[1]);
  plan->control = child_end.get();

  constexpr std::size_t kStack = std::size_t{256} << 10;
  void* stack = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return std::unexpected(SandboxError("cannot map init's stack"));
  int pidfd = -1;
  const pid_t pid = ::clone(InitMain, static_cast<char*>(stack) + kStack,
                            CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                                CLONE_NEWNET | CLONE_PIDFD | SIGCHLD,
                            &*plan, &pidfd);
  const int clone_errno = errno;
  ::munmap(stack, kStack);
  if (pid < 0) {
    return std::unexpected(
        SandboxError(std::string("clone: ") + std::generic_category().message(clone_errno)));
  }
  Fd process(pidfd);
  child_end = Fd(-1);
  const auto abandon = [&](Error error) -> Expected<std::unique_ptr<Sandbox>> {
    PidfdSignal(process.get(), SIGKILL);
    siginfo_t info{};
    ::waitid(P_PIDFD, process.get(), &info, WEXITED);
    return std::unexpected(std::move(error));
  };
  if (auto ok = cgroup.Attach(pid); !ok) return abandon(ok.error());
  const char go = 1;
  if (::send(control.get(), &go, 1, MSG_NOSIGNAL) != 1) {
    return abandon(SandboxError("init did not wait for its cgroup"));
  }
  const auto report = Receive(control.get(), -1);
  if (!report || report->kind != Message::kListener) {
    if (report && report->kind == Message::kFailed && report->a >= 0 &&
        report->a < static_cast<int>(kSteps.size())) {
      return abandon(
          SandboxError(fmt::format("building the sandbox failed {}: {}", kSteps[report->a],
                                   std::generic_category().message(report->b))));
    }
    return abandon(SandboxError("the sandbox's init ended during setup"));
  }
  Fd listener(PidfdGetfd(process.get(), report->a));
  if (listener.get() < 0) {
    return abandon(SandboxError(std::string("cannot take the seccomp listener: ") +
                                std::generic_category().message(errno)));
  }
  if (::send(control.get(), &go, 1, MSG_NOSIGNAL) != 1) {
    return abandon(SandboxError("the sandbox's init ended during setup"));
  }
  return std::unique_ptr<Sandbox>(
      new Sandbox(pid, std::move(process), std::move(control), std::move(listener),
                  std::move(denials), std::move(network), spec.resolver, std::move(resolver)));
}

Sandbox::Sandbox(pid_t pid, Fd pidfd, Fd control, Fd listener, DenialSink denials,
                 std::shared_ptr<AppNetwork> network, const AppResolver* resolvers,
                 std::optional<AppResolver::Endpoint> resolver)
    : pid_(pid),
      pidfd_(std::move(pidfd)),
      control_(std::move(control)),
      listener_(std::move(listener)),
      wake_(::eventfd(0, EFD_CLOEXEC)),
      denials_(std::move(denials)),
      resolver_(std::move(resolver)),
      mediator_(std::move(network), resolvers,
                resolver_ ? std::optional(resolver_->address()) : std::nullopt, wake_.get()) {
  notifications_ = std::thread([this] { AnswerNotifications(); });
}

Sandbox::~Sandbox() {
  if (!exit_) Stop(std::chrono::milliseconds(0));
  const std::uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof(one));
  if (notifications_.joinable()) notifications_.join();
}

void Sandbox::AnswerNotifications() {
  seccomp_notif* request = nullptr;
  seccomp_notif_resp* response = nullptr;
  if (seccomp_notify_alloc(&request, &response) != 0) return;
  constexpr int kReportedPerSecond = 100;
  auto window_start = std::chrono::steady_clock::now();
  int in_window = 0;
  int suppressed = 0;
  for (;;) {
    std::array<pollfd, 2> fds{{{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0 || (fds[0].revents & (POLLHUP | POLLERR)) != 0) break;
    if ((fds[0].revents & POLLIN) == 0) continue;
    std::memset(request, 0, sizeof(*request));
    if (seccomp_notify_receive(listener_.get(), request) != 0) continue;  // its caller went away
    if (mediator_.Handle(listener_.get(), *request)) continue;
    std::memset(response, 0, sizeof(*response));
    response->id = request->id;
    response->error = -EPERM;
    // A flood of denials is slowed down (the app waits, not aspisd's other work) and reported
    // as a count past the first few each second.
    const auto now = std::chrono::steady_clock::now();
    if (now - window_start >= std::chrono::seconds(1)) {
      if (suppressed > 0 && denials_) {
        denials_({"syscall", fmt::format("{} more denials within a second", suppressed)});
      }
      window_start = now;
      in_window = 0;
      suppressed = 0;
    }
    if (++in_window > kReportedPerSecond) {
      ++suppressed;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    (void)seccomp_notify_respond(listener_.get(), response);
    if (in_window <= kReportedPerSecond && denials_) {
      denials_({"syscall", SyscallName(request->data.arch, request->data.nr)});
    }
  }
  if (suppressed > 0 && denials_) {
    denials_({"syscall", fmt::format("{} more denials within a second", suppressed)});
  }
  seccomp_notify_free(request, response);
}

std::optional<AppExit> Sandbox::Wait(std::chrono::milliseconds timeout) {
  if (exit_) return exit_;
  pollfd p{pidfd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  siginfo_t info{};
  ::waitid(P_PIDFD, pidfd_.get(), &info, WEXITED);
  AppExit exit{true, SIGKILL, {}};  // init itself was killed (Stop, or the memory limit)
  while (const auto report = Receive(control_.get(), 0)) {
    if (report->kind == Message::kExecFailed) {
      exit.failure = std::string("execve: ") + std::generic_category().message(report->b);
    } else if (report->kind == Message::kExited) {
      exit.signaled = WIFSIGNALED(report->a);
      exit.code = exit.signaled ? WTERMSIG(report->a) : WEXITSTATUS(report->a);
    }
  }
  exit_ = exit;
  return exit_;
}

void Sandbox::Signal(int signal) const { PidfdSignal(pidfd_.get(), signal); }

AppExit Sandbox::Stop(std::chrono::milliseconds grace) {
  if (exit_) return *exit_;
  if (grace.count() > 0) {
    PidfdSignal(pidfd_.get(), SIGTERM);
    if (auto exit = Wait(grace)) return *exit;
  }
  PidfdSignal(pidfd_.get(), SIGKILL);
  return *Wait(std::chrono::milliseconds(-1));
}

}  // namespace aspis::device::apps::sandbox
