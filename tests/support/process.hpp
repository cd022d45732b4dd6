#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace aspis::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when the process could not run or was killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// The account a child runs as (for servers that refuse root, like PostgreSQL).
struct RunAs {
  uid_t uid;
  gid_t gid;
};

// Runs `argv` (argv[0] looked up in PATH) to completion with `env` added to the environment.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         std::optional<RunAs> run_as = std::nullopt);

// A child process that runs until Stop() or destruction (sent `stop_signal`, then waited for).
// Its stdout and stderr go to `log_path` (appended) when given, else to /dev/null.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv,
                             std::optional<RunAs> run_as = std::nullopt,
                             int stop_signal = 15 /* SIGTERM */, const std::string& log_path = {});
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  ~BackgroundProcess();

  bool running() const;
  int pid() const { return pid_; }
  // Sends `signal` (the stop signal by default) and waits: the exit code, or -1 when the process
  // died of a signal. Idempotent: later calls return the same code.
  int Stop(int signal = 0);

 private:
  int pid_ = -1;
  int stop_signal_;
  mutable std::optional<int> exit_code_;
};

// A TCP port on 127.0.0.1 that was free when asked, with `count` consecutive free ports from it.
int FreePort(int count = 1);

// Waits (polling connect, up to ~10 s) until something accepts on 127.0.0.1:`port`.
bool WaitForPort(int port);

}  // namespace aspis::testing
