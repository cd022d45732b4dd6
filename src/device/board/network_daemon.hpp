#pragma once

#include <sys/types.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/fd.hpp"

// The programs aspisd runs for interfaces it manages: dhcpcd, the DHCP client of an interface in
// dynamic mode, and dnsmasq and chronyd, the DHCP and SNTP servers of a private network. Each runs
// as aspisd's child in a process group of its own, in the network namespace of the interfaces
// (aspisd's, or a test's), its output discarded. Errors are errno values, as applibs returns them.
namespace aspis::device::board {

struct NetworkDaemons {
  std::filesystem::path dhcp_client = "/usr/sbin/dhcpcd";
  std::filesystem::path dhcp_server = "/usr/sbin/dnsmasq";
  std::filesystem::path time_server = "/usr/sbin/chronyd";
  // Where the servers keep their leases and configuration.
  std::filesystem::path leases_dir = "/var/lib/aspisd/dhcp";
  std::filesystem::path dhcp_client_db = "/var/lib/dhcpcd";  // where dhcpcd keeps its leases
  std::chrono::milliseconds stop_grace{5000};                // from a signal to SIGKILL
};

class NetworkDaemon {
 public:
  // Runs `argv` (argv[0] a path) in the network namespace `netns` (-1: aspisd's), with no
  // descriptor of aspisd's but its standard ones (on /dev/null). With `private_dir`, the program
  // sees an empty directory of its own there (a tmpfs in a mount namespace of its own), so that no
  // other instance, nor the system's, answers on its control sockets. With `ready_signal`, Start
  // returns once the program handles that signal (a program loses, or dies of, a signal sent
  // before it does), waiting up to the grace period. Errors: the errno of fork, of setting up, or
  // of exec (ENOENT: the program is not installed).
  static std::expected<std::unique_ptr<NetworkDaemon>, int> Start(
      std::vector<std::string> argv, int netns, std::chrono::milliseconds grace,
      const std::filesystem::path& private_dir = {}, int ready_signal = 0);
  // Ends it with SIGTERM.
  ~NetworkDaemon();
  NetworkDaemon(const NetworkDaemon&) = delete;
  NetworkDaemon& operator=(const NetworkDaemon&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `signal`; ESRCH once the program ended.
  std::expected<void, int> Signal(int signal);
  // Sends `signal` (again every 100 ms: a program loses one that lands while it starts) and waits
  // for the program to end; past the grace period, kills its group.
  void End(int signal);

  // Records the program's pid in `file` (written durably, where only aspisd writes), so that the
  // next aspisd ends it should this one be killed first.
  std::expected<void, int> Record(const std::filesystem::path& file) const;
  // Ends, with SIGTERM as End does, the program recorded in `file` by an aspisd that was killed
  // while it ran, if that process still runs `argv` (a pid is reused: its executable is argv[0],
  // its command line `argv` or a title naming argv's last); then removes `file`.
  static void EndLeftBehind(const std::filesystem::path& file, const std::vector<std::string>& argv,
                            std::chrono::milliseconds grace);

 private:
  NetworkDaemon(pid_t pid, Fd pidfd, std::chrono::milliseconds grace)
      : pid_(pid), pidfd_(std::move(pidfd)), grace_(grace) {}

  pid_t pid_;
  Fd pidfd_;
  std::chrono::milliseconds grace_;
  bool ended_ = false;
};

// Runs `argv` (argv[0] a path) as `user` (its IDs, no supplementary group), with no descriptor of
// aspisd's but its standard ones, no signal blocked and an empty environment, and returns what it
// printed (up to 4 KiB) when it exited with 0. ENOENT: no such user; EAGAIN: it did not run, or
// failed; ETIMEDOUT: it had not ended within `timeout` (it is killed).
std::expected<std::string, int> OutputAs(
    const std::vector<std::string>& argv, const std::string& user,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The user and group IDs of `user`.
std::optional<std::pair<uid_t, gid_t>> Account(const std::string& user);

}  // namespace aspis::device::board
