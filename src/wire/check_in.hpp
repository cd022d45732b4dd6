#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

// Check-in (DESIGN section 5): the device posts what it runs over mutual TLS with its runtime
// certificate; the service answers with an update manifest in a DSSE envelope signed by the
// tenant's deployment key, and the deployment certificate chain that lets the device check it.
namespace aspis::wire {

inline constexpr std::string_view kManifestPayloadType = "application/vnd.aspis.manifest+json";

struct InstalledImage {
  std::string image_id;
  std::string component_id;
  std::string version;
};

// Where a target of the last update manifest stands on the device.
inline constexpr std::string_view kDownloading = "downloading";
inline constexpr std::string_view kDownloaded = "downloaded";  // fetched and verified, staged
inline constexpr std::string_view kFailed = "failed";
inline constexpr std::string_view kInstalling = "installing";  // being installed, or on trial
inline constexpr std::string_view kInstalled = "installed";    // runs, committed
inline constexpr std::string_view kReverted = "reverted";      // was installed, then taken back
inline constexpr std::array<std::string_view, 6> kTargetStates = {
    kDownloading, kDownloaded, kFailed, kInstalling, kInstalled, kReverted};
// The longest reason a target status carries; a device cuts longer ones (text::Truncated).
inline constexpr std::size_t kMaxReason = 1024;

struct TargetStatus {
  std::string image_id;
  std::string state;   // one of kTargetStates
  std::string reason;  // why it failed or was reverted
  bool operator==(const TargetStatus&) const = default;
};

// One entry of the device's error report (Azure Sphere's fields): what happened, how many times
// between `start` and `end` (Unix seconds, the device's clock), numbered by the device so that an
// entry sent twice (a lost answer) is stored once, with its latest count.
inline constexpr std::string_view kPlanned = "Planned";      // an update
inline constexpr std::string_view kUnplanned = "Unplanned";  // an error
inline constexpr std::string_view kClassOs = "OS";
inline constexpr std::string_view kClassApplication = "Application";
inline constexpr std::size_t kMaxErrorDescription = 512;
inline constexpr std::size_t kMaxErrorEvents = 64;  // per check-in

struct ErrorEvent {
  std::uint64_t sequence = 0;
  std::string type;         // kPlanned or kUnplanned
  std::string event_class;  // kClassOs or kClassApplication
  std::string description;  // "AppExit - component: ...; exit_code: 3"
  std::uint64_t count = 1;
  std::int64_t start = 0;
  std::int64_t end = 0;
  bool operator==(const ErrorEvent&) const = default;
};

struct CheckIn {
  std::string device_id;
  std::string os_version;
  std::string runtime_version;
  std::vector<InstalledImage> images;
  std::string health = "ok";  // "ok" or a short description of what is wrong
  // Lowercase hex fingerprint of the tenant publisher root the device pinned; empty before it
  // pinned one.
  std::string publisher_root;
  std::vector<TargetStatus> targets;
  // The board's name (its definition's Description.Name), so that the service offers OS releases
  // for it; empty when unknown.
  std::string board;
  // The error report entries not yet acknowledged (a check-in answered 200 acknowledges them),
  // and how many were dropped from the device's full queue since the last acknowledged one.
  std::vector<ErrorEvent> error_reports;
  std::uint64_t error_reports_dropped = 0;
};

// An image the device should run. The service chooses it; the package's own signature, which the
// device checks, says what it is.
// A delta the device may fetch instead of a target's package (package/delta.hpp): it rebuilds
// the target's exact package from the installed image `base_image_id`. The result is checked
// against the target's own SHA-256 and size; the delta's digest and size bound its download.
struct DeltaOffer {
  std::string base_image_id;
  std::string sha256;  // lowercase hex SHA-256 of the delta file
  std::uint64_t size = 0;
  std::string url;
  bool operator==(const DeltaOffer&) const = default;
};

struct UpdateTarget {
  std::string image_id;
  std::string component_id;
  std::string kind;  // "app", "rtapp", "os", "board"
  std::string version;
  std::uint64_t security_version = 0;
  std::string sha256;  // lowercase hex SHA-256 of the whole package file
  std::uint64_t size = 0;
  std::string url;  // the path to GET it from, on the service the device checks in with
  std::optional<DeltaOffer> delta;  // when the service has one from what the device runs
};

struct UpdateManifest {
  std::string device_id;
  std::uint64_t sequence = 0;  // strictly increasing per device
  std::int64_t issued_at = 0;  // Unix seconds
  std::int64_t expires_at = 0;
  std::string os_feed;  // "retail" or "retail-eval"
  std::vector<UpdateTarget> targets;
  // The targets list every app the device should run (the group takes the cloud's app updates):
  // an installed app they do not list is removed. False: apps are left as they are.
  bool apps_complete = false;
};

struct CheckInResponse {
  std::string manifest_envelope;            // DSSE JSON
  std::string deployment_certificates_pem;  // the deployment certificate, then its tenant CAs
  // The tenant's publisher key set (DSSE JSON) as its root signed it; empty when the tenant has
  // none. It needs no other signature: the device checks it against the root it pinned.
  std::string publisher_keys;
};

// Codecs. Parsers bound sizes and counts and never throw.
std::string Serialize(const CheckIn& check_in);
Expected<CheckIn> ParseCheckIn(std::string_view json);
std::string Serialize(const UpdateManifest& manifest);
Expected<UpdateManifest> ParseUpdateManifest(std::string_view json);
std::string Serialize(const CheckInResponse& response);
Expected<CheckInResponse> ParseCheckInResponse(std::string_view json);

}  // namespace aspis::wire
