// One suite, both store engines: SQLite in a temporary file and a real PostgreSQL server.
#include <gtest/gtest.h>

#include <future>
#include <latch>
#include <memory>
#include <thread>

#include "service/store/store.hpp"
#include "support/postgres.hpp"
#include "support/temp_dir.hpp"

namespace aspis::service::store {
namespace {

using testing::PostgresServer;
using testing::TempDir;

class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      postgres_ = std::make_unique<PostgresServer>();
      url_ = postgres_->Url();
    } else {
      url_ = "sqlite:" + (dir_ / "aspis.db").string();
    }
    store_ = Reopen();
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->CreateTenant({"t1", "Contoso", 100}));
    ASSERT_TRUE(store_->CreateTenant({"t2", "Fabrikam", 200}));
  }

  void TearDown() override { store_.reset(); }

  std::unique_ptr<Store> Reopen() {
    store_.reset();
    auto db = OpenDatabase(url_);
    EXPECT_TRUE(db) << db.error().message();
    if (!db) return nullptr;
    auto store = Store::Open(std::move(*db));
    EXPECT_TRUE(store) << store.error().message();
    return store ? std::move(*store) : nullptr;
  }

  // The URL of a new, empty database on this engine.
  std::string FreshDatabase(const std::string& name) {
    if (GetParam() != "postgresql") return "sqlite:" + (dir_ / (name + ".db")).string();
    auto admin = OpenDatabase(url_);
    EXPECT_TRUE(admin && (*admin)->Query("CREATE DATABASE " + name));
    return url_.substr(0, url_.rfind('/') + 1) + name;
  }

  TempDir dir_;
  std::unique_ptr<PostgresServer> postgres_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformance, MigratesOnceAndKeepsDataAcrossReopen) {
  EXPECT_EQ(*store_->SchemaVersion(), 9);
  EXPECT_EQ(store_->Dialect(), GetParam());
  store_ = Reopen();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(*store_->SchemaVersion(), 9);
  EXPECT_EQ(store_->GetTenant("t1")->name, "Contoso");
}

TEST_P(StoreConformance, InstancesStartingTogetherMigrateOnce) {
  const std::string url = FreshDatabase("together");
  constexpr int kInstances = 4;
  std::latch start(kInstances);
  std::vector<std::future<Expected<int>>> opened;
  for (int i = 0; i < kInstances; ++i) {
    opened.push_back(std::async(std::launch::async, [&]() -> Expected<int> {
      start.arrive_and_wait();
      auto db = OpenDatabase(url);
      if (!db) return std::unexpected(db.error());
      auto store = Store::Open(std::move(*db));
      if (!store) return std::unexpected(store.error());
      return (*store)->SchemaVersion();
    }));
  }
  for (auto& result : opened) {
    auto version = result.get();
    ASSERT_TRUE(version) << version.error().message();
    EXPECT_EQ(*version, *store_->SchemaVersion());
  }
}

TEST_P(StoreConformance, TenantsAreCreatedOnceAndListed) {
  EXPECT_EQ(store_->CreateTenant({"t1", "Again", 1}).error(), StoreErrc::kConflict);
  auto tenants = store_->ListTenants();
  ASSERT_TRUE(tenants);
  ASSERT_EQ(tenants->size(), 2u);
  EXPECT_EQ((*tenants)[0].id, "t1");
  EXPECT_EQ((*tenants)[1].created_at, 200);
  EXPECT_EQ(store_->GetTenant("nope").error(), StoreErrc::kNotFound);
}

TEST_P(StoreConformance, TokensAreFoundByHashAndRevokedPerTenant) {
  ASSERT_TRUE(store_->AddToken({"k1", "t1", Role::kContributor, "ci", "hash-1", 5, false}));
  ASSERT_TRUE(store_->AddToken({"k2", "t2", Role::kReader, "", "hash-2", 6, false}));
  auto found = store_->FindTokenByHash("hash-1");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->tenant_id, "t1");
  EXPECT_EQ(found->role, Role::kContributor);
  EXPECT_FALSE(found->revoked);
  EXPECT_EQ(store_->AddToken({"k3", "t1", Role::kReader, "", "hash-1", 7, false}).error(),
            StoreErrc::kConflict);
  // Tenant isolation: t2 cannot revoke t1's token, nor see it.
  EXPECT_EQ(store_->RevokeToken("t2", "k1").error(), StoreErrc::kNotFound);
  EXPECT_EQ(store_->ListTokens("t2")->size(), 1u);
  ASSERT_TRUE(store_->RevokeToken("t1", "k1"));
  EXPECT_TRUE(store_->FindTokenByHash("hash-1")->revoked);
}

