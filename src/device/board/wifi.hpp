#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "core/fd.hpp"

struct wpa_ctrl;

// A board's Wi-Fi, through wpa_supplicant's control interface (libwpa_client): what applibs'
// wificonfig.h asks of it. wpa_supplicant owns the radio and its configuration file; aspisd only
// edits its networks, one control command at a time, with every value an app gave in a form the
// command and the saved file cannot be broken out of (SSIDs and keys in hex, names checked).
// Errors are errno values, as applibs returns them: EAGAIN when wpa_supplicant does not answer (or
// is busy), ENODEV for a network ID it does not have (ENOENT when forgetting one), EINVAL for a
// negative one, ENOMEM with kMaxWifiNetworks stored, ERANGE and EINVAL for values out of Azure
// Sphere's bounds or that wpa_supplicant's file would not read back whole (a printable SSID or
// passphrase in which a '#' falls outside its quotes).
namespace aspis::device::board {

inline constexpr std::size_t kMaxWifiNetworks = 37;  // as an Azure Sphere device stores
inline constexpr std::size_t kMaxSsid = 32;
inline constexpr std::size_t kMaxConfigName = 16;
inline constexpr std::size_t kMaxEapIdentity = 254;

// Azure Sphere's WifiConfig_Security values.
enum class WifiSecurity : std::uint8_t { kUnknown = 0, kOpen = 1, kWpa2Psk = 2, kWpa2EapTls = 3 };

// The certificates an EAP-TLS network authenticates with: the root CA its server's certificate
// must chain to, and the device's own (a client certificate's file holds its key too).
enum class WifiCertificate : std::uint8_t { kRootCa, kClient };

struct StoredWifiNetwork {
  int id = 0;
  Bytes ssid;
  WifiSecurity security = WifiSecurity::kUnknown;
  bool enabled = false;
  bool connected = false;
  std::string config_name;
};

// A network seen by a scan, or the one connected to.
struct SeenWifiNetwork {
  int id = -1;  // the stored network's, for the connected one
  Bytes ssid;
  std::array<std::uint8_t, 6> bssid{};
  WifiSecurity security = WifiSecurity::kUnknown;
  std::uint32_t frequency_mhz = 0;
  int rssi = 0;
};

// Azure Sphere's WifiConfig_NetworkDiagnostics error values.
enum class WifiFailure : std::int32_t {
  kConnectionFailed = 1,
  kNetworkNotFound = 2,
  kNoPskIncluded = 3,
  kWrongKey = 4,
  kAuthenticationFailed = 5,  // EAP-TLS
};

// The most recent failure to connect to a network, and the network's state now.
struct WifiDiagnostics {
  bool enabled = false;  // false while wpa_supplicant holds it back after failures too
  bool connected = false;
  WifiFailure error = WifiFailure::kConnectionFailed;
  std::chrono::sys_seconds when{};
  // For an EAP-TLS failure on the server's certificate: OpenSSL's X509_V_ERR_* (0: unspecified),
  // the certificate's depth in the server's chain and its subject (as wpa_supplicant prints it).
  int cert_error = 0;
  int cert_depth = 0;
  std::string cert_subject;
};

// What wpa_supplicant's events ("<3>CTRL-EVENT-..." monitor messages) say of failed connections,
// by network ID. Thread-safe. Exposed for tests.
class WifiFailures {
 public:
  // `event` heard at `now`; `current` answers which network wpa_supplicant is connecting to (for
  // an EAP failure, which names none).
  void OnEvent(std::string_view event, std::chrono::sys_seconds now,
               const std::function<std::optional<int>()>& current);
  void Record(int id, WifiDiagnostics failure);
  void Forget(int id);  // -1: every network's
  // Network `id`'s last failure: the last one recorded, or that no scan found it since, when it
  // is `enabled` and not `connected`. The state fields are the caller's to fill.
  std::optional<WifiDiagnostics> Of(int id, bool enabled, bool connected) const;

 private:
  void Keep(int id, WifiDiagnostics failure, std::chrono::sys_seconds when);  // with mutex_ held

  mutable std::mutex mutex_;
  std::map<int, WifiDiagnostics> failures_;
  std::optional<WifiDiagnostics> certificate_;  // this attempt's, until its network is named
  std::optional<std::chrono::sys_seconds> not_found_;
};

template <typename T>
using WifiResult = std::expected<T, int>;

// Thread-safe. Connects to the control socket on first use, and again after wpa_supplicant
// restarted. A thread of its own listens to wpa_supplicant's events for Diagnostics.
class Wifi {
 public:
  explicit Wifi(std::filesystem::path control);  // /run/wpa_supplicant/wlan0
  ~Wifi();
  Wifi(const Wifi&) = delete;
  Wifi& operator=(const Wifi&) = delete;

