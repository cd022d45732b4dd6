#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/apps/app_connections.hpp"
#include "device/apps/sandbox/denial.hpp"
#include "device/apps/system_events.hpp"
#include "device/board/board_definition.hpp"
#include "device/board/cert_store.hpp"
#include "device/board/network.hpp"
#include "device/board/peripheral_server.hpp"
#include "device/board/time_sync.hpp"
#include "device/board/wifi.hpp"
#include "package/app_manifest.hpp"

// The capability broker (DESIGN section 6): an app reaches what its manifest grants beyond the
// network only through descriptors aspisd passes it on its broker socket (descriptor 3 in the
// sandbox), after checking the manifest. Nothing is reachable that was not granted.
//
// Protocol (SOCK_SEQPACKET, one message each way): the app sends a JSON object
// {"call": NAME}; aspisd answers {"ok": true} with the call's descriptors attached (SCM_RIGHTS),
// or {"error": "EACCES", "errno": 13, "message": "..."}. Calls:
//   "storage.open"    the app's mutable storage file, read-write (MutableStorage); writes past
//                     SizeKB fail with EFBIG (the sandbox's RLIMIT_FSIZE)
//   "storage.delete"  empties it
//   "deviceauth.open" the app certificate (with its chain) and its key, PEM, read-only, once the
//                     device attested (DeviceAuthentication naming the device's tenant)
//   "sysevent.register" {"events": ["UpdateReadyForInstall", ...]} (SystemEventNotifications):
//                     the descriptor system events arrive on (system_events.hpp)
//   "sysevent.unregister"
//   "sysevent.defer"  {"event": "UpdateReadyForInstall", "minutes": N} (SoftwareUpdateDeferral)
//   "sysevent.resume" {"event": "UpdateReadyForInstall"} (SoftwareUpdateDeferral)
//   "power.reboot" (PowerControls ForceReboot), "power.down" {"seconds": N} (ForcePowerDown, for
//                     at most kMaxPowerDown),
//   "power.profile" {"profile": "HighPerformance" | "Balanced" | "PowerSaver"} (SetPowerProfile)
//   "rtc.save" (SystemTime): the system time written to the board's real-time clock
//   "networking.timesync" (no capability): {"ok": true, "enabled": bool}, the setting where
//                     aspisd keeps the time, else whether the kernel's clock is kept in sync
//   "networking.interfaces" (no capability): {"ok": true, "ready": bool, "interfaces":
//                     [{"name", "medium", "up", "connected", "ip", "internet"}]}
//   "gpio.open"       {"gpio": N, "mode": "input" | "push-pull" | "open-drain" | "open-source",
//                     "value": 0 | 1} (Gpio): the GPIO's channel (wire/peripheral.hpp)
//   "adc.open", "pwm.open", "i2c.open" {"id": N} (Adc, Pwm, I2cMaster): the controller's channel;
//                     N is the number its hardware definition gives C code
//   "spi.open"        {"id": N, "chip_select": -1 | -2} (SpiMaster)
//   "uart.open"       {"id": N, "baud": B, "data_bits": 5-8, "parity": "N" | "E" | "O",
//                     "stop_bits": 1 | 2, "flow_control": 0 none | 1 RTS/CTS | 2 XON/XOFF}
//                     (Uart): the UART's descriptor
//   "application.connect" {"component_id": ID} (AllowedApplicationConnections): a connection to
//                     real-time app ID (app_connections.hpp): EINVAL, EACCES or ECONNREFUSED
//   "intercore.open"  (a real-time capable app): its inter-core channel (app_connections.hpp)
//   "wifi.add", "wifi.duplicate", "wifi.set", "wifi.get", "wifi.forget", "wifi.persist",
//   "wifi.reload", "wifi.networks", "wifi.current", "wifi.scan", "wifi.diagnostics" (WifiConfig;
//                     EnterpriseWifiConfig too for EAP-TLS settings): the board's wpa_supplicant
//                     (board/wifi.hpp), ENOTSUP on a board without Wi-Fi; bytes travel in hex
//   "certstore.install", ".delete", ".move", ".list", ".space", ".show" (CertStore): the
//                     device's certificate store (board/cert_store.hpp), ENOTSUP without Wi-Fi
//   "networking.config.state", ".ip", ".release", ".renew", ".mac" (NetworkConfig),
//   ".mac.set" (HardwareAddressConfig), ".dhcpserver" (DhcpService), ".sntpserver"
//                     (SntpService): an interface aspisd manages (board/network.hpp), ENOTSUP
//                     where it manages none
//   "networking.timesync.set" {"enabled": bool} | {"ntp": "default"} | {"ntp": "automatic",
//                     "fallback": bool} | {"ntp": "custom", "servers": [hex], "fallback": bool},
//   "networking.timesync.last" (TimeSyncConfig): the time sync aspisd keeps
//                     (board/time_sync.hpp), ENOTSUP where it keeps none
// A peripheral the board does not have is ENODEV, one the manifest does not list EACCES, one the
// app has open already EBUSY.
// A request naming anything else, or carrying any other field, is refused (EPERM) and reported, as
// is one the manifest does not grant (EACCES), at most kReportsPerSecond a second; a defer or
// resume with no update pending is EINVAL.
namespace aspis::device::apps {

// What aspisd does for an app granted PowerControls or SystemTime; an empty one the device cannot
// do (ENOTSUP).
struct DeviceActions {
  std::function<void()> reboot;                          // ForceReboot
  std::function<void(std::chrono::seconds)> power_down;  // ForcePowerDown, then boot again
  std::function<Expected<void>()> save_time;             // SystemTime: clock_systohc
};

struct BrokerGrants {
  std::string component_id;
  // What the app's manifest grants; its peripherals as packing resolved them ("Gpio": ["8"],
  // "Uart": ["ISU0"]).
  package::AppCapabilities capabilities;
  std::filesystem::path storage_file;  // where the app's storage lives on the device
  // The device's tenant once it attested, and the app certificate and key files.
  std::function<std::string()> tenant;
  std::filesystem::path app_certificate;
  std::filesystem::path app_key;
  SystemEvents* events = nullptr;  // null: the device sends no system events
  // The board the peripherals are on and what opens them (null: the device has none).
  const board::BoardDefinition* board = nullptr;
  board::PeripheralServer* peripheral_server = nullptr;
  const DeviceActions* actions = nullptr;    // null: none
  AppConnections* connections = nullptr;     // null: the device relays none (ENOTSUP)
  std::shared_ptr<const Fd> intercore;       // a real-time app's end of its channel; null: none
  board::Wifi* wifi = nullptr;               // the board's Wi-Fi; null: it has none (ENOTSUP)
  board::CertStore* cert_store = nullptr;    // with Wi-Fi; null: none (ENOTSUP)
  board::NetworkControl* network = nullptr;  // what aspisd manages; null: nothing (ENOTSUP)
  board::TimeSync* time_sync = nullptr;      // the time sync aspisd keeps; null: none (ENOTSUP)
};

inline constexpr int kReportsPerSecond = 100;
inline constexpr std::chrono::seconds kMaxPowerDown{86400};

// Not thread-safe: one thread serves it, the one the app manager runs for the app.
class Broker {
 public:
  // Errors: kSandbox when the socket pair cannot be made.
  static Expected<Broker> Create(BrokerGrants grants, sandbox::DenialSink denials);

  // The app's end, passed into the sandbox; closed here once the sandbox has it.
  int app_end() const { return app_end_.get(); }
  void CloseAppEnd() { app_end_ = Fd(-1); }
  // aspisd's end: readable when a request waits, or when the app closed its end.
  int descriptor() const { return own_end_.get(); }
  // Answers one waiting request. Returns false once the app has closed its end.
  bool Serve();

 private:
  // Reports a refusal of `call` to the (rate-limited) sink.
  void Report(const std::string& call, const std::string& why) const;

  Broker(BrokerGrants grants, sandbox::DenialSink denials, Fd own, Fd app)
      : grants_(std::move(grants)),
        denials_(std::move(denials)),
        own_end_(std::move(own)),
        app_end_(std::move(app)) {}

  BrokerGrants grants_;
  sandbox::DenialSink denials_;
  Fd own_end_;
  Fd app_end_;
};

// How full an app's storage is: bytes used and its limit (SizeKB), for `show-quota`.
struct StorageQuota {
  std::uint64_t used = 0;
  std::uint64_t limit = 0;
};
StorageQuota QuotaOf(const BrokerGrants& grants);

}  // namespace aspis::device::apps
