// One suite, every root-of-trust backend: software, and tpm2 against a real swtpm.
#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "rot/errors.hpp"
#include "rot/quote.hpp"
#include "rot/root_of_trust.hpp"
#include "support/swtpm.hpp"
#include "support/temp_dir.hpp"

namespace aspis::rot {
namespace {

using testing::Swtpm;
using testing::TempDir;

class RootOfTrustConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "tpm2") swtpm_ = std::make_unique<Swtpm>();
    rot_ = Make();
    ASSERT_NE(rot_, nullptr);
  }

  Config MakeConfig() const {
    Config config{.backend = GetParam(), .state_dir = dir_ / "state"};
    if (swtpm_) config.tcti = swtpm_->Tcti();
    return config;
  }

  std::unique_ptr<RootOfTrust> Make() {
    auto rot = Initialize(MakeConfig());
    EXPECT_TRUE(rot) << rot.error().message();
    return rot ? std::move(*rot) : nullptr;
  }

  // Closes the current instance first: swtpm serves one connection at a time.
  std::unique_ptr<RootOfTrust> Reopen() {
    rot_.reset();
    auto rot = Open(dir_ / "state");
    EXPECT_TRUE(rot) << rot.error().message();
    return rot ? std::move(*rot) : nullptr;
  }

  TempDir dir_;
  std::unique_ptr<Swtpm> swtpm_;
  std::unique_ptr<RootOfTrust> rot_;
};

TEST_P(RootOfTrustConformance, DeviceIdIsLowercaseHexSha256OfIdentityKeySpki) {
  auto identity = rot_->GetIdentity();
  ASSERT_TRUE(identity);
  EXPECT_EQ(identity->device_id.size(), 64u);
  EXPECT_EQ(identity->device_id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(identity->device_id, crypto::ToHex(*crypto::Sha256Of(identity->public_key.Der())));
  EXPECT_EQ(rot_->Backend(), GetParam());
}

TEST_P(RootOfTrustConformance, IdentityIsTheSameOnEveryOpenAndInitialize) {
  const std::string id = rot_->GetIdentity()->device_id;
  rot_ = Reopen();
  ASSERT_NE(rot_, nullptr);
  EXPECT_EQ(rot_->GetIdentity()->device_id, id);
  rot_.reset();
  rot_ = Make();
  EXPECT_EQ(rot_->GetIdentity()->device_id, id);
}

TEST_P(RootOfTrustConformance, SignaturesVerifyWithTheIdentityKey) {
  const auto key = rot_->GetIdentity()->public_key;
  for (std::size_t size : {0u, 32u, 1024u, 3000u}) {
    const Bytes data(size, 0x5a);
    auto sig = rot_->Sign(data);
    ASSERT_TRUE(sig) << sig.error().message();
    EXPECT_TRUE(key.Verify(data, *sig).valid()) << "size " << size;
  }
}

TEST_P(RootOfTrustConformance, ExtendChainsSha256) {
  const Digest before = *rot_->ReadRegister();
  const Digest m = *crypto::Sha256Of(AsBytes("aspisd"));
  ASSERT_TRUE(rot_->Extend(m));
  Bytes chain(before.begin(), before.end());
  chain.insert(chain.end(), m.begin(), m.end());
  EXPECT_EQ(*rot_->ReadRegister(), *crypto::Sha256Of(chain));
}

// What the verifier requires of this backend's evidence, checked with the pure functions the
// service links.
Verdict VerifyAsTheVerifier(const std::string& backend, const Attestation& a,
                            const crypto::PublicKey& key, ByteView nonce, const Digest& value) {
  if (backend == "software") {
    if (a.register_certification || !a.boot_pcrs.empty()) return Verdict::Invalid("extra parts");
    return VerifyQuote(a.quote, key, {nonce, 1u << kSoftwareRegister, std::span(&value, 1)});
  }
  if (!a.register_certification) return Verdict::Invalid("no NV certification");
  if (Verdict quote = VerifyQuote(a.quote, key, {nonce, BootPcrMask(), a.boot_pcrs});
      !quote.valid()) {
    return quote;
  }
  AttestBody body;
  if (Verdict nv = VerifySignedAttest(*a.register_certification, key, kAttestNv, nonce, &body);
      !nv.valid()) {
    return nv;
  }
  return CheckNvCertifies(body, *NvPcrName(), value);
}

TEST_P(RootOfTrustConformance, AttestationVerifiesWithThePureVerifier) {
  ASSERT_TRUE(rot_->Extend(*crypto::Sha256Of(AsBytes("os"))));
  const Bytes nonce(32, 0x42);
  auto attestation = rot_->Attest(nonce);
  ASSERT_TRUE(attestation) << attestation.error().message();
  const auto key = rot_->GetIdentity()->public_key;
  const Verdict verdict =
      VerifyAsTheVerifier(GetParam(), *attestation, key, nonce, *rot_->ReadRegister());
  EXPECT_TRUE(verdict.valid()) << verdict.reason();

  const Digest before = *rot_->ReadRegister();
  ASSERT_TRUE(rot_->Extend(*crypto::Sha256Of(AsBytes("later"))));
  EXPECT_EQ(
      VerifyAsTheVerifier(GetParam(), *attestation, key, nonce, *rot_->ReadRegister()).outcome(),
      Verdict::Outcome::kInvalid);
  EXPECT_EQ(VerifyAsTheVerifier(GetParam(), *attestation, key, Bytes(32, 0x43), before).outcome(),
            Verdict::Outcome::kInvalid);
}

TEST_P(RootOfTrustConformance, AttestRefusesOversizedQualifyingData) {
  ASSERT_TRUE(rot_->Extend(*crypto::Sha256Of(AsBytes("os"))));
  EXPECT_FALSE(rot_->Attest(Bytes(kMaxQualifyingData + 1, 1)));
}

TEST_P(RootOfTrustConformance, RegisterStartsAtZero) { EXPECT_EQ(*rot_->ReadRegister(), Digest{}); }

TEST_P(RootOfTrustConformance, CountersStartAtZeroAndOnlyMoveForward) {
  EXPECT_EQ(*rot_->ReadCounter(0), 0u);
  ASSERT_TRUE(rot_->AdvanceCounter(0, 3));
  EXPECT_EQ(*rot_->ReadCounter(0), 3u);
  ASSERT_TRUE(rot_->AdvanceCounter(0, 3));  // equal: no-op
  auto backwards = rot_->AdvanceCounter(0, 2);
  ASSERT_FALSE(backwards);
  EXPECT_EQ(backwards.error(), RotErrc::kCounterBackwards);
  EXPECT_EQ(*rot_->ReadCounter(0), 3u);
  EXPECT_EQ(*rot_->ReadCounter(1), 0u);
}

TEST_P(RootOfTrustConformance, CountersSurviveReopen) {
  ASSERT_TRUE(rot_->AdvanceCounter(kCounterCount - 1, 5));
  rot_ = Reopen();
  ASSERT_NE(rot_, nullptr);
  EXPECT_EQ(*rot_->ReadCounter(kCounterCount - 1), 5u);
  EXPECT_EQ(rot_->AdvanceCounter(kCounterCount - 1, 4).error(), RotErrc::kCounterBackwards);
}

TEST_P(RootOfTrustConformance, CounterRejectsUnknownIndexAndHugeSteps) {
  EXPECT_EQ(rot_->ReadCounter(kCounterCount).error(), RotErrc::kInvalidArgument);
  EXPECT_EQ(rot_->AdvanceCounter(kCounterCount, 1).error(), RotErrc::kInvalidArgument);
  EXPECT_EQ(rot_->AdvanceCounter(0, kMaxCounterStep + 1).error(), RotErrc::kInvalidArgument);
}

TEST_P(RootOfTrustConformance, RandomBytesHaveRequestedLengthAndDiffer) {
  auto a = rot_->Random(100);
  auto b = rot_->Random(100);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 100u);
  EXPECT_NE(*a, *b);
}

