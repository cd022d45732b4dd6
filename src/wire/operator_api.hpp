#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

// Requests of the operator API for products, device groups, deployments and OS releases, as types
// with their codecs: the CLI builds them and the service parses them, so each field's name and
// rule is written once. Parsers refuse unknown fields, wrong types and values outside the rules
// (WireErrc::kProtocol, naming the field), and never throw.
namespace aspis::wire::api {

inline constexpr std::array<std::string_view, 2> kOsFeeds = {"retail", "retail-eval"};
inline constexpr std::array<std::string_view, 3> kUpdatePolicies = {
    "UpdateAll", "No3rdPartyAppUpdates", "NoUpdates"};
inline constexpr std::size_t kMaxDeploymentImages = 64;

// Product and device group names: 1 to 50 characters, without `/` (it separates PRODUCT/GROUP)
// or control characters. Descriptions: at most 200 characters.
bool IsName(std::string_view name);

// A field left out keeps its value (update) or takes its default (create).
struct ProductFields {
  std::optional<std::string> name;
  std::optional<std::string> description;
};

struct DeviceGroupFields {
  std::optional<std::string> name;
  std::optional<std::string> description;
  std::optional<std::string> os_feed;        // one of kOsFeeds
  std::optional<std::string> update_policy;  // one of kUpdatePolicies
  std::optional<bool> app_updates;           // cloud app updates
};

// The app images of a new deployment, each of another component.
struct DeploymentRequest {
  std::vector<std::string> images;
};

// Puts a device in a device group.
struct DeviceGroupAssignment {
  std::string device_group_id;
};

// An OS release made from a platform OS image and the board image it runs with.
struct OsReleasePublication {
  std::string image_id;
  std::string board_image_id;
  std::string feed;  // one of kOsFeeds
};

std::string Serialize(const ProductFields& fields);
Expected<ProductFields> ParseProductFields(std::string_view json);
std::string Serialize(const DeviceGroupFields& fields);
Expected<DeviceGroupFields> ParseDeviceGroupFields(std::string_view json);
std::string Serialize(const DeploymentRequest& request);
Expected<DeploymentRequest> ParseDeploymentRequest(std::string_view json);
std::string Serialize(const DeviceGroupAssignment& assignment);
Expected<DeviceGroupAssignment> ParseDeviceGroupAssignment(std::string_view json);
std::string Serialize(const OsReleasePublication& publication);
Expected<OsReleasePublication> ParseOsReleasePublication(std::string_view json);

}  // namespace aspis::wire::api
