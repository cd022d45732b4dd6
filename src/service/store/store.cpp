#include "service/store/store.hpp"

#include <charconv>
#include <ctime>

#include "service/store/engines.hpp"
#include "service/store/rows.hpp"

namespace aspis::service::store {

using namespace rows;

namespace {

// Each migration is a list of statements; `{SERIAL}` is the dialect's auto-increment key.
const std::vector<std::vector<std::string_view>> kMigrations = {
    {
        R"(CREATE TABLE tenants (
             id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at BIGINT NOT NULL))",
        R"(CREATE TABLE tenant_keys (
             tenant_id TEXT NOT NULL REFERENCES tenants (id), kind TEXT NOT NULL,
             certificate_pem TEXT NOT NULL, sealed_key TEXT NOT NULL,
             PRIMARY KEY (tenant_id, kind)))",
        R"(CREATE TABLE api_tokens (
             id TEXT PRIMARY KEY, tenant_id TEXT REFERENCES tenants (id),
             role TEXT NOT NULL, description TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,
             created_at BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0))",
        R"(CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant_id))",
        R"(CREATE TABLE devices (
             id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants (id),
             claimed_at BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0))",
        R"(CREATE INDEX devices_by_tenant ON devices (tenant_id))",
        R"(CREATE TABLE audit_log (
             sequence {SERIAL}, tenant_id TEXT NOT NULL, actor TEXT NOT NULL,
             action TEXT NOT NULL, target TEXT NOT NULL, at BIGINT NOT NULL))",
        R"(CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, sequence))",
    },
    {
        R"(CREATE TABLE os_releases (
             version TEXT PRIMARY KEY, feed TEXT NOT NULL, created_at BIGINT NOT NULL))",
        R"(CREATE TABLE reference_digests (
             component TEXT NOT NULL, digest TEXT NOT NULL,
             version TEXT NOT NULL REFERENCES os_releases (version),
             PRIMARY KEY (component, digest, version)))",
        R"(CREATE TABLE used_nonces (nonce_hash TEXT PRIMARY KEY, expires_at BIGINT NOT NULL))",
        R"(ALTER TABLE devices ADD COLUMN verdict TEXT NOT NULL DEFAULT 'never attested')",
        R"(ALTER TABLE devices ADD COLUMN reasons TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE devices ADD COLUMN last_attested BIGINT NOT NULL DEFAULT 0)",
        R"(ALTER TABLE devices ADD COLUMN certificate_expiry BIGINT NOT NULL DEFAULT 0)",
    },
    {
        // Tenant CAs by generation, so that a successor can be made before a CA expires.
        R"(CREATE TABLE tenant_cas (
             tenant_id TEXT NOT NULL REFERENCES tenants (id), generation BIGINT NOT NULL,
             certificate_pem TEXT NOT NULL, sealed_key TEXT NOT NULL,
             activates_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, generation)))",
        R"(INSERT INTO tenant_cas (tenant_id, generation, certificate_pem, sealed_key, activates_at)
             SELECT tenant_id, 1, certificate_pem, sealed_key, 0 FROM tenant_keys
             WHERE kind = 'ca')",
        R"(DELETE FROM tenant_keys WHERE kind = 'ca')",
    },
    {
        R"(ALTER TABLE devices ADD COLUMN last_check_in BIGINT NOT NULL DEFAULT 0)",
        R"(ALTER TABLE devices ADD COLUMN os_version TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE devices ADD COLUMN runtime_version TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE devices ADD COLUMN manifest_sequence BIGINT NOT NULL DEFAULT 0)",
    },
    {
        // The verifier's records: what a device proved at its last proven attestation, the
        // bounded log of every attempt, retired releases and each tenant's golden boot PCRs.
        R"(ALTER TABLE devices ADD COLUMN root_of_trust TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE devices ADD COLUMN boot_pcrs TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE devices ADD COLUMN os_release TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE os_releases ADD COLUMN retired_reason TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE os_releases ADD COLUMN retired_at BIGINT NOT NULL DEFAULT 0)",
        R"(ALTER TABLE tenants ADD COLUMN golden_boot_pcrs TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE tenants ADD COLUMN allow_software_rot BIGINT NOT NULL DEFAULT 0)",
        R"(ALTER TABLE devices ADD COLUMN ek_fingerprint TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE devices ADD COLUMN ek_issuer TEXT NOT NULL DEFAULT '')",
        R"(CREATE TABLE attestation_attempts (
             sequence {SERIAL}, device_id TEXT NOT NULL REFERENCES devices (id),
             at BIGINT NOT NULL, verdict TEXT NOT NULL, reasons TEXT NOT NULL,
             proven BIGINT NOT NULL))",
        R"(CREATE INDEX attestation_attempts_by_device ON attestation_attempts (device_id, sequence))",
        R"(CREATE INDEX reference_digests_by_digest ON reference_digests (component, digest))",
        R"(CREATE INDEX used_nonces_by_expiry ON used_nonces (expires_at))",
        // Device certificates by serial, for the CRL of the CA generation that issued them.
        R"(CREATE TABLE issued_certificates (
             serial TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
             device_id TEXT NOT NULL REFERENCES devices (id), generation BIGINT NOT NULL,
             not_after BIGINT NOT NULL, revoked_at BIGINT NOT NULL DEFAULT 0))",
        R"(CREATE INDEX issued_certificates_by_device ON issued_certificates (device_id))",
        R"(CREATE INDEX issued_certificates_revoked
             ON issued_certificates (tenant_id, generation, revoked_at))",
        R"(ALTER TABLE tenant_cas ADD COLUMN crl_number BIGINT NOT NULL DEFAULT 0)",
    },
    {
        // The image catalog (issue 10): publisher key sets, images, uploads in progress.
        R"(CREATE TABLE publisher_key_sets (
             tenant_id TEXT PRIMARY KEY REFERENCES tenants (id), version BIGINT NOT NULL,
             root_fingerprint TEXT NOT NULL, envelope TEXT NOT NULL,
             uploaded_at BIGINT NOT NULL))",
        // Image IDs are unique per tenant (the platform's images have tenant ''), so that one
        // tenant can neither learn nor take another's.
        R"(CREATE TABLE images (
             id TEXT NOT NULL, tenant_id TEXT NOT NULL, component_id TEXT NOT NULL,
             name TEXT NOT NULL, kind TEXT NOT NULL, version TEXT NOT NULL,
             security_version BIGINT NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
             manifest TEXT NOT NULL, uploaded_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, id)))",
        R"(CREATE INDEX images_by_tenant ON images (tenant_id, uploaded_at))",
        R"(CREATE TABLE uploads (
             id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, received BIGINT NOT NULL,
             created_at BIGINT NOT NULL))",
        R"(CREATE INDEX uploads_by_age ON uploads (created_at))",
        // Products and their device groups, as Azure Sphere has them.
        R"(CREATE TABLE products (
             id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants (id),
             name TEXT NOT NULL, description TEXT NOT NULL, created_at BIGINT NOT NULL,
             UNIQUE (tenant_id, name)))",
        R"(CREATE TABLE device_groups (
             id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants (id),
             product_id TEXT NOT NULL REFERENCES products (id), name TEXT NOT NULL,
             description TEXT NOT NULL, os_feed TEXT NOT NULL, update_policy TEXT NOT NULL,
             app_updates BIGINT NOT NULL, created_at BIGINT NOT NULL,
             UNIQUE (product_id, name)))",
        R"(ALTER TABLE devices ADD COLUMN device_group_id TEXT NOT NULL DEFAULT '')",
        // Deployments: the app images of a device group, newest current; the history is kept.
        R"(CREATE TABLE deployments (
             sequence {SERIAL}, id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL,
             device_group_id TEXT NOT NULL REFERENCES device_groups (id),
             created_at BIGINT NOT NULL, created_by TEXT NOT NULL))",
        R"(CREATE INDEX deployments_by_group ON deployments (device_group_id, sequence))",
        R"(CREATE TABLE deployment_images (
             deployment_id TEXT NOT NULL REFERENCES deployments (id),
             image_id TEXT NOT NULL, component_id TEXT NOT NULL,
             PRIMARY KEY (deployment_id, component_id)))",
    },
    {
        // OS releases published from packages name their OS and board images.
        R"(ALTER TABLE os_releases ADD COLUMN image_id TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE os_releases ADD COLUMN board_image_id TEXT NOT NULL DEFAULT '')",
        // What devices report at check-in: the publisher root they pin, each target's status.
        R"(ALTER TABLE devices ADD COLUMN publisher_root TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE devices ADD COLUMN board TEXT NOT NULL DEFAULT '')",
        R"(CREATE TABLE device_images (
             tenant_id TEXT NOT NULL, device_id TEXT NOT NULL, image_id TEXT NOT NULL,
             state TEXT NOT NULL, reason TEXT NOT NULL, updated_at BIGINT NOT NULL,
             PRIMARY KEY (tenant_id, device_id, image_id)))",
    },
    {
        // Staged rollouts: how a deployment rolls out, where it stands, and the devices each
        // opened stage admitted. A deployment made before has no stages and is complete.
        R"(ALTER TABLE deployments ADD COLUMN stages TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE deployments ADD COLUMN batch_size BIGINT NOT NULL DEFAULT 0)",
        R"(ALTER TABLE deployments ADD COLUMN failure_threshold BIGINT NOT NULL DEFAULT 0)",
        R"(ALTER TABLE deployments ADD COLUMN state TEXT NOT NULL DEFAULT 'complete')",
        R"(ALTER TABLE deployments ADD COLUMN stage BIGINT NOT NULL DEFAULT 0)",
        R"(ALTER TABLE deployments ADD COLUMN reason TEXT NOT NULL DEFAULT '')",
        R"(ALTER TABLE deployments ADD COLUMN paused_by TEXT NOT NULL DEFAULT '')",
        R"(CREATE TABLE rollout_devices (
             deployment_id TEXT NOT NULL REFERENCES deployments (id),
             device_id TEXT NOT NULL, stage BIGINT NOT NULL, admitted_at BIGINT NOT NULL,
             PRIMARY KEY (deployment_id, device_id)))",
    },
    {
        // Error reports: what devices send at check-in, kept 14 days or 1,000 per device.
        R"(CREATE TABLE error_reports (
             tenant_id TEXT NOT NULL, device_id TEXT NOT NULL, sequence BIGINT NOT NULL,
             event_type TEXT NOT NULL, event_class TEXT NOT NULL, description TEXT NOT NULL,
             event_count BIGINT NOT NULL, start_time BIGINT NOT NULL, end_time BIGINT NOT NULL,
             received_at BIGINT NOT NULL, PRIMARY KEY (tenant_id, device_id, sequence)))",
        R"(CREATE INDEX error_reports_received ON error_reports (tenant_id, received_at))",
        R"(ALTER TABLE devices ADD COLUMN error_reports_dropped BIGINT NOT NULL DEFAULT 0)",
    },
};

