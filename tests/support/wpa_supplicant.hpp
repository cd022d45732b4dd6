#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/process.hpp"

namespace aspis::testing {

// A real wpa_supplicant for a test. There is no radio here, so it runs its wired driver on one
// end of a veth pair (wl0, wl1) in a network namespace of its own; its control interface and
// configuration handling are wpa_supplicant's own. The control socket is control(), the
// configuration file config() (update_config=1: SAVE_CONFIG writes it).
class WpaSupplicant {
 public:
  // With `associate`, wpa_supplicant associates at once with the first enabled network (ap_scan=0,
  // as on a wired port), so an authenticator on wl1 (StartAuthenticator) hears it.
  explicit WpaSupplicant(const std::filesystem::path& dir, bool associate = false)
      : dir_(dir),
        configured_(Configure(dir, associate)),
        process_({"unshare", "-n", "sh", "-c",
                  "ip link add wl0 type veth peer name wl1 && ip link set wl0 up && ip link set "
                  "wl1 up && exec wpa_supplicant -i wl0 -D wired -c " +
                      config().string()},
                 std::nullopt, 15, (dir / "wpa_supplicant.log").string()) {}

  int pid() const { return process_.pid(); }  // wpa_supplicant's, once it runs
  // Waits up to 10 s for the control socket.
  bool Ready() const {
    for (int i = 0; i < 1000 && !std::filesystem::exists(control()); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::filesystem::exists(control());
  }

  // Starts hostapd on wl1 as a wired 802.1X authenticator whose own EAP server takes EAP-TLS
  // from a client whose certificate chains to `ca`, proving itself with `cert` and `key` (PEM
  // files). Waits up to 10 s for it to listen.
  bool StartAuthenticator(const std::filesystem::path& ca, const std::filesystem::path& cert,
                          const std::filesystem::path& key) {
    std::ofstream(dir_ / "eap_users") << "* TLS\n";
    std::ofstream(dir_ / "hostapd.conf")
        << "interface=wl1\ndriver=wired\nieee8021x=1\neap_server=1\neap_user_file="
        << (dir_ / "eap_users").string() << "\nca_cert=" << ca.string()
        << "\nserver_cert=" << cert.string() << "\nprivate_key=" << key.string()
        << "\nctrl_interface=" << (dir_ / "hostapd").string() << "\n";
    authenticator_.emplace(
        std::vector<std::string>{"nsenter", "-t", std::to_string(process_.pid()), "-n", "hostapd",
                                 (dir_ / "hostapd.conf").string()},
        std::nullopt, 15, (dir_ / "hostapd.log").string());
    for (int i = 0; i < 1000 && !std::filesystem::exists(dir_ / "hostapd" / "wl1"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::filesystem::exists(dir_ / "hostapd" / "wl1");
  }

  // wpa_supplicant's STATUS (wpa_cli), once its EAP state is `eap_state` or after 20 s.
  std::string StatusOnceEap(const std::string& eap_state) const {
    std::string status;
    for (int i = 0; i < 200; ++i) {
      status =
          RunProcess({"wpa_cli", "-p", (dir_ / "ctrl").string(), "-i", "wl0", "status"}).output;
      if (status.find("EAP state=" + eap_state) != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return status;
  }

  std::string Log() const { return Read(dir_ / "wpa_supplicant.log"); }

  std::filesystem::path control() const { return dir_ / "ctrl" / "wl0"; }
  std::filesystem::path config() const { return dir_ / "wpa_supplicant.conf"; }
  std::string Config() const { return Read(config()); }

 private:
  static std::string Read(const std::filesystem::path& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  static bool Configure(const std::filesystem::path& dir, bool associate) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "wpa_supplicant.conf")
        << "ctrl_interface=" << (dir / "ctrl").string() << "\nupdate_config=1\n"
        << (associate ? "ap_scan=0\n" : "");
    return true;
  }

  std::filesystem::path dir_;
  bool configured_;  // before the process starts
  BackgroundProcess process_;
  std::optional<BackgroundProcess> authenticator_;  // stopped first
};

}  // namespace aspis::testing
