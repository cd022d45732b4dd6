#include "device/board/network_daemon.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <vector>

namespace aspis::device::board {

std::expected<std::unique_ptr<NetworkDaemon>, int> NetworkDaemon::Start(
    std::vector<std::string> args, int netns, std::chrono::milliseconds grace) {
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
    // Signals as a new program expects them (exec keeps the mask and what is ignored): aspisd's
    // threads block those they wait for, and a blocked SIGTERM would never stop dhcpcd.
    sigset_t none;
    ::sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    struct sigaction fallback {};
    fallback.sa_handler = SIG_DFL;
    for (int signal = 1; signal < NSIG; ++signal) ::sigaction(signal, &fallback, nullptr);
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
    }
    int error = 0;
    if (netns >= 0 && ::setns(netns, CLONE_NEWNET) != 0) {
      error = errno;
    } else {
      ::execv(argv[0], argv.data());
      error = errno;
    }
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
  return std::unique_ptr<NetworkDaemon>(new NetworkDaemon(pid, std::move(pidfd), grace));
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

}  // namespace aspis::device::board
