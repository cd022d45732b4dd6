#pragma once

#include <sys/types.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <memory>
#include <string>

#include "core/fd.hpp"

// A DHCP client for an interface aspisd manages in dynamic mode: dhcpcd (IPv4 only, in the
// foreground, as aspisd's child), which asks for a lease, puts the address and routes on the
// interface (routes at the metric aspisd's own take), renews it, and takes it back when stopped.
// Errors are errno values, as applibs returns them.
namespace aspis::device::board {

struct DhcpClientConfig {
  std::filesystem::path program = "/usr/sbin/dhcpcd";
  // Whether dhcpcd writes the DNS servers it is given to /etc/resolv.conf (its hook); tests,
  // which share the machine's, turn it off.
  bool write_resolver = true;
  std::chrono::milliseconds stop_grace{5000};  // from a signal to SIGKILL
};

class DhcpClient {
 public:
  // Starts dhcpcd for `interface` in the network namespace `netns` (-1: aspisd's), routes at
  // `metric`. Errors: the errno of fork or of exec (ENOENT: dhcpcd is not installed).
  static std::expected<std::unique_ptr<DhcpClient>, int> Start(const DhcpClientConfig& config,
                                                               const std::string& interface,
                                                               int netns, std::uint32_t metric);
  // Stops it (SIGTERM): dhcpcd takes the address and routes off the interface, keeping its
  // lease; one that does not end within stop_grace is killed with its helpers.
  ~DhcpClient();
  DhcpClient(const DhcpClient&) = delete;
  DhcpClient& operator=(const DhcpClient&) = delete;

  // Asks for the lease to be renewed now.
  std::expected<void, int> Renew();
  // Gives the lease back to the server and ends (SIGALRM); the interface keeps no address.
  void Release();

 private:
  DhcpClient(pid_t pid, Fd pidfd, std::chrono::milliseconds grace)
      : pid_(pid), pidfd_(std::move(pidfd)), grace_(grace) {}
  // Sends `signal` and waits (grace_, then SIGKILL) for the process to end.
  void End(int signal);

  pid_t pid_;
  Fd pidfd_;
  std::chrono::milliseconds grace_;
  bool ended_ = false;
};

}  // namespace aspis::device::board