TEST_P(StoreConformance, PlatformTokensBelongToNoTenant) {
  ASSERT_TRUE(store_->AddToken({"admin", "", Role::kAdministrator, "platform", "hash-p", 1}));
  auto found = store_->FindTokenByHash("hash-p");
  ASSERT_TRUE(found);
  EXPECT_TRUE(found->tenant_id.empty());
  EXPECT_TRUE(store_->ListTokens("t1")->empty());
}

TEST_P(StoreConformance, TenantKeysAreKeptPerKindOnce) {
  ASSERT_TRUE(store_->PutTenantKey({"t1", "deployment", "PEM", "c2VhbGVk"}));
  EXPECT_EQ(store_->PutTenantKey({"t1", "deployment", "PEM2", "x"}).error(), StoreErrc::kConflict);
  EXPECT_EQ(store_->GetTenantKey("t1", "deployment")->sealed_key, "c2VhbGVk");
  EXPECT_EQ(store_->GetTenantKey("t2", "deployment").error(), StoreErrc::kNotFound);
  ASSERT_TRUE(store_->SetTenantKeyCertificate("t1", "deployment", "PEM3"));
  EXPECT_EQ(store_->GetTenantKey("t1", "deployment")->certificate_pem, "PEM3");
  EXPECT_EQ(store_->GetTenantKey("t1", "deployment")->sealed_key, "c2VhbGVk");
  EXPECT_EQ(store_->SetTenantKeyCertificate("t2", "deployment", "PEM").error(),
            StoreErrc::kNotFound);
}

TEST_P(StoreConformance, TenantCaGenerationsAreMadeOnceEachAndListedInOrder) {
  ASSERT_TRUE(store_->AddTenantCa({"t1", 2, "PEM2", "k2", 500}));
  ASSERT_TRUE(store_->AddTenantCa({"t1", 1, "PEM1", "k1", 0}));
  EXPECT_EQ(store_->AddTenantCa({"t1", 2, "again", "k", 9}).error(), StoreErrc::kConflict);
  auto cas = store_->ListTenantCas("t1");
  ASSERT_TRUE(cas);
  ASSERT_EQ(cas->size(), 2u);
  EXPECT_EQ((*cas)[0].certificate_pem, "PEM1");
  EXPECT_EQ((*cas)[1].generation, 2);
  EXPECT_EQ((*cas)[1].activates_at, 500);
  EXPECT_TRUE(store_->ListTenantCas("t2")->empty());
}

TEST_P(StoreConformance, UpgradeMakesATenantCaFromBeforeGenerationsItsFirstGeneration) {
  auto db = OpenDatabase(FreshDatabase("upgrade"));
  ASSERT_TRUE(db) << db.error().message();
  ASSERT_TRUE(MigrateTo(**db, 2));
  const auto insert = [&](std::string_view sql, const std::vector<Value>& params) {
    auto done = (*db)->Query(sql, params);
    ASSERT_TRUE(done) << done.error().message();
  };
  insert("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
         {std::string("t9"), std::string("Before"), std::int64_t{50}});
  const std::string key_row =
      "INSERT INTO tenant_keys (tenant_id, kind, certificate_pem, sealed_key) "
      "VALUES ($1, $2, $3, $4)";
  insert(key_row,
         {std::string("t9"), std::string("ca"), std::string("CA PEM"), std::string("sealed ca")});
  insert(key_row, {std::string("t9"), std::string("deployment"), std::string("DEPLOY PEM"),
                   std::string("sealed deploy")});

  auto store = Store::Open(std::move(*db));
  ASSERT_TRUE(store) << store.error().message();
  EXPECT_EQ(*(*store)->SchemaVersion(), LatestSchemaVersion());
  auto cas = (*store)->ListTenantCas("t9");
  ASSERT_TRUE(cas);
  ASSERT_EQ(cas->size(), 1u);
  EXPECT_EQ((*cas)[0].generation, 1);
  EXPECT_EQ((*cas)[0].certificate_pem, "CA PEM");
  EXPECT_EQ((*cas)[0].sealed_key, "sealed ca");
  EXPECT_EQ((*cas)[0].activates_at, 0);
  EXPECT_EQ((*store)->GetTenantKey("t9", "ca").error(), StoreErrc::kNotFound);
  EXPECT_EQ((*store)->GetTenantKey("t9", "deployment")->sealed_key, "sealed deploy");
}

