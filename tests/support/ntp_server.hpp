#pragma once

#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "support/process.hpp"

namespace aspis::testing {

// An NTP server for a test: chronyd serving its own clock (a local reference, never setting it)
// on a loopback address and UDP port of its own. A test's second server (`second`) has another
// address, and the first's port, `port`.
class NtpServer {
 public:
  explicit NtpServer(const std::filesystem::path& dir, bool second = false, int port = 0)
      : address_("127.54." + std::to_string((::getpid() >> 8) & 0xff) + "." +
                 std::to_string(((::getpid() & 0x7f) << 1) | (second ? 1 : 0))),
        port_(port != 0 ? port : FreePort()),
        configured_(Configure(dir, address_, port_)),
        process_({"/usr/sbin/chronyd", "-d", "-x", "-f", (dir / "ntp-server.conf").string()},
                 std::nullopt, 15, (dir / "ntp-server.log").string()) {}

  const std::string& address() const { return address_; }
  std::uint16_t port() const { return static_cast<std::uint16_t>(port_); }

 private:
  static bool Configure(const std::filesystem::path& dir, const std::string& address, int port) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "ntp-server.conf")
        << "local stratum 10\nallow 127.0.0.0/8\nbindaddress " << address << "\nport " << port
        << "\ncmdport 0\npidfile " << (dir / "ntp-server.pid").string() << "\n";
    return true;
  }

  std::string address_;
  int port_;
  bool configured_;  // before the process starts
  BackgroundProcess process_;
};

}  // namespace aspis::testing