std::string ForDialect(std::string_view statement, std::string_view dialect) {
  std::string out(statement);
  const std::string_view serial =
      dialect == "postgresql" ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT";
  if (const auto at = out.find("{SERIAL}"); at != std::string::npos) out.replace(at, 8, serial);
  return out;
}

Tenant ToTenant(const Row& r) { return {Text(r, 0), Text(r, 1), Number(r, 2)}; }

ApiToken ToToken(const Row& r) {
  return {Text(r, 0),       Text(r, 1), ParseRole(Text(r, 2)).value_or(Role::kReader),
          Text(r, 3),       Text(r, 4), Number(r, 5),
          Number(r, 6) != 0};
}

Device ToDevice(const Row& r) {
  return {Text(r, 0),  Text(r, 1),   Number(r, 2), Number(r, 3) != 0, Text(r, 4),
          Text(r, 5),  Number(r, 6), Number(r, 7), Number(r, 8),      Text(r, 9),
          Text(r, 10), Text(r, 11),  Text(r, 12),  Text(r, 13),       Text(r, 14),
          Text(r, 15), Text(r, 16),  Text(r, 17),  Text(r, 18)};
}

constexpr std::string_view kDeviceColumns =
    "id, tenant_id, claimed_at, revoked, verdict, reasons, last_attested, certificate_expiry, "
    "last_check_in, os_version, runtime_version, root_of_trust, boot_pcrs, os_release, "
    "ek_fingerprint, ek_issuer, device_group_id, publisher_root, board";

