#include "device/update/manifest_check.hpp"

#include <gtest/gtest.h>

#include "crypto/dsse.hpp"
#include "crypto/errors.hpp"
#include "support/test_pki.hpp"
#include "wire/attestation.hpp"

namespace aspis::device::update {
namespace {

using namespace std::chrono_literals;

const Clock::TimePoint kNow = std::chrono::system_clock::now();
const std::string kDevice(64, 'd');

using testing::Issuer;

Issuer MakeRoot() { return testing::MakeRoot(kNow); }
Issuer MakeTenantCa(const Issuer& root, const std::string& tenant) {
  return testing::MakeTenantCa(root, tenant, kNow);
}
Issuer MakeSigner(const Issuer& ca, const std::string& name, const std::string& policy) {
  return testing::MakeSigner(ca, name, policy, kNow);
}

class ManifestCheck : public ::testing::Test {
 protected:
  wire::CheckInResponse Response(const wire::UpdateManifest& manifest, const Issuer& signer,
                                 const Issuer& ca) const {
    const std::string payload = wire::Serialize(manifest);
    auto envelope = *crypto::dsse::Sign(wire::kManifestPayloadType, AsBytes(payload),
                                        std::span<const crypto::PrivateKey>(&signer.key, 1));
    return {crypto::dsse::Serialize(envelope), *signer.cert.ToPem() + *ca.cert.ToPem()};
  }

  wire::UpdateManifest Manifest(std::uint64_t sequence = 5) const {
    return {.device_id = kDevice,
            .sequence = sequence,
            .issued_at =
                std::chrono::duration_cast<std::chrono::seconds>(kNow.time_since_epoch()).count(),
            .expires_at =
                std::chrono::duration_cast<std::chrono::seconds>((kNow + 24h).time_since_epoch())
                    .count(),
            .os_feed = "retail"};
  }

  ManifestExpectations Expect(std::uint64_t last = 4) const {
    return {.device_id = kDevice,
            .tenant = "t1",
            .last_sequence = last,
            .roots = {root_.cert},
            .now = kNow};
  }

  void ExpectRefused(const wire::CheckInResponse& response, const ManifestExpectations& expected,
                     std::string_view why) const {
    auto checked = VerifyUpdateManifest(response, expected);
    ASSERT_FALSE(checked);
    EXPECT_EQ(checked.error(), crypto::CryptoErrc::kUntrusted) << checked.error().message();
    EXPECT_NE(checked.error().message().find(why), std::string::npos) << checked.error().message();
  }

  Issuer root_ = MakeRoot();
  Issuer ca_ = MakeTenantCa(root_, "t1");
  Issuer deployment_ = MakeSigner(ca_, "Aspis Deployments t1", wire::kDeploymentCertificatePolicy);
};

TEST_F(ManifestCheck, AcceptsAManifestSignedByTheTenantsDeploymentKey) {
  auto checked = VerifyUpdateManifest(Response(Manifest(), deployment_, ca_), Expect());
  ASSERT_TRUE(checked) << checked.error().message();
  EXPECT_EQ(checked->sequence, 5u);
}

TEST_F(ManifestCheck, ReplayAttackEqualOrLowerSequenceIsRefused) {
  ExpectRefused(Response(Manifest(5), deployment_, ca_), Expect(5), "a replay");
  ExpectRefused(Response(Manifest(3), deployment_, ca_), Expect(5), "a replay");
}

TEST_F(ManifestCheck, FreezeAttackExpiredManifestIsRefused) {
  auto manifest = Manifest();
  manifest.expires_at -= 25 * 3600;
  ExpectRefused(Response(manifest, deployment_, ca_), Expect(), "a freeze");
}

TEST_F(ManifestCheck, MixAndMatchManifestForAnotherDeviceIsRefused) {
  auto manifest = Manifest();
  manifest.device_id = std::string(64, 'e');
  ExpectRefused(Response(manifest, deployment_, ca_), Expect(), "for device");
}

TEST_F(ManifestCheck, ArbitrarySoftwareManifestSignedByAnotherKeyIsRefused) {
  const Issuer impostor{*crypto::PrivateKey::GenerateP256(), deployment_.cert};
  ExpectRefused(Response(Manifest(), impostor, ca_), Expect(), "signature");
}

TEST_F(ManifestCheck, AppCertificateCannotSignManifests) {
  // An app holding the device's app certificate (same tenant CA) tries to steer updates.
  const Issuer app = MakeSigner(ca_, kDevice, wire::kAppCertificatePolicy);
  ExpectRefused(Response(Manifest(), app, ca_), Expect(),
                "not signed with a deployment certificate of this device's tenant");
}

TEST_F(ManifestCheck, TenantIsolationDeploymentKeyOfAnotherTenantIsRefused) {
  const Issuer other_ca = MakeTenantCa(root_, "t2");
  const Issuer other =
      MakeSigner(other_ca, "Aspis Deployments t2", wire::kDeploymentCertificatePolicy);
  ExpectRefused(Response(Manifest(), other, other_ca), Expect(),
                "not signed with a deployment certificate of this device's tenant");
  // Even named for t1, a certificate from t2's CA does not chain through a CA of t1.
  const Issuer forged =
      MakeSigner(other_ca, "Aspis Deployments t1", wire::kDeploymentCertificatePolicy);
  ExpectRefused(Response(Manifest(), forged, other_ca), Expect(),
                "does not chain to the pinned platform root through this tenant's CA");
}

TEST_F(ManifestCheck, DeploymentCertificateFromAnUnpinnedRootIsRefused) {
  const Issuer rogue_root = MakeRoot();
  const Issuer rogue_ca = MakeTenantCa(rogue_root, "t1");
  const Issuer rogue =
      MakeSigner(rogue_ca, "Aspis Deployments t1", wire::kDeploymentCertificatePolicy);
  ExpectRefused(Response(Manifest(), rogue, rogue_ca), Expect(),
                "does not chain to the pinned platform root");
}

}  // namespace
}  // namespace aspis::device::update
