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

// The operator API as types with their codecs: the CLI builds the requests and the service parses
// them; the service builds the answers and the CLI reads them, so each field's name and rule is
// written once. Request parsers refuse unknown fields, wrong types and values outside the rules
// (WireErrc::kProtocol, naming the field); answer readers refuse wrong types. None throws.
namespace aspis::wire::api {

inline constexpr std::array<std::string_view, 2> kOsFeeds = {"retail", "retail-eval"};
inline constexpr std::array<std::string_view, 3> kUpdatePolicies = {
    "UpdateAll", "No3rdPartyAppUpdates", "NoUpdates"};
inline constexpr std::size_t kMaxDeploymentImages = 64;

// Product and device group names: 1 to 50 characters, without `/` (it separates PRODUCT/GROUP),
// control or bidirectional formatting characters, or spaces at either end. Descriptions: at most
// 200 characters, without control or bidirectional formatting characters.
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

// How a deployment reaches its group (service/deploy/rollout.hpp): by stages, each a cumulative
// percent of the group's devices (1 to 100, ascending, the last 100; at most kMaxStages), or by
// batches of `batch_size` devices; the rollout pauses when more than `failure_threshold` percent
// of a stage's devices fail (0 to 100).
inline constexpr std::size_t kMaxStages = 10;
inline constexpr std::int64_t kMaxBatchSize = 1'000'000;
inline constexpr std::int64_t kDefaultFailureThreshold = 10;
struct Rollout {
  std::vector<std::int64_t> stages;
  std::int64_t batch_size = 0;
  std::int64_t failure_threshold = kDefaultFailureThreshold;
};

// The app images of a new deployment, each of another component, and how it rolls out (without
// a rollout, to every device of the group at once).
struct DeploymentRequest {
  std::vector<std::string> images;
  std::optional<Rollout> rollout;
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

// A new tenant: a name of 1 to 100 characters.
struct TenantRequest {
  std::string name;
};

// A new API token for a tenant. `role`: one of kRoles; `description`: at most 200 characters.
inline constexpr std::array<std::string_view, 3> kRoles = {"Administrator", "Contributor",
                                                           "Reader"};
struct TokenRequest {
  std::string role;
  std::string description;
};

// Claims a device: its ID, 64 lowercase hex characters.
struct DeviceClaim {
  std::string device_id;
};

// Changes a tenant's attestation policy; a field left out keeps its value. The golden boot PCRs
// are either pinned from a device or cleared, not both.
struct AttestationPolicyChange {
  std::optional<bool> allow_software_root_of_trust;
  std::optional<std::string> pin_boot_pcrs_from_device;  // a device ID
  bool clear_golden_boot_pcrs = false;
};

// An OS release registered from digests: version (1 to 100 characters), feed (one of kOsFeeds)
// and a lowercase hex SHA-256 for each launch component (wire::kLaunchComponents), no other.
struct OsReleaseRegistration {
  std::string version;
  std::string feed;
  std::vector<std::pair<std::string, std::string>> components;
};

// Why an OS release is retired: 1 to 500 characters, shown to operators.
struct OsReleaseRetirement {
  std::string reason;
};

std::string Serialize(const TenantRequest& request);
Expected<TenantRequest> ParseTenantRequest(std::string_view json);
std::string Serialize(const TokenRequest& request);
Expected<TokenRequest> ParseTokenRequest(std::string_view json);
std::string Serialize(const DeviceClaim& claim);
Expected<DeviceClaim> ParseDeviceClaim(std::string_view json);
std::string Serialize(const AttestationPolicyChange& change);
Expected<AttestationPolicyChange> ParseAttestationPolicyChange(std::string_view json);
std::string Serialize(const OsReleaseRegistration& registration);
Expected<OsReleaseRegistration> ParseOsReleaseRegistration(std::string_view json);
std::string Serialize(const OsReleaseRetirement& retirement);
Expected<OsReleaseRetirement> ParseOsReleaseRetirement(std::string_view json);
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
  std::int64_t installing = 0;
  std::int64_t installed = 0;
  std::int64_t reverted = 0;
  // (device, reason) of failed and reverted devices, the first 20.
  std::vector<std::pair<std::string, std::string>> failures;
};

// Where one opened stage of a rollout stands: its devices now in the group, those that installed
// every image, and those where one failed or reverted.
struct StageProgress {
  std::int64_t stage = 0;
  std::int64_t devices = 0;
  std::int64_t succeeded = 0;
  std::int64_t failed = 0;
};

// Deployment states.
inline constexpr std::array<std::string_view, 4> kDeploymentStates = {"rolling", "paused",
                                                                      "stopped", "complete"};

struct Deployment {
  std::string id;
  std::string device_group_id;
  std::int64_t created_at = 0;
  std::string created_by;
  std::vector<std::string> images;
  bool current = false;
  std::vector<ImageProgress> progress;  // in `deployment show` only
  std::optional<Rollout> rollout;       // staged deployments only
  std::string state;                    // one of kDeploymentStates
  std::int64_t stage = 0;               // stages opened so far
  std::string reason;                   // why it paused or stopped
  std::vector<StageProgress> stages;    // in `deployment show` only
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

struct Tenant {
  std::string id;
  std::string name;
  std::int64_t created_at = 0;
};

struct Token {
  std::string id;
  std::string role;
  std::string description;
  std::int64_t created_at = 0;
  bool revoked = false;
  std::string secret;  // the bearer token, in the answer that creates it only
};

// The publisher root a device pinned beside the tenant's, and what that means.
struct PublisherPin {
  std::string pinned;
  std::string tenant;
  std::string status;
};

// Where one of a device's targets stands, as the device last reported.
struct DeviceImageState {
  std::string image_id;
  std::string state;  // downloading, downloaded, failed
  std::string reason;
  std::int64_t updated_at = 0;
};

// One entry of a device's error report, with Azure Sphere's fields (times in Unix seconds; start
// and end by the device's clock).
struct ErrorReport {
  std::string device_id;
  std::string event_type;   // "Planned" (an update) or "Unplanned" (an error)
  std::string event_class;  // "OS" or "Application"
  std::int64_t event_count = 0;
  std::string description;
  std::int64_t start_time = 0;
  std::int64_t end_time = 0;
};

struct Device {
  std::string id;
  std::string tenant_id;
  std::int64_t claimed_at = 0;
  bool revoked = false;
  std::string verdict;  // of the last attestation
  std::string reasons;
  std::int64_t attested_at = 0;
  std::int64_t certificate_expiry = 0;
  std::int64_t last_check_in = 0;
  std::string os_version;
  std::string runtime_version;
  std::string root_of_trust;  // as operators read it: "tpm (EK issuer: ...)", ...
  std::string os_release;
  std::string device_group_id;
  std::string board;
  // In `device show` only.
  std::optional<PublisherPin> publisher_root;
  std::vector<DeviceImageState> images;
  std::optional<ErrorReport> latest_error_report;
};

struct AttestationAttempt {
  std::int64_t at = 0;
  std::string verdict;
  std::string reasons;
  bool proven = false;  // whether it proved possession of the identity key
};

// Boot PCR values by index, as hex.
using BootPcrs = std::vector<std::pair<std::string, std::string>>;

struct Attestation {
  std::string device_id;
  std::string verdict;
  std::string reasons;
  std::int64_t at = 0;
  std::string root_of_trust;
  std::string os_release;
  BootPcrs boot_pcrs;
  std::vector<AttestationAttempt> attempts;  // newest first
};

struct AttestationPolicy {
  bool allow_software_root_of_trust = false;
  BootPcrs golden_boot_pcrs;  // empty: none pinned
};

// A generation of the tenant CA.
struct CaCertificate {
  std::int64_t index = 0;
  std::string thumbprint;
  std::string subject;
  std::int64_t not_before = 0;
  std::int64_t not_after = 0;
  std::int64_t activates_at = 0;
  std::string state;  // Active, Inactive, Expired
};

struct AuditEntry {
  std::int64_t sequence = 0;
  std::string actor;
  std::string action;
  std::string target;
  std::int64_t at = 0;
};

// A tenant's publisher key set, as the service verified it.
struct PublisherKeySet {
  std::string tenant;
  std::int64_t version = 0;
  std::int64_t expires = 0;  // Unix seconds
  std::string root_fingerprint;
  std::vector<std::string> publisher_keys;  // fingerprints
  std::int64_t publisher_threshold = 0;
  json::Json envelope;  // the signed set (DSSE), in `publisher-key-set show` only; else null
};

// An image upload in progress: how many bytes the service holds.
struct Upload {
  std::string id;
  std::int64_t received = 0;
};

json::Json ToJson(const PublisherKeySet& set);
Expected<PublisherKeySet> PublisherKeySetFrom(const json::Json& doc);
json::Json ToJson(const Upload& upload);
Expected<Upload> UploadFrom(const json::Json& doc);

// What a DELETE removed.
struct Deletion {
  std::string id;
};

json::Json ToJson(const Deletion& deletion);
Expected<Deletion> DeletionFrom(const json::Json& doc);
json::Json ToJson(const Tenant& tenant);
json::Json ToJson(const Token& token);
json::Json ToJson(const Device& device);
json::Json ToJson(const Attestation& attestation);
json::Json ToJson(const AttestationPolicy& policy);
json::Json ToJson(const CaCertificate& ca);
json::Json ToJson(const AuditEntry& entry);
json::Json ToJson(const ErrorReport& report);
Expected<ErrorReport> ErrorReportFrom(const json::Json& doc);
Expected<Tenant> TenantFrom(const json::Json& doc);
Expected<Token> TokenFrom(const json::Json& doc);
Expected<Device> DeviceFrom(const json::Json& doc);
Expected<Attestation> AttestationFrom(const json::Json& doc);
Expected<AttestationPolicy> AttestationPolicyFrom(const json::Json& doc);
Expected<CaCertificate> CaCertificateFrom(const json::Json& doc);
Expected<AuditEntry> AuditEntryFrom(const json::Json& doc);
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
