#pragma once

#include <sys/types.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/fd.hpp"

// The programs aspisd runs for interfaces it manages: dhcpcd, the DHCP client of an interface in
// dynamic mode, and dnsmasq, the DHCP server of a private network. Each runs as aspisd's child in
// a process group of its own, in the network namespace of the interfaces (aspisd's, or a test's),
// its output discarded. Errors are errno values, as applibs returns them.
namespace aspis::device::board {

struct NetworkDaemons {
  std::filesystem::path dhcp_client = "/usr/sbin/dhcpcd";
  std::filesystem::path dhcp_server = "/usr/sbin/dnsmasq";
  // Where the DHCP servers keep their leases.
  std::filesystem::path leases_dir = "/var/lib/aspisd/dhcp";
  // Whether dhcpcd writes the DNS servers it is given to /etc/resolv.conf (its hook); tests,
  // which share the machine's, turn it off.
  bool write_resolver = true;
  std::chrono::milliseconds stop_grace{5000};  // from a signal to SIGKILL
};

class NetworkDaemon {
 public:
  // Runs `argv` (argv[0] a path) in the network namespace `netns` (-1: aspisd's). Errors: the
  // errno of fork or of exec (ENOENT: the program is not installed).
  static std::expected<std::unique_ptr<NetworkDaemon>, int> Start(std::vector<std::string> argv,
                                                                  int netns,
                                                                  std::chrono::milliseconds grace);
  // Ends it with SIGTERM.
  ~NetworkDaemon();
  NetworkDaemon(const NetworkDaemon&) = delete;
  NetworkDaemon& operator=(const NetworkDaemon&) = delete;

  // Sends `signal`; ESRCH once the program ended.
  std::expected<void, int> Signal(int signal);
  // Sends `signal` (again every 100 ms: a program loses one that lands while it starts) and waits
  // for the program to end; past the grace period, kills its group.
  void End(int signal);

 private:
  NetworkDaemon(pid_t pid, Fd pidfd, std::chrono::milliseconds grace)
      : pid_(pid), pidfd_(std::move(pidfd)), grace_(grace) {}

  pid_t pid_;
  Fd pidfd_;
  std::chrono::milliseconds grace_;
  bool ended_ = false;
};

}  // namespace aspis::device::board
