// The verifier's rules, one test each, on a temporary SQLite store with a fake clock: no HTTP, no
// TPM (the TPM rules and the attacks on the whole service are in the integration tests).
#include <gtest/gtest.h>

#include "core/clock.hpp"
#include "rot/root_of_trust.hpp"
#include "service/attest/attestation.hpp"
#include "service/ca/tenant_ca.hpp"
#include "service/data_dir.hpp"
#include "service/metrics.hpp"
#include "service/store/database.hpp"
#include "service/store/store.hpp"
#include "support/evidence.hpp"
#include "support/temp_dir.hpp"
#include "wire/attestation.hpp"

namespace aspis::service::attest {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

crypto::Digest Hash(std::string_view s) { return *crypto::Sha256Of(AsBytes(s)); }

class VerifierRules : public ::testing::Test {
 protected:
  void SetUp() override {
    auto data = OpenDataDir(dir_ / "data", {.master_key_file = dir_ / "master.key"}, clock_);
    ASSERT_TRUE(data) << data.error().message();
    data_.emplace(std::move(*data));
    auto db = store::OpenDatabase("sqlite:" + (dir_ / "aspis.db").string());
    ASSERT_TRUE(db);
    store_ = std::move(*store::Store::Open(std::move(*db)));
    cas_.emplace(*store_, *data_, clock_);
    verifier_.emplace(*store_, *data_, clock_, metrics_, *cas_);
    const store::Tenant tenant{"t1", "Contoso", 1};
    auto keys = cas_->MakeFirst(tenant);
    ASSERT_TRUE(keys) << keys.error().message();
    ASSERT_TRUE(store_->CreateTenant(tenant));
    ASSERT_TRUE(store_->AddTenantCa(keys->ca));
    ASSERT_TRUE(store_->SetAttestationPolicy("t1", {.allow_software_root_of_trust = true}));
    AddRelease("1.0", "os 1.0", "aspisd 1.0");
    rot_ = std::move(*rot::Initialize({.backend = "software", .state_dir = dir_ / "rot"}));
    Launch({"os 1.0", "aspisd 1.0", "board", "bundle"});
    ASSERT_TRUE(store_->ClaimDevice("t1", rot_->GetIdentity()->device_id, 1));
  }

  void AddRelease(const std::string& version, const std::string& os, const std::string& aspisd) {
    ASSERT_TRUE(store_->AddOsRelease({version,
                                      "retail",
                                      UnixSeconds(clock_.Now()),
                                      {{"os", crypto::ToHex(Hash(os))},
                                       {"aspisd", crypto::ToHex(Hash(aspisd))},
                                       {"board", crypto::ToHex(Hash("board"))},
                                       {"trust-bundle", crypto::ToHex(Hash("bundle"))}},
                                      {},
                                      0}));
  }

  // Measures `contents` as the next launch components, in order; past the launch, as an app.
  void Launch(const std::vector<std::string>& contents) {
    for (const auto& content : contents) {
      const std::size_t at = events_.size();
      const std::string component = at < wire::kLaunchComponents.size()
                                        ? std::string(wire::kLaunchComponents[at])
                                        : "app:" + app_component_;
      ASSERT_TRUE(rot_->Extend(Hash(content)));
      events_.push_back({component, Hash(content)});
    }
  }

  wire::Evidence Evidence() {
    wire::Evidence e;
    e.device_id = rot_->GetIdentity()->device_id;
    e.identity_public_key = rot_->GetIdentity()->public_key.Der();
    e.root_of_trust = wire::kRootOfTrustSoftware;
    e.event_log = events_;
    e.nonce = verifier_->Challenge()->nonce;
    e.runtime_csr = crypto::CertificateRequest::Create(runtime_key_, "r")->Der();
    e.app_csr = crypto::CertificateRequest::Create(app_key_, "a")->Der();
    const auto binding = *wire::EvidenceBinding(e.nonce, e.runtime_csr, e.app_csr);
    e.quote = testing::ToWire(rot_->Attest(Bytes(binding.begin(), binding.end()))->quote);
    return e;
  }

  // Expects an untrusted outcome whose reason holds `reason`, proven as said.
  void ExpectRefused(const wire::Evidence& evidence, std::string_view reason, bool proven) {
    const Outcome outcome = verifier_->Verify(evidence);
    EXPECT_EQ(outcome.verdict.outcome(), Verdict::Outcome::kInvalid);
    EXPECT_NE(outcome.verdict.reason().find(reason), std::string::npos) << outcome.verdict.reason();
    EXPECT_EQ(outcome.proven, proven);
    EXPECT_FALSE(outcome.certificates);
  }

