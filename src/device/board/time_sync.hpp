#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "device/board/network_daemon.hpp"

// The device's time sync, on a board whose definition gives aspisd its NTP servers ("Linux":
// {"TimeSync": [...]}): chronyd, aspisd's child, keeps the clock from the NTP servers apps choose
// (applibs' Networking_TimeSync_*): the board's (default), an app's one or two (custom), or those
// the leases of the interfaces aspisd manages name (automatic), each of the last two falling back
// on the board's when the app allows it; or nothing, disabled.
// The choice persists (written durably in the directory) and applies again when aspisd starts.
// Errors are errno values, as applibs returns them.
namespace aspis::device::board {

template <typename T>
using TimeSyncResult = std::expected<T, int>;

enum class NtpSource : std::uint8_t { kDefault, kCustom, kAutomatic };

struct TimeSyncChoice {
  bool enabled = true;
  NtpSource source = NtpSource::kDefault;
  std::vector<std::string> custom;  // 1 or 2, for kCustom
  bool fallback = true;             // to the board's servers, for kCustom and kAutomatic
  bool operator==(const TimeSyncChoice&) const = default;
};

// The last clock update from a server: who, and the clock before and after it.
struct NtpSync {
  std::string server;  // its address
  std::chrono::sys_seconds before;
  std::chrono::sys_seconds ntp;
};

inline constexpr std::size_t kMaxNtpServerName = 253;

class TimeSync {
 public:
  struct Config {
    std::vector<std::string> default_servers;  // the board's
    std::filesystem::path dir;                 // the choice and chronyd's configuration
    // chronyd's command socket's: every directory above it must let chronyd's user through.
    std::filesystem::path socket_dir = "/run/aspisd-chrony";
    std::filesystem::path chronyd = "/usr/sbin/chronyd";
    std::filesystem::path chronyc = "/usr/bin/chronyc";
    std::string user = "_chrony";  // whom chronyd runs as, once started
    bool set_clock = true;         // false (tests): chronyd measures, never sets the clock (-x)
    std::uint16_t port = 123;      // the servers' (tests: a port of their own)
    std::optional<int> poll;       // log2 of the seconds between polls; chronyd's own when unset
    std::chrono::milliseconds stop_grace{5000};
    // The NTP servers the network's DHCP servers name (automatic; none when unset), asked again
    // every `recheck` while automatic time sync is on: chronyd restarts when they changed.
    std::function<std::vector<std::string>()> network_servers;
    std::chrono::milliseconds recheck{30000};
  };

  // Reads the choice kept in `config.dir` (the default when there is none, or it is damaged) and
  // applies it. Errors: EIO when the directory cannot be made.
  static TimeSyncResult<std::unique_ptr<TimeSync>> Open(Config config);

  TimeSyncChoice Choice();
  // Each change is kept, then applied: chronyd restarts with the servers chosen, or stops (a
  // choice already in force changes nothing). ENOENT when chronyd is missing (the choice stays
  // kept).
  TimeSyncResult<void> SetEnabled(bool enabled);
  TimeSyncResult<void> UseDefault();
  // 1 or 2 servers, each a host name or an IPv4 address of at most kMaxNtpServerName characters
  // (EINVAL otherwise, before anything changes).
  TimeSyncResult<void> UseCustom(std::vector<std::string> servers, bool fallback);
  TimeSyncResult<void> UseAutomatic(bool fallback);
  // What chronyd last took from a server (chronyc's tracking, asked as chronyd's user, at most
  // once a second): ENOENT before it synced, while chronyd starts, or while time sync is
  // disabled.
  TimeSyncResult<NtpSync> LastSync();

 private:
  explicit TimeSync(Config config) : config_(std::move(config)) {}
  TimeSyncResult<void> Keep(TimeSyncChoice choice);  // with mutex_ held
  TimeSyncResult<void> Apply();                      // with mutex_ held
  std::vector<std::string> Argv() const;             // chronyd's
  // Ends the chronyd an aspisd that was killed left running (its pid recorded in the directory).
  void EndOrphan();
  // Asks for the network's NTP servers every config_.recheck, while automatic time sync is on.
  void Recheck(const std::stop_token& stop);
  std::vector<std::string> NetworkServers() const;

  const Config config_;
  std::mutex mutex_;
  TimeSyncChoice choice_;                   // guarded by mutex_
  std::unique_ptr<NetworkDaemon> chronyd_;  // guarded by mutex_
  std::optional<std::pair<std::chrono::steady_clock::time_point, TimeSyncResult<NtpSync>>>
      asked_;                         // the last LastSync's answer; guarded by mutex_
  std::vector<std::string> network_;  // the network's servers chronyd has; guarded by mutex_
  std::jthread recheck_;              // last: stops before the rest goes
};

// chronyc's `-c tracking` line, read (exposed for tests): nullopt before a sync.
std::optional<NtpSync> ParseTracking(std::string_view csv);

}  // namespace aspis::device::board