TEST_P(RootOfTrustConformance, SealedSecretOpensOnlyWhileRegisterIsUnchanged) {
  const Bytes secret = ToBytes("disk key material");
  EXPECT_EQ(rot_->Seal(secret).error(), RotErrc::kBadState) << "nothing measured yet";
  ASSERT_TRUE(rot_->Extend(*crypto::Sha256Of(AsBytes("os"))));
  auto blob = rot_->Seal(secret);
  ASSERT_TRUE(blob) << blob.error().message();
  auto opened = rot_->Unseal(*blob);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(*opened, secret);

  ASSERT_TRUE(rot_->Extend(*crypto::Sha256Of(AsBytes("unexpected component"))));
  auto refused = rot_->Unseal(*blob);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), RotErrc::kPolicy) << refused.error().message();
}

TEST_P(RootOfTrustConformance, TamperedOrForeignSealedBlobDoesNotOpen) {
  ASSERT_TRUE(rot_->Extend(*crypto::Sha256Of(AsBytes("os"))));
  auto blob = *rot_->Seal(ToBytes("secret"));
  Bytes tampered = blob;
  tampered[tampered.size() / 2] ^= 0x01;
  EXPECT_FALSE(rot_->Unseal(tampered));
  EXPECT_FALSE(rot_->Unseal(Bytes(3, 0)));
  EXPECT_FALSE(rot_->Seal(Bytes(kMaxSealedSecret + 1, 0)));
}

INSTANTIATE_TEST_SUITE_P(Backends, RootOfTrustConformance, ::testing::Values("software", "tpm2"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace aspis::rot
