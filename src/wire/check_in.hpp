#pragma once

#include <cstdint>
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

struct CheckIn {
  std::string device_id;
  std::string os_version;
  std::string runtime_version;
  std::vector<InstalledImage> images;
  std::string health = "ok";  // "ok" or a short description of what is wrong
};

// What the device should run. `targets` stays empty until deployments exist.
struct UpdateTarget {
  std::string image_id;
  std::string sha256;  // lowercase hex
  std::uint64_t size = 0;
  std::string url;
};

struct UpdateManifest {
  std::string device_id;
  std::uint64_t sequence = 0;  // strictly increasing per device
  std::int64_t issued_at = 0;  // Unix seconds
  std::int64_t expires_at = 0;
  std::string os_feed;  // "retail" or "retail-eval"
  std::vector<UpdateTarget> targets;
};

struct CheckInResponse {
  std::string manifest_envelope;            // DSSE JSON
  std::string deployment_certificates_pem;  // the deployment certificate, then its tenant CAs
};

// Codecs. Parsers bound sizes and counts and never throw.
std::string Serialize(const CheckIn& check_in);
Expected<CheckIn> ParseCheckIn(std::string_view json);
std::string Serialize(const UpdateManifest& manifest);
Expected<UpdateManifest> ParseUpdateManifest(std::string_view json);
std::string Serialize(const CheckInResponse& response);
Expected<CheckInResponse> ParseCheckInResponse(std::string_view json);

}  // namespace aspis::wire