AttestationAttempt ToAttempt(const Row& r) {
  return {Text(r, 0), Number(r, 1), Text(r, 2), Text(r, 3), Number(r, 4) != 0};
}

// Attempts kept per device; older ones are dropped as new ones arrive.
constexpr std::int64_t kAttemptsKept = 20;

AuditEntry ToAudit(const Row& r) {
  return {Number(r, 0), Text(r, 1), Text(r, 2), Text(r, 3), Text(r, 4), Number(r, 5)};
}

constexpr std::string_view kTokenColumns =
    "id, tenant_id, role, description, secret_hash, created_at, revoked";

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdministrator:
      return "Administrator";
    case Role::kContributor:
      return "Contributor";
    case Role::kReader:
      return "Reader";
  }
  return "Reader";
}

Expected<Role> ParseRole(std::string_view name) {
  for (Role role : {Role::kAdministrator, Role::kContributor, Role::kReader}) {
    if (RoleName(role) == name) return role;
  }
  return Fail(StoreErrc::kQuery,
              "unknown role \"" + std::string(name) + "\" (Administrator, Contributor or Reader)");
}

Expected<std::unique_ptr<Store>> Store::Open(std::unique_ptr<Database> database) {
  std::unique_ptr<Store> store(new Store(std::move(database)));
  if (auto ok = MigrateTo(*store->db_, LatestSchemaVersion()); !ok) {
    return std::unexpected(ok.error());
  }
  return store;
}

Expected<int> Store::SchemaVersion() {
  auto rows = db_->Query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!rows) return std::unexpected(rows.error());
  return static_cast<int>(Number(rows->at(0), 0));
}

int LatestSchemaVersion() { return static_cast<int>(kMigrations.size()); }

// All pending migrations run in one transaction. Service instances starting together against one
// PostgreSQL database queue on an advisory lock, so exactly one applies each migration (SQLite's
// BEGIN IMMEDIATE does the same across processes).
Expected<void> MigrateTo(Database& db, int target) {
  constexpr std::int64_t kMigrationLock = 0x6173706973;  // "aspis"
  if (target < 0 || target > LatestSchemaVersion()) {
    return Fail(StoreErrc::kQuery, "no schema version " + std::to_string(target));
  }
  return db.Transaction([&]() -> Expected<void> {
    if (db.Dialect() == "postgresql") {
      if (auto ok = Discard(db.Query("SELECT pg_advisory_xact_lock($1)", {kMigrationLock})); !ok) {
        return ok;
      }
    }
    if (auto ok = Discard(db.Query("CREATE TABLE IF NOT EXISTS schema_migrations (version "
                                   "BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)"));
        !ok) {
      return ok;
    }
    auto rows = db.Query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (!rows) return std::unexpected(rows.error());
    const auto current = static_cast<int>(Number(rows->at(0), 0));
    if (current > LatestSchemaVersion()) {
      return Fail(StoreErrc::kQuery, "database schema version " + std::to_string(current) +
                                         " is newer than this aspis-service knows (" +
                                         std::to_string(LatestSchemaVersion()) + "); upgrade it");
    }
    for (int version = current + 1; version <= target; ++version) {
      for (std::string_view statement : kMigrations[version - 1]) {
        if (auto ok = Discard(db.Query(ForDialect(statement, db.Dialect()))); !ok) {
          return std::unexpected(
              std::move(ok.error()).WithContext("migrating to schema " + std::to_string(version)));
        }
      }
      if (auto ok = Discard(
              db.Query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                       {std::int64_t{version}, std::int64_t{std::time(nullptr)}}));
          !ok) {
        return ok;
      }
    }
    return {};
  });
}

