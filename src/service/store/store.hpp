#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "service/store/database.hpp"

// The security service's records, on SQLite or PostgreSQL through the same queries. Every query
// about a tenant's data names the tenant: one tenant's records are invisible through another's.
// Times are Unix seconds. Thread-safe.
namespace aspis::service::store {

enum class Role { kAdministrator, kContributor, kReader };
std::string_view RoleName(Role role);
Expected<Role> ParseRole(std::string_view name);

struct Tenant {
  std::string id;
  std::string name;
  std::int64_t created_at = 0;
};

// A tenant's signing key other than its CA (the deployment key): the certificate, and the private
// key sealed with the service's master key (base64 of AES-256-GCM).
struct TenantKey {
  std::string tenant_id;
  std::string kind;  // "deployment"
  std::string certificate_pem;
  std::string sealed_key;
};

// One generation of a tenant's CA. Generation 1 is made with the tenant; each successor is made
// before its predecessor expires and signs from `activates_at` on.
struct TenantCa {
  std::string tenant_id;
  std::int64_t generation = 1;
  std::string certificate_pem;
  std::string sealed_key;
  std::int64_t activates_at = 0;
};

struct ApiToken {
  std::string id;
  std::string tenant_id;  // empty: a platform administrator's token (all tenants)
  Role role = Role::kReader;
  std::string description;
  std::string secret_hash;  // lowercase hex SHA-256 of the bearer secret; the secret is not stored
  std::int64_t created_at = 0;
  bool revoked = false;
};

struct Device {
  std::string id;
  std::string tenant_id;
  std::int64_t claimed_at = 0;
  bool revoked = false;
  std::string verdict = "never attested";  // of the last attestation: "trusted" or "untrusted"
  std::string reasons;                     // why the last attestation was untrusted
  std::int64_t last_attested = 0;
  std::int64_t certificate_expiry = 0;  // of the certificates issued at the last attestation
  std::int64_t last_check_in = 0;
  std::string os_version;  // as reported at the last check-in
  std::string runtime_version;
  // As proven at the last attestation that proved possession of the identity key.
  std::string root_of_trust;  // "tpm", "software", or empty before the first
  std::string boot_pcrs;      // hex values of rot::kBootPcrs, comma-separated (TPM devices)
  std::string os_release;     // the OS release the launch matched
  // TPM devices: the EK their identity key was bound to (hex SHA-256 of its SubjectPublicKeyInfo)
  // and the issuer of its certificate; empty until bound.
  std::string ek_fingerprint;
  std::string ek_issuer;
  std::string device_group_id;  // empty until the device is put in a group
  std::string publisher_root;   // the publisher root the device pinned, as it last reported it
  std::string board;            // the board it last reported; empty when unknown
};

// What the verifier requires of a tenant's devices beyond the platform's rules.
struct AttestationPolicy {
  bool allow_software_root_of_trust = false;
  std::string golden_boot_pcrs;  // Device::boot_pcrs' form; empty: none pinned
};

// What an attestation that proved possession of the identity key records on its device.
struct IssuedCertificate {
  std::string serial;  // hex, as crypto::Certificate::SerialHex gives it
  std::string tenant_id;
  std::string device_id;
  std::int64_t generation = 0;  // of the tenant CA that issued it
  std::int64_t not_after = 0;
};

struct AttestationRecord {
  std::string device_id;
  std::string verdict;  // "trusted" or "untrusted"
  std::string reasons;
  std::int64_t at = 0;
  std::int64_t certificate_expiry = 0;
  std::string root_of_trust;
  std::string boot_pcrs;
  std::string os_release;
  std::string ek_fingerprint;
  std::string ek_issuer;
  // The device certificates issued for this verdict, recorded by serial for the CRLs.
  std::vector<IssuedCertificate> issued;
};

struct RevokedCertificate {
  std::string serial;
  std::int64_t revoked_at = 0;
  bool operator==(const RevokedCertificate&) const = default;
};

// One attestation attempt of a claimed device, proven or not.
struct AttestationAttempt {
  std::string device_id;
  std::int64_t at = 0;
  std::string verdict;  // "trusted", "untrusted", "refused" (possession not proven), "error"
  std::string reasons;
  bool proven = false;  // whether the attempt proved possession of the identity key
};

// An OS release the verifier accepts: the digest each measured component reports when running it.
struct OsRelease {
  std::string version;
  std::string feed;  // "retail" or "retail-eval"
  std::int64_t created_at = 0;
  std::vector<std::pair<std::string, std::string>> components;  // (component, hex digest)
  std::string retired_reason;  // empty while the release is not retired
  std::int64_t retired_at = 0;
  // Published from packages: the platform's OS and board images that devices install. Empty for a
  // release registered from digests alone, which devices can attest to but not fetch.
  std::string image_id;
  std::string board_image_id;
};

// What a device reported at check-in about one image it was told to fetch.
struct DeviceImageStatus {
  std::string image_id;
  std::string state;   // "downloading", "downloaded", "failed"
  std::string reason;  // why it failed
  std::int64_t updated_at = 0;
};

// Where an image stands on a device group's devices, as they last reported.
struct ImageProgress {
  std::map<std::string, std::int64_t, std::less<>> devices;   // devices by state
  std::vector<std::pair<std::string, std::string>> failures;  // (device, reason), the first 20
};

// One entry of a device's error report, as it sent it (wire::ErrorEvent) and when it arrived.
struct ErrorReport {
  std::string device_id;
  std::uint64_t sequence = 0;
  std::string type;
  std::string event_class;
  std::string description;
  std::int64_t count = 0;
  std::int64_t start = 0;  // the device's clock
  std::int64_t end = 0;
  std::int64_t received_at = 0;  // the service's clock
};

// How long and how many error report entries are kept per device (Azure Sphere's limits).
inline constexpr std::int64_t kErrorReportDays = 14;
inline constexpr std::int64_t kErrorReportsPerDevice = 1000;

struct CheckInRecord {
  std::string tenant_id;
  std::string device_id;
  std::int64_t at = 0;
  std::string os_version;
  std::string runtime_version;
  std::string publisher_root;
  std::vector<DeviceImageStatus> images;  // replaces what the last check-in reported
  std::string board;
  std::vector<ErrorReport> error_reports;   // added (an entry sent again updates its count)
  std::uint64_t error_reports_dropped = 0;  // added to the device's dropped count
};

struct AuditEntry {
  std::int64_t sequence = 0;  // assigned by the store, increasing
  std::string tenant_id;
  std::string actor;   // who: a token ID, or "platform-admin"
  std::string action;  // what: "device.claim", "token.revoke", ...
  std::string target;  // on what: a device ID, a token ID, ...
  std::int64_t at = 0;
};

// The schema version this build migrates to.
int LatestSchemaVersion();
// Brings `db` up to schema `version`, each pending migration in one transaction (never down; a
// database newer than this build is an error). Store::Open does it for the latest version; an
// older target serves tests of a later migration's data step.
Expected<void> MigrateTo(Database& db, int version);

// A tenant's publisher key set (package/publisher_keys.hpp), as uploaded: the DSSE envelope.
struct PublisherKeySetRecord {
  std::string tenant_id;
  std::int64_t version = 0;
  std::string root_fingerprint;
  std::string envelope;  // JSON
  std::int64_t uploaded_at = 0;
};

// An image: a verified package, immutable, its file stored by its SHA-256.
struct Image {
  std::string id;         // the package's image ID
  std::string tenant_id;  // empty: a platform image (OS, board)
  std::string component_id;
  std::string name;
  std::string kind;  // "app", "rtapp", "os", "board"
  std::string version;
  std::int64_t security_version = 0;
  std::string sha256;  // lowercase hex SHA-256 of the whole package file
  std::int64_t size = 0;
  std::string manifest;  // the signed package manifest (JSON)
  std::int64_t uploaded_at = 0;
};

// A product: a model of device, as Azure Sphere has them.
struct Product {
  std::string id;  // UUID
  std::string tenant_id;
  std::string name;
  std::string description;
  std::int64_t created_at = 0;
};

// A device group of a product: its OS feed and how apps are updated.
struct DeviceGroup {
  std::string id;  // UUID
  std::string tenant_id;
  std::string product_id;
  std::string name;
  std::string description;
  std::string os_feed;        // "retail" or "retail-eval"
  std::string update_policy;  // "UpdateAll", "No3rdPartyAppUpdates", "NoUpdates"
  bool app_updates = true;    // cloud app updates (off for Development)
  std::int64_t created_at = 0;
};

// How a deployment reaches its group's devices: all at once (no stages), or stage by stage, each
// stage admitting more devices once every device of the one before reported.
struct Rollout {
  std::vector<std::int64_t> percents;  // each stage's cumulative share of the group, ascending
  std::int64_t batch_size = 0;         // or: devices each stage admits (percents empty)
  std::int64_t failure_threshold = 0;  // % of a stage's devices that may fail before it pauses
  bool staged() const { return !percents.empty() || batch_size > 0; }
};

// A set of app images for one device group; the newest is the group's current deployment.
struct Deployment {
  std::string id;  // UUID
  std::string tenant_id;
  std::string device_group_id;
  std::int64_t created_at = 0;
  std::string created_by;
  std::vector<std::string> image_ids;  // each of another component
  Rollout rollout;
  std::string state = "complete";  // "rolling", "paused", "stopped" or "complete"
  std::int64_t stage = 0;          // stages opened so far
  std::string reason;              // why it paused or stopped
  std::string paused_by;           // who paused it: an actor, or "aspis-service"
};

// What a device admitted to a rollout last reported about the deployment's images.
struct RolloutDevice {
  std::string device_id;
  std::int64_t stage = 0;  // the stage that admitted it
  std::vector<DeviceImageStatus> images;
};

// An image upload in progress: its bytes are received in parts, in order.
struct Upload {
  std::string id;
  std::string tenant_id;  // empty: by a platform administrator
  std::int64_t received = 0;
  std::int64_t created_at = 0;
};

class Store {
 public:
  // Brings the schema up to date (versioned migrations, each in a transaction).
  static Expected<std::unique_ptr<Store>> Open(std::unique_ptr<Database> database);