TEST_P(StoreConformance, DeviceClaimIsOnceAndNeverRevealsTheOwner) {
  const std::string id(64, 'a');
  ASSERT_TRUE(store_->ClaimDevice("t1", id, 1000));
  auto again = store_->ClaimDevice("t2", id, 1001);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), StoreErrc::kConflict);
  EXPECT_EQ(again.error().message().find("t1"), std::string::npos);
  EXPECT_EQ(store_->ClaimDevice("t1", id, 1002).error(), StoreErrc::kConflict);
  auto device = store_->GetDevice("t1", id);
  ASSERT_TRUE(device);
  EXPECT_EQ(device->claimed_at, 1000);
  EXPECT_FALSE(device->revoked);
}

TEST_P(StoreConformance, TenantIsolationDevicesOfAnotherTenantAreInvisible) {
  const std::string id(64, 'b');
  ASSERT_TRUE(store_->ClaimDevice("t1", id, 1));
  EXPECT_EQ(store_->GetDevice("t2", id).error(), StoreErrc::kNotFound);
  EXPECT_TRUE(store_->ListDevices("t2")->empty());
  EXPECT_EQ(store_->SetDeviceRevoked("t2", id, true, 5).error(), StoreErrc::kNotFound);
  EXPECT_FALSE(store_->GetDevice("t1", id)->revoked);
}

TEST_P(StoreConformance, DeviceRevocationCanBeUndone) {
  const std::string id(64, 'c');
  ASSERT_TRUE(store_->ClaimDevice("t1", id, 1));
  ASSERT_TRUE(store_->SetDeviceRevoked("t1", id, true, 5));
  EXPECT_TRUE(store_->GetDevice("t1", id)->revoked);
  ASSERT_TRUE(store_->SetDeviceRevoked("t1", id, false, 6));
  EXPECT_FALSE(store_->GetDevice("t1", id)->revoked);
}

TEST_P(StoreConformance, AuditLogIsOrderedAndScopedByTenant) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->AppendAudit({0, "t1", "k1", "device.claim", "d" + std::to_string(i), i}));
  }
  ASSERT_TRUE(store_->AppendAudit({0, "t2", "k2", "device.claim", "other", 9}));
  auto entries = store_->ListAudit("t1", 3);
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].target, "d4");
  EXPECT_GT((*entries)[0].sequence, (*entries)[1].sequence);
  EXPECT_EQ(store_->ListAudit("t2", 10)->size(), 1u);
}

TEST_P(StoreConformance, FailedTransactionLeavesNoTrace) {
  const std::string id(64, 'd');
  auto result = store_->Transaction([&]() -> Expected<void> {
    if (auto ok = store_->ClaimDevice("t1", id, 1); !ok) return ok;
    if (auto ok = store_->AppendAudit({0, "t1", "k1", "device.claim", id, 1}); !ok) {
      return std::unexpected(ok.error());
    }
    return Fail(StoreErrc::kQuery, "simulated failure after both writes");
  });
  ASSERT_FALSE(result);
  EXPECT_EQ(store_->GetDevice("t1", id).error(), StoreErrc::kNotFound);
  EXPECT_TRUE(store_->ListAudit("t1", 10)->empty());
  // And a successful one commits both.
  ASSERT_TRUE(store_->Transaction([&]() -> Expected<void> {
    if (auto ok = store_->ClaimDevice("t1", id, 1); !ok) return ok;
    auto seq = store_->AppendAudit({0, "t1", "k1", "device.claim", id, 1});
    if (!seq) return std::unexpected(seq.error());
    return {};
  }));
  EXPECT_TRUE(store_->GetDevice("t1", id));
  EXPECT_EQ(store_->ListAudit("t1", 10)->size(), 1u);
}