Expected<void> Store::CreateTenant(const Tenant& t) {
  return Discard(db_->Query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
                            {t.id, t.name, t.created_at}));
}

Expected<Tenant> Store::GetTenant(std::string_view id) {
  return Single(Map<Tenant>(db_->Query("SELECT id, name, created_at FROM tenants WHERE id = $1",
                                       {std::string(id)}),
                            ToTenant),
                "tenant");
}

Expected<std::vector<Tenant>> Store::ListTenants() {
  return Map<Tenant>(db_->Query("SELECT id, name, created_at FROM tenants ORDER BY name, id"),
                     ToTenant);
}

Expected<void> Store::AddToken(const ApiToken& t) {
  return Discard(db_->Query(
      "INSERT INTO api_tokens (id, tenant_id, role, description, secret_hash, created_at, "
      "revoked) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      {t.id, t.tenant_id.empty() ? Value(nullptr) : Value(t.tenant_id),
       std::string(RoleName(t.role)), t.description, t.secret_hash, t.created_at,
       std::int64_t{t.revoked ? 1 : 0}}));
}

Expected<ApiToken> Store::FindTokenByHash(std::string_view secret_hash) {
  return Single(Map<ApiToken>(db_->Query("SELECT " + std::string(kTokenColumns) +
                                             " FROM api_tokens WHERE secret_hash = $1",
                                         {std::string(secret_hash)}),
                              ToToken),
                "token");
}

Expected<std::vector<ApiToken>> Store::ListTokens(std::string_view tenant) {
  return Map<ApiToken>(
      db_->Query("SELECT " + std::string(kTokenColumns) +
                     " FROM api_tokens WHERE tenant_id = $1 ORDER BY created_at, id",
                 {std::string(tenant)}),
      ToToken);
}

Expected<void> Store::RevokeToken(std::string_view tenant, std::string_view token_id) {
  return One(db_->Query("UPDATE api_tokens SET revoked = 1 WHERE tenant_id = $1 AND id = $2 "
                        "RETURNING id",
                        {std::string(tenant), std::string(token_id)}),
             "token");
}

Expected<void> Store::PutTenantKey(const TenantKey& key) {
  return Discard(
      db_->Query("INSERT INTO tenant_keys (tenant_id, kind, certificate_pem, sealed_key) "
                 "VALUES ($1, $2, $3, $4)",
                 {key.tenant_id, key.kind, key.certificate_pem, key.sealed_key}));
}

Expected<void> Store::SetTenantKeyCertificate(std::string_view tenant, std::string_view kind,
                                              std::string_view certificate_pem) {
  return One(db_->Query("UPDATE tenant_keys SET certificate_pem = $3 WHERE tenant_id = $1 AND "
                        "kind = $2 RETURNING kind",
                        {std::string(tenant), std::string(kind), std::string(certificate_pem)}),
             "tenant key");
}

Expected<void> Store::AddTenantCa(const TenantCa& ca) {
  return Discard(db_->Query(
      "INSERT INTO tenant_cas (tenant_id, generation, certificate_pem, sealed_key, activates_at) "
      "VALUES ($1, $2, $3, $4, $5)",
      {ca.tenant_id, ca.generation, ca.certificate_pem, ca.sealed_key, ca.activates_at}));
}

Expected<std::vector<TenantCa>> Store::ListTenantCas(std::string_view tenant) {
  return Map<TenantCa>(
      db_->Query("SELECT tenant_id, generation, certificate_pem, sealed_key, activates_at FROM "
                 "tenant_cas WHERE tenant_id = $1 ORDER BY generation",
                 {std::string(tenant)}),
      [](const Row& r) {
        return TenantCa{Text(r, 0), Number(r, 1), Text(r, 2), Text(r, 3), Number(r, 4)};
      });
}

Expected<TenantKey> Store::GetTenantKey(std::string_view tenant, std::string_view kind) {
  return Single(Map<TenantKey>(db_->Query("SELECT tenant_id, kind, certificate_pem, sealed_key "
                                          "FROM tenant_keys WHERE tenant_id = $1 AND kind = $2",
                                          {std::string(tenant), std::string(kind)}),
                               [](const Row& r) {
                                 return TenantKey{Text(r, 0), Text(r, 1), Text(r, 2), Text(r, 3)};
                               }),
                "tenant key");
}