  // The schema version after migration.
  Expected<int> SchemaVersion();
  std::string_view Dialect() const { return db_->Dialect(); }

  // Errors: kConflict when the ID exists.
  Expected<void> CreateTenant(const Tenant& tenant);
  // Errors: kNotFound.
  Expected<Tenant> GetTenant(std::string_view id);
  Expected<std::vector<Tenant>> ListTenants();

  // Errors: kConflict when the tenant already has a key of that kind.
  Expected<void> PutTenantKey(const TenantKey& key);
  // Errors: kNotFound.
  Expected<TenantKey> GetTenantKey(std::string_view tenant, std::string_view kind);
  // Replaces the certificate of a key (reissued by a new CA generation). Errors: kNotFound.
  Expected<void> SetTenantKeyCertificate(std::string_view tenant, std::string_view kind,
                                         std::string_view certificate_pem);

  // Errors: kConflict when the tenant has that generation (another instance made it first).
  Expected<void> AddTenantCa(const TenantCa& ca);
  // Oldest generation first.
  Expected<std::vector<TenantCa>> ListTenantCas(std::string_view tenant);

  Expected<void> AddToken(const ApiToken& token);
  // Authentication: the token whose secret hashes to `secret_hash`, revoked or not (the caller
  // refuses revoked ones). Errors: kNotFound.
  Expected<ApiToken> FindTokenByHash(std::string_view secret_hash);
  Expected<std::vector<ApiToken>> ListTokens(std::string_view tenant);
  // Errors: kNotFound when the tenant has no such token.
  Expected<void> RevokeToken(std::string_view tenant, std::string_view token_id);

