#include "device/board/network_daemon.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "core/log.hpp"

namespace aspis::device::board {

namespace {

// Whether process `pid` has a handler for `signal` (its /proc status's SigCgt).
bool Handles(pid_t pid, int signal) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (!line.starts_with("SigCgt:")) continue;
    const unsigned long long caught = std::strtoull(line.c_str() + 7, nullptr, 16);
    return (caught >> (signal - 1) & 1U) != 0;
  }
  return false;
}

// In a forked child (async-signal-safe): signals as a new program expects them, since exec keeps
// the mask and what is ignored. aspisd's threads block those they wait for, and a blocked SIGTERM
// would never stop dhcpcd.
void DefaultSignals() {
  sigset_t none;
  ::sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal) ::sigaction(signal, &fallback, nullptr);
}

}  // namespace

std::expected<std::unique_ptr<NetworkDaemon>, int> NetworkDaemon::Start(
    std::vector<std::string> args, int netns, std::chrono::milliseconds grace,
    const std::filesystem::path& private_dir, int ready_signal) {
  const std::string private_path = private_dir.string();
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // The child reports a failed exec through this pipe (closed on a successful one).
  std::array<int, 2> report{};
  if (::pipe2(report.data(), O_CLOEXEC) != 0) return std::unexpected(errno);
  const Fd read_end(report[0]);
  Fd write_end(report[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return std::unexpected(errno);
  if (pid == 0) {
    // Only async-signal-safe calls from here. A group of its own: dhcpcd's privilege-separated
    // helpers are ended with it.
    ::setpgid(0, 0);
    DefaultSignals();
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
    }
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);  // the report pipe is already
    const bool set_up = (netns < 0 || ::setns(netns, CLONE_NEWNET) == 0) &&
                        (private_path.empty() ||
                         (::unshare(CLONE_NEWNS) == 0 &&
                          ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
                          (::mkdir(private_path.c_str(), 0755) == 0 || errno == EEXIST) &&
                          ::mount("tmpfs", private_path.c_str(), "tmpfs",
                                  MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755") == 0));
    if (set_up) ::execv(argv[0], argv.data());
    const int error = errno;
    (void)::write(write_end.get(), &error, sizeof error);
    ::_exit(127);
  }
  write_end = Fd(-1);
  int error = 0;
  ssize_t got = 0;
  while ((got = ::read(read_end.get(), &error, sizeof error)) < 0 && errno == EINTR) {
  }
  if (got == sizeof error) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return std::unexpected(error);
  }
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  auto daemon = std::unique_ptr<NetworkDaemon>(new NetworkDaemon(pid, std::move(pidfd), grace));
  constexpr std::chrono::milliseconds kPoll{5};
  for (auto waited = std::chrono::milliseconds(0);
       ready_signal != 0 && !Handles(pid, ready_signal) && waited < grace; waited += kPoll) {
    std::this_thread::sleep_for(kPoll);
  }
  return daemon;
}

NetworkDaemon::~NetworkDaemon() { End(SIGTERM); }

std::expected<void, int> NetworkDaemon::Signal(int signal) {
  // A process that ended (and is not reaped yet) still takes a signal: its pidfd says it ended.
  pollfd ended{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
  if (ended_ || ::poll(&ended, 1, 0) != 0 || ::kill(pid_, signal) != 0) {
    return std::unexpected(ESRCH);
  }
  return {};
}

void NetworkDaemon::End(int signal) {
  if (ended_) return;
  ended_ = true;
  constexpr std::chrono::milliseconds kResend{100};
  bool gone = false;
  for (auto waited = std::chrono::milliseconds(0); !gone && pidfd_.get() >= 0 && waited < grace_;
       waited += kResend) {
    ::kill(pid_, signal);
    pollfd ready{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
    gone = ::poll(&ready, 1, static_cast<int>(kResend.count())) == 1;
  }
  if (!gone) ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

std::expected<void, int> NetworkDaemon::Record(const std::filesystem::path& file) const {
  if (auto written = file::WriteDurably(file, AsBytes(std::to_string(pid_)), 0600); !written) {
    return std::unexpected(file::ErrnoOf(written.error()));
  }
  return {};
}

void NetworkDaemon::EndLeftBehind(const std::filesystem::path& file,
                                  const std::vector<std::string>& argv,
                                  std::chrono::milliseconds grace) {
  const auto recorded = file::Read(file, 32);
  if (!recorded) return;
  std::error_code ignored;
  std::filesystem::remove(file, ignored);
  pid_t pid = 0;
  const std::string_view text = AsString(*recorded);
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (error != std::errc() || end != text.data() + text.size() || pid <= 1) return;
  // The descriptor holds the process that has the pid now: it is that one whose command is read.
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd.get() < 0) return;
  // The program recorded, with the arguments it was given or a title naming the last of them
  // (dhcpcd retitles itself "dhcpcd: <interface> [ip4]").
  const std::string proc = "/proc/" + std::to_string(pid);
  std::error_code unreadable;
  if (std::filesystem::read_symlink(proc + "/exe", unreadable) != argv.front()) return;
  std::string expected;
  for (const auto& arg : argv) expected.append(arg).push_back('\0');
  const auto command = file::Read(proc + "/cmdline", 4096);
  if (!command) return;
  const std::string_view title = AsString(*command);
  if (title != expected && title.find(argv.back()) == std::string_view::npos) return;
  log::Warning("ending {} ({}), which an earlier aspisd left running", argv.front(), pid);
  NetworkDaemon(pid, std::move(pidfd), grace).End(SIGTERM);
}

std::optional<std::pair<uid_t, gid_t>> Account(const std::string& user) {
  passwd entry{};
  passwd* found = nullptr;
  std::array<char, 4096> buffer{};
  if (::getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr) {
    return std::nullopt;
  }
  return std::pair(entry.pw_uid, entry.pw_gid);
}

std::expected<std::string, int> OutputAs(const std::vector<std::string>& argv,
                                         const std::string& user,
                                         std::chrono::milliseconds timeout) {
  const auto account = Account(user);
  if (!account) return std::unexpected(ENOENT);
  const auto [uid, gid] = *account;
  std::vector<char*> raw;
  raw.reserve(argv.size() + 1);
  for (const auto& arg : argv) raw.push_back(const_cast<char*>(arg.c_str()));
  raw.push_back(nullptr);
  std::array<int, 2> pipe{};
  if (::pipe2(pipe.data(), O_CLOEXEC) != 0) return std::unexpected(errno);
  const Fd read_end(pipe[0]);
  Fd write_end(pipe[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return std::unexpected(errno);
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    DefaultSignals();
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || ::dup2(null, STDIN_FILENO) < 0 || ::dup2(null, STDERR_FILENO) < 0 ||
        ::dup2(write_end.get(), STDOUT_FILENO) < 0 || ::setgroups(0, nullptr) != 0 ||
        ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0) {
      ::_exit(127);
    }
    ::close_range(3, ~0U, 0);
    std::array<char*, 1> empty{nullptr};
    ::execve(raw[0], raw.data(), empty.data());
    ::_exit(127);
  }
  write_end.Close();
  std::string out;
  std::array<char, 512> buffer{};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool late = false;
  for (ssize_t n = 1; n != 0;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd readable{.fd = read_end.get(), .events = POLLIN, .revents = 0};
    const int ready = left.count() <= 0 ? 0 : ::poll(&readable, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      late = true;
      ::kill(pid, SIGKILL);
      break;
    }
    n = ::read(read_end.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (out.size() < 4096) out.append(buffer.data(), static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (late) return std::unexpected(ETIMEDOUT);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::unexpected(EAGAIN);
  return out;
}

}  // namespace aspis::device::board