TEST_P(StoreConformance, OsReleasesDefineTheReferenceDigestsAndCanBeRetired) {
  ASSERT_TRUE(
      store_->AddOsRelease({"24.10", "retail", 1, {{"os", "aa"}, {"aspisd", "bb"}}, {}, 0}));
  ASSERT_TRUE(
      store_->AddOsRelease({"24.11", "retail", 2, {{"os", "aa"}, {"aspisd", "cc"}}, {}, 0}));
  EXPECT_EQ(store_->AddOsRelease({"24.10", "retail", 3, {}, {}, 0}).error(), StoreErrc::kConflict);
  auto listing = store_->FindOsReleasesListing("os", "aa");
  ASSERT_TRUE(listing);
  ASSERT_EQ(listing->size(), 2u);
  EXPECT_EQ((*listing)[0].version, "24.10");  // oldest first
  EXPECT_EQ((*listing)[1].components.size(), 2u);
  EXPECT_TRUE(store_->FindOsReleasesListing("aspisd", "aa")->empty());  // the component matters
  EXPECT_EQ(store_->FindOsReleasesListing("aspisd", "cc")->size(), 1u);

  ASSERT_TRUE(store_->RetireOsRelease("24.10", "CVE-1", 9));
  EXPECT_EQ(store_->RetireOsRelease("nope", "x", 9).error(), StoreErrc::kNotFound);
  auto releases = store_->ListOsReleases();
  ASSERT_TRUE(releases);
  ASSERT_EQ(releases->size(), 2u);
  EXPECT_EQ((*releases)[0].retired_reason, "CVE-1");
  EXPECT_EQ((*releases)[0].retired_at, 9);
  EXPECT_EQ((*releases)[1].retired_reason, "");
}

TEST_P(StoreConformance, OsReleasesFromPackagesNameTheirImagesAndArePromotedOnce) {
  ASSERT_TRUE(store_->AddOsRelease(
      {"25.01", "retail-eval", 1, {{"os", "aa"}}, {}, 0, "os-image", "board-image"}));
  auto listed = store_->ListOsReleases();
  EXPECT_EQ(listed->front().image_id, "os-image");
  EXPECT_EQ(listed->front().board_image_id, "board-image");
  ASSERT_TRUE(store_->PromoteOsRelease("25.01"));
  EXPECT_EQ(store_->ListOsReleases()->front().feed, "retail");
  EXPECT_EQ(store_->PromoteOsRelease("25.01").error(), StoreErrc::kNotFound);  // already Retail
  ASSERT_TRUE(store_->AddOsRelease({"25.02", "retail-eval", 2, {{"os", "bb"}}, {}, 0, "", ""}));
  ASSERT_TRUE(store_->RetireOsRelease("25.02", "broken", 3));
  EXPECT_EQ(store_->PromoteOsRelease("25.02").error(), StoreErrc::kNotFound);  // retired
  // Offered to devices: published from packages and not retired.
  ASSERT_TRUE(store_->AddOsRelease({"25.03", "retail", 3, {{"os", "cc"}}, {}, 0, "", ""}));
  auto offered = store_->ListOfferedOsReleases();
  ASSERT_TRUE(offered);
  ASSERT_EQ(offered->size(), 1u);
  EXPECT_EQ(offered->front().version, "25.01");
}

TEST_P(StoreConformance, ReplayAttackNonceIsUsableOnce) {
  ASSERT_TRUE(store_->UseNonce("n1", 100, 50));
  EXPECT_EQ(store_->UseNonce("n1", 100, 60).error(), StoreErrc::kConflict);
  EXPECT_TRUE(store_->UseNonce("n2", 100, 60));
}

