#pragma once

#include <map>
#include <string>
#include <vector>

namespace aspis::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when the process could not run or was killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// Runs `argv` (argv[0] looked up in PATH) to completion with `env` added to the environment.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {});

// A child process that runs until this object is destroyed (SIGTERM, then waited for).
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv);
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  ~BackgroundProcess();

  bool running() const;

 private:
  int pid_ = -1;
};

// A TCP port on 127.0.0.1 that was free when asked, with `count` consecutive free ports from it.
int FreePort(int count = 1);

// Waits (polling connect, up to ~10 s) until something accepts on 127.0.0.1:`port`.
bool WaitForPort(int port);

}  // namespace aspis::testing