Expected<void> Store::ClaimDevice(std::string_view tenant, std::string_view device_id,
                                  std::int64_t at) {
  auto claimed = Discard(
      db_->Query("INSERT INTO devices (id, tenant_id, claimed_at, revoked) VALUES ($1, $2, $3, 0)",
                 {std::string(device_id), std::string(tenant), at}));
  if (!claimed && claimed.error() == StoreErrc::kConflict) {
    return Fail(StoreErrc::kConflict, "device " + std::string(device_id) + " is already claimed");
  }
  return claimed;
}

Expected<Device> Store::GetDevice(std::string_view tenant, std::string_view device_id) {
  return Single(Map<Device>(db_->Query("SELECT " + std::string(kDeviceColumns) +
                                           " FROM devices WHERE tenant_id = $1 AND id = $2",
                                       {std::string(tenant), std::string(device_id)}),
                            ToDevice),
                "device");
}

Expected<std::vector<Device>> Store::ListDevices(std::string_view tenant) {
  return Map<Device>(db_->Query("SELECT " + std::string(kDeviceColumns) +
                                    " FROM devices WHERE tenant_id = $1 ORDER BY id",
                                {std::string(tenant)}),
                     ToDevice);
}

Expected<void> Store::SetDeviceRevoked(std::string_view tenant, std::string_view device_id,
                                       bool revoked, std::int64_t at) {
  if (auto ok = One(
          db_->Query("UPDATE devices SET revoked = $1 WHERE tenant_id = $2 AND id = $3 "
                     "RETURNING id",
                     {std::int64_t{revoked ? 1 : 0}, std::string(tenant), std::string(device_id)}),
          "device");
      !ok || !revoked) {
    return ok;
  }
  return Discard(db_->Query(
      "UPDATE issued_certificates SET revoked_at = $1 WHERE tenant_id = $2 AND device_id = $3 "
      "AND revoked_at = 0",
      {at, std::string(tenant), std::string(device_id)}));
}

Expected<void> Store::InsertIssued(const std::vector<IssuedCertificate>& issued, std::int64_t now) {
  // The device's row is locked (PostgreSQL; SQLite's write transaction holds the database), so a
  // revocation either commits first, and the certificates are refused here, or waits, and then
  // revokes them too: none escapes the CRL.
  const std::string lock = db_->Dialect() == "postgresql" ? " FOR UPDATE" : "";
  for (const auto& c : issued) {
    auto device = db_->Query("SELECT revoked FROM devices WHERE id = $1" + lock, {c.device_id});
    if (!device) return std::unexpected(device.error());
    if (device->empty()) return Fail(StoreErrc::kNotFound, "device not found");
    if (Number(device->front(), 0) != 0) {
      return Fail(StoreErrc::kConflict, "the device was revoked while it attested");
    }
    if (auto ok = Discard(db_->Query("DELETE FROM issued_certificates WHERE device_id = $1 AND "
                                     "not_after < $2",
                                     {c.device_id, now}));
        !ok) {
      return ok;
    }
    if (auto ok =
            Discard(db_->Query("INSERT INTO issued_certificates (serial, tenant_id, "
                               "device_id, generation, not_after) VALUES ($1, $2, $3, $4, "
                               "$5)",
                               {c.serial, c.tenant_id, c.device_id, c.generation, c.not_after}));
        !ok) {
      return ok;
    }
  }
  return {};
}

Expected<std::vector<RevokedCertificate>> Store::ListRevokedCertificates(std::string_view tenant,
                                                                         std::int64_t generation,
                                                                         std::int64_t now) {
  return Map<RevokedCertificate>(
      db_->Query("SELECT serial, revoked_at FROM issued_certificates WHERE tenant_id = $1 AND "
                 "generation = $2 AND revoked_at > 0 AND not_after > $3 ORDER BY serial",
                 {std::string(tenant), generation, now}),
      [](const Row& r) {
        return RevokedCertificate{Text(r, 0), Number(r, 1)};
      });
}

Expected<std::int64_t> Store::NextCrlNumber(std::string_view tenant, std::int64_t generation) {
  auto rows = db_->Query(
      "UPDATE tenant_cas SET crl_number = crl_number + 1 WHERE tenant_id = $1 AND generation = $2 "
      "RETURNING crl_number",
      {std::string(tenant), generation});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return Fail(StoreErrc::kNotFound, "tenant CA generation not found");
  return Number(rows->front(), 0);
}

Expected<Device> Store::FindDeviceForAttestation(std::string_view device_id) {
  return Single(Map<Device>(db_->Query("SELECT " + std::string(kDeviceColumns) +
                                           " FROM devices WHERE id = $1",
                                       {std::string(device_id)}),
                            ToDevice),
                "device");
}

