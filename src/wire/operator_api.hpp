#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"

// The operator API for products, device groups, deployments, images and OS releases, as types with
// their codecs: the CLI builds the requests and the service parses them; the service builds the
// answers and the CLI reads them, so each field's name and rule is written once. Request parsers
// refuse unknown fields, wrong types and values outside the rules (WireErrc::kProtocol, naming the
// field); answer readers refuse wrong types. None throws.
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

// --- Answers ---

struct Product {
  std::string id;
  std::string name;
  std::string description;
  std::int64_t created_at = 0;
};

struct DeviceGroup {
  std::string id;
  std::string product_id;
  std::string product;  // the product's name
  std::string name;
  std::string description;
  std::string os_feed;
  std::string update_policy;
  bool app_updates = true;
  std::int64_t created_at = 0;
};

// Where one image of a deployment stands on the group's devices, as they last reported.
struct ImageProgress {
  std::string image_id;
  std::int64_t downloading = 0;
  std::int64_t downloaded = 0;
  std::int64_t failed = 0;
  std::vector<std::pair<std::string, std::string>> failures;  // (device, reason), the first 20
};

struct Deployment {
  std::string id;
  std::string device_group_id;
  std::int64_t created_at = 0;
  std::string created_by;
  std::vector<std::string> images;
  bool current = false;
  std::vector<ImageProgress> progress;  // in `deployment show` only
};

struct Image {
  std::string id;
  std::string component_id;
  std::string name;
  std::string kind;
  std::string version;
  std::int64_t security_version = 0;
  std::string sha256;  // of the whole package
  std::int64_t size = 0;
  std::int64_t uploaded_at = 0;
  std::vector<std::string> target_boards;
};

struct OsRelease {
  std::string version;
  std::string feed;
  std::int64_t created_at = 0;
  std::string retired_reason;  // empty while not retired
  std::string image_id;        // empty for a release registered from digests
  std::string board_image_id;
  std::vector<std::pair<std::string, std::string>> components;  // (component, hex digest)
};

json::Json ToJson(const Product& product);
json::Json ToJson(const DeviceGroup& group);
json::Json ToJson(const Deployment& deployment);
json::Json ToJson(const Image& image);
json::Json ToJson(const OsRelease& release);
Expected<Product> ProductFrom(const json::Json& doc);
Expected<DeviceGroup> DeviceGroupFrom(const json::Json& doc);
Expected<Deployment> DeploymentFrom(const json::Json& doc);
Expected<Image> ImageFrom(const json::Json& doc);
Expected<OsRelease> OsReleaseFrom(const json::Json& doc);

}  // namespace aspis::wire::api