  // A new network, disabled and open: its ID. ENOMEM with kMaxWifiNetworks stored.
  WifiResult<int> Add();
  // Network `id`'s security, by its key management.
  WifiResult<WifiSecurity> Security(int id);
  // A new network, disabled, with network `id`'s SSID, security, key and EAP-TLS settings, named
  // `config_name` (as SetConfigName): its ID. On failure none is added.
  WifiResult<int> Duplicate(int id, std::string_view config_name);
  // SSID: 1 to 32 bytes (ERANGE).
  WifiResult<void> SetSsid(int id, ByteView ssid);
  // kOpen, kWpa2Psk or kWpa2EapTls (EINVAL otherwise).
  WifiResult<void> SetSecurity(int id, WifiSecurity security);
  // A passphrase of 8 to 63 printable ASCII characters, or 64 hex digits (ERANGE, EINVAL).
  WifiResult<void> SetPsk(int id, std::string_view psk);
  WifiResult<void> SetEnabled(int id, bool enabled);
  WifiResult<void> SetTargetedScan(int id, bool enabled);
  // 1 to 16 printable characters without quotes or backslashes (ERANGE, EINVAL).
  WifiResult<void> SetConfigName(int id, std::string_view name);
  // EAP-TLS: the identity the network's authentication server knows the device by (1 to 254
  // bytes, ERANGE), and the file each certificate is read from (a printable path, EINVAL
  // otherwise), which need not exist yet. Unset, they read back empty.
  WifiResult<void> SetIdentity(int id, ByteView identity);
  WifiResult<Bytes> Identity(int id);
  WifiResult<void> SetCertificateFile(int id, WifiCertificate which,
                                      const std::filesystem::path& file);
  WifiResult<std::filesystem::path> CertificateFile(int id, WifiCertificate which);
  // Removes network `id`, or every network when `id` is -1.
  WifiResult<void> Forget(int id);
  // Writes the networks to wpa_supplicant's configuration file; Reload reads it again.
  WifiResult<void> Persist();
  WifiResult<void> Reload();
  WifiResult<std::vector<StoredWifiNetwork>> Stored();
  // ENOTCONN when not connected.
  WifiResult<SeenWifiNetwork> Current();
  // Network `id`'s most recent failure to connect, from the events heard since aspisd started
  // (or wpa_supplicant restarted); ENODEV when there is none, or no such network.
  WifiResult<WifiDiagnostics> Diagnostics(int id);
  // Asks for a scan (its results come later) and returns what the last one saw.
  WifiResult<std::vector<SeenWifiNetwork>> Scan();

 private:
  // Sends `command`; its answer, or EAGAIN. A "FAIL" answer is `fail`.
  WifiResult<std::string> Request(const std::string& command, int fail = EINVAL);
  WifiResult<void> Exists(int id);  // ENODEV when wpa_supplicant has no network `id`
  // Every stored network's ID and flags, in order.
  WifiResult<std::vector<std::pair<int, std::string>>> List();
  WifiResult<void> SetNetwork(int id, const std::string& field, const std::string& value);
  WifiResult<Bytes> NetworkValue(int id, const std::string& field);
  // NetworkValue of a network that exists (ENODEV), empty when the field is not set.
  WifiResult<Bytes> OptionalValue(int id, const std::string& field);
  // The network wpa_supplicant is connected to (`connected`), or working on, if any.
  WifiResult<std::optional<int>> CurrentId(bool connected);
  // Attaches to wpa_supplicant's events until `stop`, again whenever it restarts.
  void Monitor(const std::stop_token& stop);
  // Hands the events of one attached connection to failures_ until it fails or `stop`.
  void Listen(wpa_ctrl& monitor, const std::stop_token& stop);

  const std::filesystem::path control_;
  std::mutex mutex_;
  wpa_ctrl* ctrl_ = nullptr;  // guarded by mutex_
  WifiFailures failures_;
  Fd wake_;               // an eventfd: Monitor returns once it is written
  std::jthread monitor_;  // last: it uses the members above
};

// wpa_supplicant's text, parsed (exposed for tests): a network value GET_NETWORK prints (a quoted
// string or hex); SCAN_RESULTS' table; the security its flags or key_mgmt name.
std::optional<Bytes> ParseNetworkValue(std::string_view text);
std::vector<SeenWifiNetwork> ParseScanResults(std::string_view text);
WifiSecurity SecurityOfFlags(std::string_view flags);

}  // namespace aspis::device::board