Expected<void> Store::RecordAttestation(const AttestationRecord& r) {
  return db_->Transaction([&]() -> Expected<void> {
    if (auto ok = InsertIssued(r.issued, r.at); !ok) return ok;
    if (auto ok =
            One(db_->Query("UPDATE devices SET verdict = $1, reasons = $2, "
                           "last_attested = $3, certificate_expiry = $4, "
                           "root_of_trust = $5, boot_pcrs = $6, os_release = $7, "
                           "ek_fingerprint = $8, ek_issuer = $9 WHERE id = $10 RETURNING id",
                           {r.verdict, r.reasons, r.at, r.certificate_expiry, r.root_of_trust,
                            r.boot_pcrs, r.os_release, r.ek_fingerprint, r.ek_issuer, r.device_id}),
                "device");
        !ok) {
      return ok;
    }
    return InsertAttempt({r.device_id, r.at, r.verdict, r.reasons, true});
  });
}

Expected<void> Store::AddAttestationAttempt(const AttestationAttempt& attempt) {
  return db_->Transaction([&] { return InsertAttempt(attempt); });
}

Expected<void> Store::InsertAttempt(const AttestationAttempt& a) {
  if (auto ok = Discard(
          db_->Query("INSERT INTO attestation_attempts (device_id, at, verdict, "
                     "reasons, proven) VALUES ($1, $2, $3, $4, $5)",
                     {a.device_id, a.at, a.verdict, a.reasons, std::int64_t{a.proven ? 1 : 0}}));
      !ok) {
    return ok;
  }
  // Proven and unproven attempts are kept apart, so that a flood of unproven ones (anyone can
  // send them) never pushes out what the device itself proved.
  return Discard(db_->Query(
      "DELETE FROM attestation_attempts WHERE device_id = $1 AND proven = $3 AND sequence <= "
      "(SELECT sequence FROM attestation_attempts WHERE device_id = $1 AND proven = $3 ORDER BY "
      "sequence DESC LIMIT 1 OFFSET $2)",
      {a.device_id, kAttemptsKept, std::int64_t{a.proven ? 1 : 0}}));
}

Expected<std::vector<AttestationAttempt>> Store::ListAttestationAttempts(
    std::string_view tenant, std::string_view device_id) {
  return Map<AttestationAttempt>(
      db_->Query("SELECT a.device_id, a.at, a.verdict, a.reasons, a.proven FROM "
                 "attestation_attempts a JOIN devices d ON d.id = a.device_id WHERE "
                 "d.tenant_id = $1 AND a.device_id = $2 ORDER BY a.sequence DESC",
                 {std::string(tenant), std::string(device_id)}),
      ToAttempt);
}

Expected<void> Store::SetAttestationPolicy(std::string_view tenant,
                                           const AttestationPolicy& policy) {
  return One(db_->Query("UPDATE tenants SET allow_software_rot = $1, golden_boot_pcrs = $2 "
                        "WHERE id = $3 RETURNING id",
                        {std::int64_t{policy.allow_software_root_of_trust ? 1 : 0},
                         policy.golden_boot_pcrs, std::string(tenant)}),
             "tenant");
}

Expected<AttestationPolicy> Store::GetAttestationPolicy(std::string_view tenant) {
  return Single(
      Map<AttestationPolicy>(db_->Query("SELECT allow_software_rot, golden_boot_pcrs FROM tenants "
                                        "WHERE id = $1",
                                        {std::string(tenant)}),
                             [](const Row& r) {
                               return AttestationPolicy{Number(r, 0) != 0, Text(r, 1)};
                             }),
      "tenant");
}

Expected<std::int64_t> Store::RecordCheckIn(const CheckInRecord& c) {
  std::int64_t sequence = 0;
  auto recorded = db_->Transaction([&]() -> Expected<void> {
    auto rows = db_->Query(
        "UPDATE devices SET last_check_in = $3, os_version = $4, runtime_version = $5, "
        "publisher_root = $6, board = $7, manifest_sequence = manifest_sequence + 1 "
        "WHERE tenant_id = $1 AND id = $2 RETURNING manifest_sequence",
        {c.tenant_id, c.device_id, c.at, c.os_version, c.runtime_version, c.publisher_root,
         c.board});
    if (!rows) return std::unexpected(rows.error());
    if (rows->empty()) return Fail(StoreErrc::kNotFound, "device not found");
    sequence = Number(rows->front(), 0);
    if (auto ok =
            Discard(db_->Query("DELETE FROM device_images WHERE tenant_id = $1 AND device_id = $2",
                               {c.tenant_id, c.device_id}));
        !ok) {
      return ok;
    }
    for (const auto& i : c.images) {
      if (auto ok =
              Discard(db_->Query("INSERT INTO device_images (tenant_id, device_id, "
                                 "image_id, state, reason, updated_at) "
                                 "VALUES ($1, $2, $3, $4, $5, $6)",
                                 {c.tenant_id, c.device_id, i.image_id, i.state, i.reason, c.at}));
          !ok) {
        return ok;
      }
    }
    return RecordErrorReports(c);
  });
  if (!recorded) return std::unexpected(recorded.error());
  return sequence;
}