TEST_P(StoreConformance, AttestationOutcomeIsRecordedOnTheDevice) {
  const std::string id(64, 'f');
  ASSERT_TRUE(store_->ClaimDevice("t2", id, 1));
  EXPECT_EQ(store_->FindDeviceForAttestation(id)->tenant_id, "t2");
  EXPECT_EQ(store_->FindDeviceForAttestation(std::string(64, '0')).error(), StoreErrc::kNotFound);
  ASSERT_TRUE(store_->RecordAttestation({.device_id = id,
                                         .verdict = "untrusted",
                                         .reasons = "unknown os digest",
                                         .at = 10,
                                         .certificate_expiry = 0,
                                         .root_of_trust = "tpm",
                                         .boot_pcrs = "aa,bb",
                                         .os_release = "24.10",
                                         .ek_fingerprint = "ee",
                                         .ek_issuer = "CN=TPM CA"}));
  auto device = store_->GetDevice("t2", id);
  EXPECT_EQ(device->verdict, "untrusted");
  EXPECT_EQ(device->reasons, "unknown os digest");
  EXPECT_EQ(device->last_attested, 10);
  EXPECT_EQ(device->root_of_trust, "tpm");
  EXPECT_EQ(device->boot_pcrs, "aa,bb");
  EXPECT_EQ(device->os_release, "24.10");
  EXPECT_EQ(device->ek_fingerprint, "ee");
  EXPECT_EQ(device->ek_issuer, "CN=TPM CA");
}

TEST_P(StoreConformance, AttestationAttemptsAreBoundedPerDeviceAndNeverTouchTheVerdict) {
  const std::string id(64, 'a');
  const std::string other(64, 'b');
  ASSERT_TRUE(store_->ClaimDevice("t1", id, 1));
  ASSERT_TRUE(store_->ClaimDevice("t1", other, 1));
  ASSERT_TRUE(store_->RecordAttestation({.device_id = id, .verdict = "trusted", .at = 5}));
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(store_->AddAttestationAttempt({id, 100 + i, "refused", "forged quote", false}));
  }
  ASSERT_TRUE(store_->AddAttestationAttempt({other, 7, "refused", "x", false}));
  auto attempts = store_->ListAttestationAttempts("t1", id);
  ASSERT_TRUE(attempts);
  // The 20 newest unproven attempts, and the proven one they did not push out.
  ASSERT_EQ(attempts->size(), 21u);
  EXPECT_EQ(attempts->front().at, 124);  // newest first
  EXPECT_FALSE(attempts->front().proven);
  EXPECT_EQ((*attempts)[19].at, 105);
  EXPECT_TRUE(attempts->back().proven);
  EXPECT_EQ(store_->GetDevice("t1", id)->verdict, "trusted");
  EXPECT_EQ(store_->ListAttestationAttempts("t1", other)->size(), 1u);
  EXPECT_TRUE(store_->ListAttestationAttempts("t2", id)->empty()) << "another tenant's device";
}

TEST_P(StoreConformance, RevokingADeviceRevokesItsIssuedCertificatesForTheCrl) {
  const std::string id(64, 'e');
  const std::string other(64, '9');
  ASSERT_TRUE(store_->ClaimDevice("t1", id, 1));
  ASSERT_TRUE(store_->ClaimDevice("t1", other, 1));
  ASSERT_TRUE(store_->AddTenantCa({"t1", 1, "pem", "sealed", 0}));
  auto trusted = [](const std::string& device, std::int64_t at,
                    std::vector<IssuedCertificate> issued) {
    return AttestationRecord{
        .device_id = device, .verdict = "trusted", .at = at, .issued = std::move(issued)};
  };
  ASSERT_TRUE(store_->RecordAttestation(
      trusted(id, 10, {{"0a", "t1", id, 1, 100}, {"0b", "t1", id, 1, 50}})));
  ASSERT_TRUE(store_->RecordAttestation(trusted(other, 10, {{"0c", "t1", other, 1, 100}})));
  EXPECT_EQ(store_->RecordAttestation(trusted(id, 11, {{"0a", "t1", id, 1, 100}})).error(),
            StoreErrc::kConflict);
  EXPECT_EQ(store_->GetDevice("t1", id)->last_attested, 10) << "a refused record changes nothing";
  EXPECT_TRUE(store_->ListRevokedCertificates("t1", 1, 10)->empty());
  ASSERT_TRUE(store_->SetDeviceRevoked("t1", id, true, 20));
  auto revoked = store_->ListRevokedCertificates("t1", 1, 60);
  ASSERT_TRUE(revoked);
  ASSERT_EQ(revoked->size(), 1u) << "0b expired at 50";
  EXPECT_EQ((*revoked)[0].serial, "0a");
  EXPECT_EQ((*revoked)[0].revoked_at, 20);
  // A certificate issued as the revocation lands is refused, not left out of the CRL.
  EXPECT_EQ(store_->RecordAttestation(trusted(id, 25, {{"0d", "t1", id, 1, 100}})).error(),
            StoreErrc::kConflict);
  EXPECT_EQ(store_->GetDevice("t1", id)->last_attested, 10);
  // Restoring the device does not make its old certificates valid again.
  ASSERT_TRUE(store_->SetDeviceRevoked("t1", id, false, 30));
  EXPECT_EQ(store_->ListRevokedCertificates("t1", 1, 60)->size(), 1u);
  EXPECT_TRUE(store_->ListRevokedCertificates("t1", 2, 60)->empty()) << "another generation";
  EXPECT_EQ(*store_->NextCrlNumber("t1", 1), 1);
  EXPECT_EQ(*store_->NextCrlNumber("t1", 1), 2);
  EXPECT_EQ(store_->NextCrlNumber("t1", 9).error(), StoreErrc::kNotFound);
}