  // Binds a device to a tenant, once. Errors: kConflict when any tenant (this one included) has
  // claimed it; the error does not say which.
  Expected<void> ClaimDevice(std::string_view tenant, std::string_view device_id, std::int64_t at);
  // Errors: kNotFound when `tenant` has not claimed the device (even if another tenant has).
  Expected<Device> GetDevice(std::string_view tenant, std::string_view device_id);
  Expected<std::vector<Device>> ListDevices(std::string_view tenant);
  // Revoking also revokes, as of `at`, every certificate issued to the device until now (they
  // stay revoked after a restore: the device attests again for new ones).
  Expected<void> SetDeviceRevoked(std::string_view tenant, std::string_view device_id, bool revoked,
                                  std::int64_t at);

  // The unexpired revoked certificates that generation `generation` of the tenant's CA issued.
  Expected<std::vector<RevokedCertificate>> ListRevokedCertificates(std::string_view tenant,
                                                                    std::int64_t generation,
                                                                    std::int64_t now);
  // The next number of the generation's CRL (1, 2, ...). Errors: kNotFound.
  Expected<std::int64_t> NextCrlNumber(std::string_view tenant, std::int64_t generation);

  // For the attestation verifier, which knows only the device ID. Errors: kNotFound (unclaimed).
  Expected<Device> FindDeviceForAttestation(std::string_view device_id);
  // In one transaction: records `record.issued` (forgetting the device's certificates that expired
  // before `record.at`), sets the device's verdict and what it proved, and logs the attempt.
  // Errors: kConflict for a known serial or a device revoked meanwhile (the certificates must then
  // not be handed out; nothing is recorded), kNotFound for an unknown device.
  Expected<void> RecordAttestation(const AttestationRecord& record);
  // Logs an attempt without touching the device's verdict; the newest 20 proven and the newest 20
  // unproven attempts per device are kept.
  Expected<void> AddAttestationAttempt(const AttestationAttempt& attempt);
  // The device's logged attempts, newest first; empty unless `tenant` has claimed it.
  Expected<std::vector<AttestationAttempt>> ListAttestationAttempts(std::string_view tenant,
                                                                    std::string_view device_id);
  // Errors: kNotFound.
  Expected<void> SetAttestationPolicy(std::string_view tenant, const AttestationPolicy& policy);
  Expected<AttestationPolicy> GetAttestationPolicy(std::string_view tenant);