  std::string Verdict() { return store_->GetDevice("t1", rot_->GetIdentity()->device_id)->verdict; }

  TempDir dir_;
  FakeClock clock_{std::chrono::system_clock::now()};
  Metrics metrics_;
  std::optional<DataDir> data_;
  std::unique_ptr<store::Store> store_;
  std::optional<ca::TenantCas> cas_;
  std::optional<Verifier> verifier_;
  std::unique_ptr<rot::RootOfTrust> rot_;
  std::vector<wire::MeasurementEvent> events_;
  std::string app_component_ = "x";
  crypto::PrivateKey runtime_key_ = *crypto::PrivateKey::GenerateP256();
  crypto::PrivateKey app_key_ = *crypto::PrivateKey::GenerateP256();
};

TEST_F(VerifierRules, CompleteLaunchOfOneReleaseIsTrustedAndItsCertificatesAreRecorded) {
  const Outcome outcome = verifier_->Verify(Evidence());
  ASSERT_TRUE(outcome.verdict.valid()) << outcome.verdict.reason();
  ASSERT_TRUE(outcome.certificates);
  EXPECT_EQ(outcome.certificates->runtime.SubjectPublicKey(), runtime_key_.Public());
  EXPECT_EQ(outcome.certificates->chain.size(), 2u);
  const auto device = store_->GetDevice("t1", rot_->GetIdentity()->device_id);
  EXPECT_EQ(device->verdict, "trusted");
  EXPECT_EQ(device->os_release, "1.0");
  EXPECT_EQ(device->root_of_trust, "software");
  ASSERT_TRUE(store_->SetDeviceRevoked("t1", device->id, true, UnixSeconds(clock_.Now())));
  EXPECT_EQ(store_->ListRevokedCertificates("t1", 1, UnixSeconds(clock_.Now()))->size(), 2u);
}

TEST_F(VerifierRules, NonCanonicalKeyEncodingIsRefusedUnproven) {
  auto evidence = Evidence();
  evidence.identity_public_key.push_back(0);
  ExpectRefused(evidence, "not a P-256 SubjectPublicKeyInfo", false);
}

TEST_F(VerifierRules, StaleNonceIsRefusedUnproven) {
  auto evidence = Evidence();
  clock_.Advance(6min);
  ExpectRefused(evidence, "the nonce has expired", false);
  EXPECT_EQ(Verdict(), "never attested");
}

TEST_F(VerifierRules, QuoteByAnotherKeyIsRefusedUnprovenAndKeepsTheVerdict) {
  ASSERT_TRUE(verifier_->Verify(Evidence()).verdict.valid());
  TempDir other_dir;
  auto other = *rot::Initialize({.backend = "software", .state_dir = other_dir / "rot"});
  auto evidence = Evidence();
  evidence.quote = testing::ToWire(
      other->Attest(*wire::EvidenceBinding(evidence.nonce, evidence.runtime_csr, evidence.app_csr))
          ->quote);
  ExpectRefused(evidence, "quote signature does not verify", false);
  EXPECT_EQ(Verdict(), "trusted");
}

TEST_F(VerifierRules, SoftwareEvidenceMustQuoteTheSoftwareRegister) {
  auto evidence = Evidence();
  evidence.event_log.pop_back();
  ExpectRefused(evidence, "quoted PCR values differ", true);
  EXPECT_EQ(Verdict(), "untrusted");
}

TEST_F(VerifierRules, IncompleteLaunchIsUntrusted) {
  TempDir fresh;
  rot_ = std::move(*rot::Initialize({.backend = "software", .state_dir = fresh / "rot"}));
  ASSERT_TRUE(store_->ClaimDevice("t1", rot_->GetIdentity()->device_id, 1));
  events_.clear();
  Launch({"os 1.0", "aspisd 1.0", "board"});
  ExpectRefused(Evidence(), "component trust-bundle was not measured", true);
}

TEST_F(VerifierRules, ComponentsOfTwoReleasesAreUntrusted) {
  AddRelease("1.1", "os 1.1", "aspisd 1.1");
  TempDir fresh;
  rot_ = std::move(*rot::Initialize({.backend = "software", .state_dir = fresh / "rot"}));
  ASSERT_TRUE(store_->ClaimDevice("t1", rot_->GetIdentity()->device_id, 1));
  events_.clear();
  Launch({"os 1.1", "aspisd 1.0", "board", "bundle"});
  ExpectRefused(Evidence(), "component aspisd is from release 1.0, os from 1.1", true);
}

TEST_F(VerifierRules, AppThatIsNotDeployedIsUntrusted) {
  Launch({"an app"});
  ExpectRefused(Evidence(), "component app:x with digest", true);
  ExpectRefused(Evidence(), "is not an app deployed to the device's group", true);
}

TEST_F(VerifierRules, AppsAttestOnlyWhileInTheGroupsCurrentOrPreviousDeployment) {
  const std::string device = rot_->GetIdentity()->device_id;
  const std::string component = "6d3c2c4e-6a61-4d0e-9b4c-7f2a9d1e5b01";
  ASSERT_TRUE(store_->AddProduct({"p1", "t1", "Coffee", "", 1}));
  ASSERT_TRUE(
      store_->AddDeviceGroup({"g1", "t1", "p1", "Field Test", "", "retail", "UpdateAll", true, 1}));
  ASSERT_TRUE(store_->SetDeviceGroup("t1", device, "g1"));
  auto deploy = [&](const std::string& version) {
    const std::string id = "image-" + version;
    ASSERT_TRUE(store_->AddImage({id, "t1", component, "app", "app", version, 0,
                                  crypto::ToHex(Hash("app " + version)), 10, "{}", 1}));
    ASSERT_TRUE(store_->AddDeployment({"d-" + version, "t1", "g1", 1, "test", {id}}));
  };
  deploy("1");
  app_component_ = component;
  Launch({"app 1"});
  EXPECT_TRUE(verifier_->Verify(Evidence()).certificates) << "the deployed app attests";
  deploy("2");
  EXPECT_TRUE(verifier_->Verify(Evidence()).certificates) << "a reverted device still attests";
  deploy("3");
  ExpectRefused(Evidence(), "is not an app deployed to the device's group", true);

  // The digest of a deployed package under another component's name is refused too.
  TempDir fresh;
  rot_ = std::move(*rot::Initialize({.backend = "software", .state_dir = fresh / "rot"}));
  ASSERT_TRUE(store_->ClaimDevice("t1", rot_->GetIdentity()->device_id, 1));
  ASSERT_TRUE(store_->SetDeviceGroup("t1", rot_->GetIdentity()->device_id, "g1"));
  events_.clear();
  Launch({"os 1.0", "aspisd 1.0", "board", "bundle"});
  app_component_ = "another";
  Launch({"app 3"});
  ExpectRefused(Evidence(), "component app:another with digest", true);
}

TEST_F(VerifierRules, RetiredReleaseIsUntrusted) {
  ASSERT_TRUE(store_->RetireOsRelease("1.0", "CVE-1", 2));
  ExpectRefused(Evidence(), "OS release 1.0 is retired: CVE-1", true);
}

TEST_F(VerifierRules, SoftwareRootOfTrustNeedsTheTenantsConsent) {
  ASSERT_TRUE(store_->SetAttestationPolicy("t1", {.allow_software_root_of_trust = false}));
  ExpectRefused(Evidence(), "which the tenant does not accept", true);
}

TEST_F(VerifierRules, PinnedBootPcrsRefuseADeviceWithoutThem) {
  ASSERT_TRUE(store_->SetAttestationPolicy(
      "t1", {.allow_software_root_of_trust = true, .golden_boot_pcrs = std::string(64, 'a')}));
  ExpectRefused(Evidence(), "reports none (no TPM)", true);
}

TEST_F(VerifierRules, RevokedDeviceIsUntrustedOnlyOnceItProvedPossession) {
  ASSERT_TRUE(store_->SetDeviceRevoked("t1", rot_->GetIdentity()->device_id, true, 1));
  ExpectRefused(Evidence(), "the device is revoked", true);
}

TEST_F(VerifierRules, UnprovenAttemptsAreLoggedInTheBackgroundAndFloodsBeyondTheQueueAreCounted) {
  const std::string id = rot_->GetIdentity()->device_id;
  {
    AttemptLog log(*store_, metrics_, 1);
    // While the store is busy, the writer holds at most one attempt and the queue one more: the
    // rest of a flood of 50 is dropped, and counted. What waits is written before the log stops.
    ASSERT_TRUE(store_->Transaction([&]() -> Expected<void> {
      for (int i = 0; i < 50; ++i) log.Add({id, i, "refused", "flood", false});
      return {};
    }));
  }
  const auto logged = store_->ListAttestationAttempts("t1", id);
  ASSERT_TRUE(logged);
  const std::string text = metrics_.Render();
  const std::string sample = "\naspis_attestation_attempts_dropped_total ";
  const auto at = text.find(sample);
  ASSERT_NE(at, std::string::npos) << text;
  const int dropped = std::stoi(text.substr(at + sample.size()));
  EXPECT_GE(dropped, 48);
  EXPECT_EQ(static_cast<int>(logged->size()), 50 - dropped);
  EXPECT_EQ(logged->front().reasons, "flood");
}

}  // namespace
}  // namespace aspis::service::attest