TEST_P(StoreConformance, AttestationPoliciesArePerTenantAndRefuseSoftwareByDefault) {
  EXPECT_FALSE(store_->GetAttestationPolicy("t1")->allow_software_root_of_trust);
  EXPECT_EQ(store_->GetAttestationPolicy("t1")->golden_boot_pcrs, "");
  ASSERT_TRUE(store_->SetAttestationPolicy("t1", {true, "aa,bb"}));
  EXPECT_TRUE(store_->GetAttestationPolicy("t1")->allow_software_root_of_trust);
  EXPECT_EQ(store_->GetAttestationPolicy("t1")->golden_boot_pcrs, "aa,bb");
  EXPECT_FALSE(store_->GetAttestationPolicy("t2")->allow_software_root_of_trust);
  EXPECT_EQ(store_->SetAttestationPolicy("nope", {}).error(), StoreErrc::kNotFound);
  EXPECT_EQ(store_->GetAttestationPolicy("nope").error(), StoreErrc::kNotFound);
}

TEST_P(StoreConformance, CheckInsAreRecordedWithIncreasingManifestSequences) {
  const std::string id(64, 'c');
  ASSERT_TRUE(store_->ClaimDevice("t1", id, 5));
  const DeviceImageStatus fetching{"img-1", "downloading", "", 0};
  const DeviceImageStatus failed{"img-2", "failed", "hash mismatch", 0};
  EXPECT_EQ(*store_->RecordCheckIn({"t1", id, 10, "24.10", "0.1.0", "", {fetching, failed}}), 1);
  EXPECT_EQ(store_->ListDeviceImages("t1", id)->size(), 2u);
  EXPECT_EQ(*store_->RecordCheckIn({"t1", id, 11, "24.10", "0.1.0", "root", {failed}}), 2);
  EXPECT_EQ(store_->RecordCheckIn({"t2", id, 12, "x", "y", "", {fetching}}).error(),
            StoreErrc::kNotFound);
  auto device = store_->GetDevice("t1", id);
  EXPECT_EQ(device->last_check_in, 11);
  EXPECT_EQ(device->os_version, "24.10");
  EXPECT_EQ(device->runtime_version, "0.1.0");
  EXPECT_EQ(device->publisher_root, "root");
  // Each check-in replaces the statuses of the last; another tenant sees none.
  auto images = store_->ListDeviceImages("t1", id);
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ(images->front().image_id, "img-2");
  EXPECT_EQ(images->front().reason, "hash mismatch");
  EXPECT_EQ(images->front().updated_at, 11);
  EXPECT_TRUE(store_->ListDeviceImages("t2", id)->empty());
}

