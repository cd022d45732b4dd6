#include "support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace aspis::testing {

namespace {

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> Environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

// fork + exec: the child takes `out_fd` (or /dev/null) as stdout and stderr, optionally drops to
// `run_as`, and dies with the test process even when that aborts (a sanitizer report).
int Spawn(std::vector<std::string> argv, std::vector<std::string> env, int out_fd,
          std::optional<RunAs> run_as) {
  auto args = CStrings(argv);
  auto envp = CStrings(env);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (run_as && (::setgid(run_as->gid) != 0 || ::setuid(run_as->uid) != 0)) ::_exit(126);
  // After setuid: a credential change clears the parent-death signal.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  const int fd = out_fd >= 0 ? out_fd : ::open("/dev/null", O_RDWR);
  ::dup2(fd, STDOUT_FILENO);
  ::dup2(fd, STDERR_FILENO);
  const int null_in = ::open("/dev/null", O_RDONLY);
  ::dup2(null_in, STDIN_FILENO);
  ::execvpe(args[0], args.data(), envp.data());
  ::_exit(127);
}

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool TryBind(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = Loopback(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env,
                         std::optional<RunAs> run_as) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return {};
  const int pid = Spawn(argv, Environment(env), pipe_fds[1], run_as);
  ::close(pipe_fds[1]);
  ProcessResult result;
  std::array<char, 4096> buffer{};
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], buffer.data(), buffer.size())) > 0) {
    result.output.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  if (pid < 0) {
    result.output = "could not start " + argv[0];
    return result;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = ExitCode(status);
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv,
                                     std::optional<RunAs> run_as, int stop_signal,
                                     const std::string& log_path)
    : stop_signal_(stop_signal) {
  const int log_fd =
      log_path.empty() ? -1 : ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_ = Spawn(argv, Environment({}), log_fd, run_as);
  if (log_fd >= 0) ::close(log_fd);
  if (pid_ < 0) throw std::runtime_error("could not start " + argv[0]);
}

BackgroundProcess::~BackgroundProcess() { Stop(); }

int BackgroundProcess::Stop(int signal) {
  if (exit_code_ || pid_ <= 0) return exit_code_.value_or(-1);
  ::kill(pid_, signal != 0 ? signal : stop_signal_);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  exit_code_ = ExitCode(status);
  return *exit_code_;
}

bool BackgroundProcess::running() const {
  if (exit_code_ || pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
  exit_code_ = ExitCode(status);
  return false;
}

int FreePort(int count) {
  // Start from a random point in the ephemeral range so parallel tests rarely collide.
  static thread_local unsigned seed =
      static_cast<unsigned>(::getpid()) ^
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int base = 20000 + static_cast<int>(rand_r(&seed) % 30000);
    bool all = true;
    for (int i = 0; i < count && all; ++i) all = TryBind(base + i);
    if (all) return base;
  }
  throw std::runtime_error("no free port range found on 127.0.0.1");
}

bool WaitForPort(int port) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = Loopback(port);
    const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (up) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace aspis::testing
