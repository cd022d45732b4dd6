#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "support/process.hpp"

namespace aspis::testing {

// A real wpa_supplicant for a test. There is no radio here, so it runs its wired driver on one
// end of a veth pair in a network namespace of its own; its control interface and configuration
// handling are wpa_supplicant's own. The control socket is control(), the configuration file
// config() (update_config=1: SAVE_CONFIG writes it).
class WpaSupplicant {
 public:
  explicit WpaSupplicant(const std::filesystem::path& dir)
      : dir_(dir),
        configured_(Configure(dir)),
        process_(
            {"unshare", "-n", "sh", "-c",
             "ip link add wl0 type veth peer name wl1 && ip link set wl0 up && exec wpa_supplicant "
             "-i wl0 -D wired -c " +
                 config().string()},
            std::nullopt, 15, (dir / "wpa_supplicant.log").string()) {}

  // Waits up to 10 s for the control socket.
  bool Ready() const {
    for (int i = 0; i < 1000 && !std::filesystem::exists(control()); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::filesystem::exists(control());
  }

  std::filesystem::path control() const { return dir_ / "ctrl" / "wl0"; }
  std::filesystem::path config() const { return dir_ / "wpa_supplicant.conf"; }
  std::string Config() const {
    std::ifstream in(config());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  static bool Configure(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "wpa_supplicant.conf")
        << "ctrl_interface=" << (dir / "ctrl").string() << "\nupdate_config=1\n";
    return true;
  }

  std::filesystem::path dir_;
  bool configured_;  // before the process starts
  BackgroundProcess process_;
};

}  // namespace aspis::testing