TEST_P(StoreConformance, ErrorReportsAreKeptOncePerEntry14DaysAnd1000PerDevice) {
  const std::string id(64, 'c');
  const std::string other(64, 'f');
  ASSERT_TRUE(store_->ClaimDevice("t1", id, 5));
  ASSERT_TRUE(store_->ClaimDevice("t1", other, 5));
  const auto entry = [&](std::uint64_t sequence, std::int64_t count, std::int64_t at) {
    return ErrorReport{id,
                       sequence,
                       "Unplanned",
                       "Application",
                       "AppExit - code 3; restarts: " + std::to_string(count),
                       count,
                       at,
                       at,
                       0};
  };
  CheckInRecord first{"t1", id, 1000, "1", "0", "", {}};
  first.error_reports = {entry(1, 1, 900), entry(2, 1, 950)};
  first.error_reports_dropped = 3;
  ASSERT_TRUE(store_->RecordCheckIn(first));
  // Sent again (the answer was lost) with a higher count: stored once, counted and described
  // anew.
  CheckInRecord again{"t1", id, 1100, "1", "0", "", {}};
  again.error_reports = {entry(2, 5, 1050)};
  ASSERT_TRUE(store_->RecordCheckIn(again));
  auto reports = store_->ListErrorReports("t1", 0);
  ASSERT_TRUE(reports) << reports.error().message();
  ASSERT_EQ(reports->size(), 2U);
  EXPECT_EQ(reports->front().sequence, 2U);
  EXPECT_EQ(reports->front().count, 5);
  EXPECT_EQ(reports->front().description, "AppExit - code 3; restarts: 5");
  EXPECT_EQ(reports->front().end, 1050);
  EXPECT_EQ(reports->front().received_at, 1100);
  EXPECT_TRUE(store_->ListErrorReports("t2", 0)->empty()) << "another tenant sees none";
  EXPECT_TRUE(store_->ListErrorReports("t1", 0, other)->empty());
  // 14 days after the first arrived, a later check-in sweeps it away.
  CheckInRecord later{"t1", other, 1000 + kErrorReportDays * 24 * 3600 + 1, "1", "0", "", {}};
  later.error_reports = {{other, 1, "Planned", "OS", "UpdateFailure", 1, 1, 1, 0}};
  ASSERT_TRUE(store_->RecordCheckIn(later));
  reports = store_->ListErrorReports("t1", 0, id);
  ASSERT_EQ(reports->size(), 1U);
  EXPECT_EQ(reports->front().sequence, 2U);
  // At most 1,000 per device: the oldest go first.
  CheckInRecord flood{"t1", other, later.at + 1, "1", "0", "", {}};
  for (std::uint64_t sequence = 2; sequence <= 1001; ++sequence) {
    flood.error_reports.push_back({other, sequence, "Unplanned", "OS", "x", 1, 1, 1, 0});
  }
  ASSERT_TRUE(store_->RecordCheckIn(flood));
  reports = store_->ListErrorReports("t1", 0, other);
  ASSERT_EQ(reports->size(), static_cast<std::size_t>(kErrorReportsPerDevice));
  EXPECT_EQ(reports->back().sequence, 2U);
  EXPECT_EQ(store_->ListErrorReports("t1", 0, other, 1)->size(), 1U);
}

TEST_P(StoreConformance, RolloutsMoveByCompareAndSetAndAdmitDevicesOfTheirGroupOnce) {
  ASSERT_TRUE(store_->AddProduct({"p1", "t1", "Coffee", "", 1}));
  ASSERT_TRUE(
      store_->AddDeviceGroup({"g1", "t1", "p1", "Field Test", "", "retail", "UpdateAll", true, 1}));
  ASSERT_TRUE(store_->AddImage({"i1", "t1", "c1", "blink", "app", "1", 1, "ab", 1, "{}", 1}));
  const std::string in(64, 'd');
  const std::string out(64, 'e');
  for (const auto& id : {in, out}) ASSERT_TRUE(store_->ClaimDevice("t1", id, 1));
  ASSERT_TRUE(store_->SetDeviceGroup("t1", in, "g1"));
  Deployment d{.id = "d1",
               .tenant_id = "t1",
               .device_group_id = "g1",
               .created_at = 2,
               .created_by = "me",
               .image_ids = {"i1"},
               .rollout = {{50, 100}, 0, 10},
               .state = "rolling"};
  ASSERT_TRUE(store_->AddDeployment(d));
  EXPECT_EQ(store_->GetDeployment("t1", "d1")->rollout.percents, d.rollout.percents);
  EXPECT_EQ(*store_->ListGroupDeviceIds("t1", "g1"), std::vector<std::string>{in});
  ASSERT_TRUE(store_->AdmitDevices("d1", 1, {in, out}, 3));
  EXPECT_EQ(store_->AdmitDevices("d1", 2, {in}, 4).error(), StoreErrc::kConflict);
  EXPECT_TRUE(*store_->Admitted("d1", in));
  EXPECT_FALSE(*store_->Admitted("d2", in));
  ASSERT_TRUE(store_->RecordCheckIn(
      {"t1", in, 5, "24.10", "0.1.0", "", {{"i1", "installed", "", 0}, {"i9", "failed", "", 0}}}));
  auto admitted = store_->ListRolloutDevices(d, 1);
  ASSERT_TRUE(admitted) << admitted.error().message();
  ASSERT_EQ(admitted->size(), 1u) << "a device outside the group does not count";
  ASSERT_EQ(admitted->front().images.size(), 1u) << "only the deployment's images";
  EXPECT_EQ(admitted->front().images.front().state, "installed");
  EXPECT_TRUE(store_->ListRolloutDevices(d, 2)->empty());
  Deployment paused = d;
  paused.state = "paused";
  paused.stage = 1;
  paused.reason = "why";
  ASSERT_TRUE(store_->MoveRollout(paused, "rolling", 0));
  EXPECT_EQ(store_->MoveRollout(paused, "rolling", 0).error(), StoreErrc::kConflict)
      << "a second instance deciding from the same state loses";
  paused.tenant_id = "t2";
  EXPECT_EQ(store_->MoveRollout(paused, "paused", 1).error(), StoreErrc::kNotFound);
  EXPECT_EQ(store_->GetDeployment("t1", "d1")->reason, "why");
}