  // Records a check-in, in one transaction, and returns the device's next update-manifest sequence
  // number (1, 2, ...: strictly increasing). Errors: kNotFound when the tenant has not claimed the
  // device.
  Expected<std::int64_t> RecordCheckIn(const CheckInRecord& check_in);
  // The image statuses of the device's last check-in, by image ID.
  // The tenant's error report entries received at or after `since`, newest first, at most
  // `limit`; with `device_id`, that device's only.
  Expected<std::vector<ErrorReport>> ListErrorReports(std::string_view tenant, std::int64_t since,
                                                      std::string_view device_id = {},
                                                      std::int64_t limit = 100000);
  Expected<std::vector<DeviceImageStatus>> ListDeviceImages(std::string_view tenant,
                                                            std::string_view device_id);

  // Platform-wide reference values. Errors: kConflict when the version exists. Several
  // statements: run it in a Transaction.
  Expected<void> AddOsRelease(const OsRelease& release);
  // Oldest first.
  Expected<std::vector<OsRelease>> ListOsReleases();
  // The releases devices may be offered (published from packages, not retired), oldest first,
  // without their reference digests: what a device's targets are chosen from.
  Expected<std::vector<OsRelease>> ListOfferedOsReleases();
  // The releases that list `digest` (lowercase hex) for `component`, oldest first.
  Expected<std::vector<OsRelease>> FindOsReleasesListing(std::string_view component,
                                                         std::string_view digest);
  // Moves a release from Retail Evaluation to Retail. Errors: kNotFound (no such release in
  // Retail Evaluation, or it is retired).
  Expected<void> PromoteOsRelease(std::string_view version);
  // Devices running a retired release are untrusted. Errors: kNotFound.
  Expected<void> RetireOsRelease(std::string_view version, std::string_view reason,
                                 std::int64_t at);

  // Marks a nonce (by its hash) used until `expires_at`; kConflict when it was used before.
  // Forgets nonces that expired before `now`.
  Expected<void> UseNonce(std::string_view nonce_hash, std::int64_t expires_at, std::int64_t now);

  // Returns the entry's sequence number.
  Expected<std::int64_t> AppendAudit(const AuditEntry& entry);
  // The newest `limit` entries of `tenant`, newest first.
  Expected<std::vector<AuditEntry>> ListAudit(std::string_view tenant, std::size_t limit);

  // Runs `body` atomically (for a change and its audit entry together).
  Expected<void> Transaction(const std::function<Expected<void>()>& body) {
    return db_->Transaction(body);
  }

  // Platform administrator tokens (those of no tenant), revoked or not, oldest first.
  Expected<std::vector<ApiToken>> ListPlatformTokens();
  // Revokes every platform administrator token not revoked yet; returns their IDs.
  Expected<std::vector<std::string>> RevokePlatformTokens();
  // Runs `body` in a transaction that holds the platform-token lock (PostgreSQL: an advisory lock;
  // SQLite: the write lock), so that service instances starting together and `aspis-service
  // admin-token` see each other's platform tokens and do not each make one.
  Expected<void> PlatformTokenTransaction(const std::function<Expected<void>()>& body);

  // Publisher key sets. Put stores `record` when the tenant's stored version is
  // `replaces_version` (0: none yet); kConflict otherwise (another upload won).
  Expected<std::optional<PublisherKeySetRecord>> GetPublisherKeySet(std::string_view tenant);
  Expected<void> PutPublisherKeySet(const PublisherKeySetRecord& record,
                                    std::int64_t replaces_version);

  // Images. Errors: kConflict for an ID the tenant holds, or a platform image holds (for the
  // platform: any image holds); kNotFound. A tenant sees its own images. AddImage checks, then
  // inserts: run it in a Transaction.
  Expected<void> AddImage(const Image& image);
  Expected<Image> GetImage(std::string_view tenant, std::string_view id);
  Expected<std::vector<Image>> ListImages(std::string_view tenant);