// In RecordCheckIn's transaction. An entry the device sends again (its answer was lost, or its
// count and latest description changed) replaces the stored one; then what is past 14 days or 1,000
// entries goes.
Expected<void> Store::RecordErrorReports(const CheckInRecord& c) {
  for (const auto& e : c.error_reports) {
    if (auto ok = Discard(db_->Query(
            "INSERT INTO error_reports (tenant_id, device_id, sequence, event_type, event_class, "
            "description, event_count, start_time, end_time, received_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
            "ON CONFLICT (tenant_id, device_id, sequence) DO UPDATE SET "
            "description = excluded.description, event_count = excluded.event_count, "
            "end_time = excluded.end_time, "
            "received_at = excluded.received_at",
            {c.tenant_id, c.device_id, static_cast<std::int64_t>(e.sequence), e.type, e.event_class,
             e.description, e.count, e.start, e.end, c.at}));
        !ok) {
      return ok;
    }
  }
  if (c.error_reports_dropped > 0) {
    if (auto ok = Discard(db_->Query(
            "UPDATE devices SET error_reports_dropped = "
            "error_reports_dropped + $3 WHERE tenant_id = $1 AND id = $2",
            {c.tenant_id, c.device_id, static_cast<std::int64_t>(c.error_reports_dropped)}));
        !ok) {
      return ok;
    }
  }
  if (c.error_reports.empty()) return {};
  const std::int64_t cutoff = c.at - kErrorReportDays * 24 * 3600;
  if (auto ok = Discard(db_->Query("DELETE FROM error_reports WHERE tenant_id = $1 AND "
                                   "received_at < $2",
                                   {c.tenant_id, cutoff}));
      !ok) {
    return ok;
  }
  return Discard(db_->Query(
      "DELETE FROM error_reports WHERE tenant_id = $1 AND device_id = $2 AND sequence < "
      "(SELECT COALESCE(MIN(sequence), 0) FROM (SELECT sequence FROM error_reports "
      "WHERE tenant_id = $1 AND device_id = $2 ORDER BY sequence DESC LIMIT $3) AS kept)",
      {c.tenant_id, c.device_id, kErrorReportsPerDevice}));
}

Expected<std::vector<ErrorReport>> Store::ListErrorReports(std::string_view tenant,
                                                           std::int64_t since,
                                                           std::string_view device_id,
                                                           std::int64_t limit) {
  return Map<ErrorReport>(
      db_->Query("SELECT device_id, sequence, event_type, event_class, description, event_count, "
                 "start_time, end_time, received_at FROM error_reports "
                 "WHERE tenant_id = $1 AND received_at >= $2 AND ($3 = '' OR device_id = $3) "
                 "ORDER BY received_at DESC, device_id, sequence DESC LIMIT $4",
                 {std::string(tenant), since, std::string(device_id), limit}),
      [](const Row& r) {
        return ErrorReport{Text(r, 0),   static_cast<std::uint64_t>(Number(r, 1)),
                           Text(r, 2),   Text(r, 3),
                           Text(r, 4),   Number(r, 5),
                           Number(r, 6), Number(r, 7),
                           Number(r, 8)};
      });
}

Expected<std::vector<DeviceImageStatus>> Store::ListDeviceImages(std::string_view tenant,
                                                                 std::string_view device_id) {
  return Map<DeviceImageStatus>(
      db_->Query("SELECT image_id, state, reason, updated_at FROM device_images "
                 "WHERE tenant_id = $1 AND device_id = $2 ORDER BY image_id",
                 {std::string(tenant), std::string(device_id)}),
      [](const Row& r) {
        return DeviceImageStatus{Text(r, 0), Text(r, 1), Text(r, 2), Number(r, 3)};
      });
}

Expected<void> Store::AddOsRelease(const OsRelease& release) {
  if (auto ok = Discard(db_->Query("INSERT INTO os_releases (version, feed, created_at, image_id, "
                                   "board_image_id) VALUES ($1, $2, $3, $4, $5)",
                                   {release.version, release.feed, release.created_at,
                                    release.image_id, release.board_image_id}));
      !ok) {
    if (ok.error() == StoreErrc::kConflict) {
      return Fail(StoreErrc::kConflict, "OS release " + release.version + " exists already");
    }
    return ok;
  }
  for (const auto& [component, digest] : release.components) {
    if (auto ok = Discard(db_->Query("INSERT INTO reference_digests (component, digest, "
                                     "version) VALUES ($1, $2, $3)",
                                     {component, digest, release.version}));
        !ok) {
      return ok;
    }
  }
  return {};
}

Expected<std::vector<OsRelease>> Store::ReleasesWhere(std::string_view condition,
                                                      const std::vector<Value>& params,
                                                      bool with_components) {
  auto releases = db_->Query(
      "SELECT version, feed, created_at, retired_reason, retired_at, image_id, "
      "board_image_id FROM os_releases " +
          std::string(condition) + " ORDER BY created_at, version",
      params);
  if (!releases) return std::unexpected(releases.error());
  std::vector<OsRelease> out;
  for (const Row& row : *releases) {
    OsRelease release{Text(row, 0), Text(row, 1),   Number(row, 2), {},
                      Text(row, 3), Number(row, 4), Text(row, 5),   Text(row, 6)};
    if (!with_components) {
      out.push_back(std::move(release));
      continue;
    }
    auto digests = db_->Query(
        "SELECT component, digest FROM reference_digests WHERE version = $1 "
        "ORDER BY component, digest",
        {release.version});
    if (!digests) return std::unexpected(digests.error());
    for (const Row& d : *digests) release.components.emplace_back(Text(d, 0), Text(d, 1));
    out.push_back(std::move(release));
  }
  return out;
}