TEST_P(StoreConformance, HostileTextIsStoredLiterally) {
  const std::string name = "x'); DROP TABLE tenants; --";
  ASSERT_TRUE(store_->CreateTenant({"t3", name, 1}));
  EXPECT_EQ(store_->GetTenant("t3")->name, name);
  EXPECT_EQ(store_->ListTenants()->size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreConformance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

TEST(PostgresPool, QueriesFromOtherThreadsProceedWhileATransactionIsOpen) {
  PostgresServer postgres;
  auto store = Store::Open(*OpenDatabase(postgres.Url()));
  ASSERT_TRUE(store);
  std::promise<void> inside;
  std::promise<std::size_t> seen_outside;
  auto outside = seen_outside.get_future();
  std::thread reader([&] {
    inside.get_future().wait();
    auto tenants = (*store)->ListTenants();
    seen_outside.set_value(tenants ? tenants->size() : 99);
  });
  auto committed = (*store)->Transaction([&]() -> Expected<void> {
    if (auto ok = (*store)->CreateTenant({"t1", "Contoso", 1}); !ok) return ok;
    inside.set_value();
    // With one shared connection the reader would wait for this transaction, which waits for it.
    if (outside.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      return Fail(StoreErrc::kQuery, "the reader was blocked by an open transaction");
    }
    return {};
  });
  reader.join();
  ASSERT_TRUE(committed) << committed.error().message();
  EXPECT_EQ(outside.get(), 0u) << "the reader saw an uncommitted tenant";
  EXPECT_EQ((*store)->ListTenants()->size(), 1u);
}

TEST(PostgresPool, RecoversWhenTheServerDropsItsConnections) {
  PostgresServer postgres;
  auto store = Store::Open(*OpenDatabase(postgres.Url()));
  ASSERT_TRUE(store);
  ASSERT_TRUE((*store)->CreateTenant({"t1", "Contoso", 1}));
  auto admin = OpenDatabase(postgres.Url(), 1);
  ASSERT_TRUE(admin);
  ASSERT_TRUE((*admin)->Query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
      "backend_type = 'client backend'"));
  // The first call may meet the dropped connection; the pool then opens a new one.
  auto first = (*store)->ListTenants();
  if (!first) {
    EXPECT_EQ(first.error(), StoreErrc::kUnavailable) << first.error().message();
  }
  auto tenants = (*store)->ListTenants();
  ASSERT_TRUE(tenants) << tenants.error().message();
  EXPECT_EQ(tenants->size(), 1u);
}

TEST(OpenDatabase, RefusesUnknownSchemesAndUnreachableServers) {
  EXPECT_EQ(OpenDatabase("mysql://x").error(), StoreErrc::kUnavailable);
  auto unreachable = OpenDatabase("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2");
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error(), StoreErrc::kUnavailable);
  EXPECT_FALSE(OpenDatabase("sqlite:/nonexistent-dir/x.db"));
}

}  // namespace
}  // namespace aspis::service::store