  // Products and device groups, scoped by tenant. Errors: kConflict for a name in use (or, on
  // deletion, a product or group that holds devices), kNotFound. The deletions check and delete
  // in several statements: run them in a Transaction.
  Expected<void> AddProduct(const Product& product);
  Expected<Product> GetProduct(std::string_view tenant, std::string_view id);
  Expected<std::vector<Product>> ListProducts(std::string_view tenant);
  Expected<void> UpdateProduct(const Product& product);
  Expected<void> DeleteProduct(std::string_view tenant, std::string_view id);
  Expected<void> AddDeviceGroup(const DeviceGroup& group);
  Expected<DeviceGroup> GetDeviceGroup(std::string_view tenant, std::string_view id);
  // The tenant's groups, or one product's when `product` is not empty.
  Expected<std::vector<DeviceGroup>> ListDeviceGroups(std::string_view tenant,
                                                      std::string_view product);
  Expected<void> UpdateDeviceGroup(const DeviceGroup& group);
  Expected<void> DeleteDeviceGroup(std::string_view tenant, std::string_view id);
  // Puts a claimed device in a group of its tenant. Errors: kNotFound.
  Expected<void> SetDeviceGroup(std::string_view tenant, std::string_view device,
                                std::string_view group);

  // Deployments, newest first (the newest `limit`). A device group's deletion is refused while it
  // has any.
  Expected<void> AddDeployment(const Deployment& deployment);
  Expected<std::vector<Deployment>> ListDeployments(std::string_view tenant, std::string_view group,
                                                    std::int64_t limit = 1000);
  // Errors: kNotFound (another tenant's included).
  Expected<Deployment> GetDeployment(std::string_view tenant, std::string_view id);
  // Moves a deployment's rollout from (`from_state`, `from_stage`) to the state, stage, reason
  // and pauser of `to`, so that of two instances deciding at once only one moves it.
  // Errors: kConflict (it is not where `from_*` say), kNotFound.
  Expected<void> MoveRollout(const Deployment& to, std::string_view from_state,
                             std::int64_t from_stage);
  // Admits `devices` to the deployment's rollout at `stage`.
  Expected<void> AdmitDevices(std::string_view deployment, std::int64_t stage,
                              const std::vector<std::string>& devices, std::int64_t at);
  // The devices now in the deployment's group that its rollout admitted (at `stage`, or at any
  // stage when it is 0), with what they reported about the deployment's images.
  Expected<std::vector<RolloutDevice>> ListRolloutDevices(const Deployment& deployment,
                                                          std::int64_t stage = 0);
  // Whether the rollout admitted the device.
  Expected<bool> Admitted(std::string_view deployment, std::string_view device);
  // The IDs of the devices in a group.
  Expected<std::vector<std::string>> ListGroupDeviceIds(std::string_view tenant,
                                                        std::string_view group);
  // What the devices now in `group` last reported about an image.
  Expected<ImageProgress> GetImageProgress(std::string_view tenant, std::string_view group,
                                           std::string_view image_id);

  // Uploads. AdvanceUpload moves `received` from `from` to `to`; kConflict when it is not at
  // `from` (a part was lost or sent twice).
  Expected<void> AddUpload(const Upload& upload);
  Expected<Upload> GetUpload(std::string_view tenant, std::string_view id);
  Expected<void> AdvanceUpload(std::string_view id, std::int64_t from, std::int64_t to);
  Expected<void> DeleteUpload(std::string_view id);
  // Removes the upload and returns it, for the one caller that completes it: a second completion,
  // or a part sent after, finds no upload. Errors: kNotFound.
  Expected<Upload> ClaimUpload(std::string_view tenant, std::string_view id);
  // Uploads in progress for `tenant`.
  Expected<std::int64_t> CountUploads(std::string_view tenant);
  Expected<std::vector<Upload>> ListUploadsCreatedBefore(std::int64_t at);

 private:
  Expected<void> RecordErrorReports(const CheckInRecord& check_in);
  explicit Store(std::unique_ptr<Database> db) : db_(std::move(db)) {}

  Expected<void> InsertAttempt(const AttestationAttempt& attempt);
  // Within a transaction.
  Expected<void> InsertIssued(const std::vector<IssuedCertificate>& issued, std::int64_t now);
  // The tenant's ($1) deployments matching `condition` (SQL after "WHERE tenant_id = $1 AND").
  Expected<std::vector<Deployment>> DeploymentsWhere(std::string_view condition,
                                                     const std::vector<Value>& params);
  Expected<std::vector<OsRelease>> ReleasesWhere(std::string_view condition,
                                                 const std::vector<Value>& params,
                                                 bool with_components = true);

  std::unique_ptr<Database> db_;
};

}  // namespace aspis::service::store