Expected<std::vector<OsRelease>> Store::ListOsReleases() { return ReleasesWhere("", {}); }

Expected<std::vector<OsRelease>> Store::ListOfferedOsReleases() {
  return ReleasesWhere("WHERE image_id <> '' AND retired_reason = ''", {}, false);
}

Expected<std::vector<OsRelease>> Store::FindOsReleasesListing(std::string_view component,
                                                              std::string_view digest) {
  return ReleasesWhere(
      "WHERE version IN (SELECT version FROM reference_digests WHERE component = $1 AND "
      "digest = $2)",
      {std::string(component), std::string(digest)});
}

Expected<void> Store::PromoteOsRelease(std::string_view version) {
  return One(db_->Query("UPDATE os_releases SET feed = 'retail' WHERE version = $1 AND "
                        "feed = 'retail-eval' AND retired_reason = '' RETURNING version",
                        {std::string(version)}),
             "OS release in Retail Evaluation");
}

Expected<void> Store::RetireOsRelease(std::string_view version, std::string_view reason,
                                      std::int64_t at) {
  return One(db_->Query("UPDATE os_releases SET retired_reason = $1, retired_at = $2 "
                        "WHERE version = $3 RETURNING version",
                        {std::string(reason), at, std::string(version)}),
             "OS release");
}

Expected<void> Store::UseNonce(std::string_view nonce_hash, std::int64_t expires_at,
                               std::int64_t now) {
  if (auto purged = Discard(db_->Query("DELETE FROM used_nonces WHERE expires_at < $1", {now}));
      !purged) {
    return purged;
  }
  auto used = Discard(db_->Query("INSERT INTO used_nonces (nonce_hash, expires_at) VALUES ($1, $2)",
                                 {std::string(nonce_hash), expires_at}));
  if (!used && used.error() == StoreErrc::kConflict) {
    return Fail(StoreErrc::kConflict, "the nonce has been used already");
  }
  return used;
}

Expected<std::int64_t> Store::AppendAudit(const AuditEntry& e) {
  auto rows = db_->Query(
      "INSERT INTO audit_log (tenant_id, actor, action, target, at) VALUES ($1, $2, $3, $4, $5) "
      "RETURNING sequence",
      {e.tenant_id, e.actor, e.action, e.target, e.at});
  if (!rows) return std::unexpected(rows.error());
  return Number(rows->at(0), 0);
}

Expected<std::vector<AuditEntry>> Store::ListAudit(std::string_view tenant, std::size_t limit) {
  return Map<AuditEntry>(
      db_->Query("SELECT sequence, tenant_id, actor, action, target, at FROM audit_log WHERE "
                 "tenant_id = $1 ORDER BY sequence DESC LIMIT $2",
                 {std::string(tenant), static_cast<std::int64_t>(limit)}),
      ToAudit);
}

Expected<std::vector<ApiToken>> Store::ListPlatformTokens() {
  return Map<ApiToken>(
      db_->Query("SELECT " + std::string(kTokenColumns) +
                 " FROM api_tokens WHERE tenant_id IS NULL ORDER BY created_at, id"),
      ToToken);
}

Expected<std::vector<std::string>> Store::RevokePlatformTokens() {
  return Map<std::string>(db_->Query("UPDATE api_tokens SET revoked = 1 WHERE tenant_id IS NULL "
                                     "AND revoked = 0 RETURNING id"),
                          [](const Row& r) { return Text(r, 0); });
}

Expected<void> Store::PlatformTokenTransaction(const std::function<Expected<void>()>& body) {
  constexpr std::int64_t kPlatformTokenLock = 0x6173706974;  // "aspit"
  return db_->Transaction([&]() -> Expected<void> {
    if (db_->Dialect() == "postgresql") {
      if (auto ok = Discard(db_->Query("SELECT pg_advisory_xact_lock($1)", {kPlatformTokenLock}));
          !ok) {
        return ok;
      }
    }
    return body();
  });
}

Expected<std::unique_ptr<Database>> OpenDatabase(std::string_view url,
                                                 std::size_t max_connections) {
  constexpr std::string_view kSqlite = "sqlite:";
  if (url.starts_with(kSqlite)) return OpenSqlite(std::string(url.substr(kSqlite.size())));
  if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    return OpenPostgres(std::string(url), max_connections);
  }
  return Fail(StoreErrc::kUnavailable,
              "database URL \"" + std::string(url) + "\" must start with sqlite: or postgresql://");
}

const std::error_category& StoreCategory() {
  static constexpr const char* kMessages[] = {"not found", "already exists", "database unavailable",
                                              "database query failed"};
  static const NamedCategory category("aspis.store", kMessages);
  return category;
}

}  // namespace aspis::service::store
