#include <gtest/gtest.h>
#include <sys/stat.h>

#include "core/file.hpp"
#include "rot/errors.hpp"
#include "rot/quote.hpp"
#include "rot/root_of_trust.hpp"
#include "support/temp_dir.hpp"

namespace aspis::rot {
namespace {

using testing::TempDir;

constexpr std::uint32_t kRegisterMask = 1u << kSoftwareRegister;

std::unique_ptr<RootOfTrust> NewSoftware(const TempDir& dir) {
  auto rot = Initialize({.backend = "software", .state_dir = dir / "rot"});
  EXPECT_TRUE(rot) << rot.error().message();
  return std::move(*rot);
}

Bytes Nonce(std::uint8_t fill) { return Bytes(32, fill); }

class QuoteVerification : public ::testing::Test {
 protected:
  void SetUp() override {
    rot_ = NewSoftware(dir_);
    ASSERT_TRUE(rot_->Extend(*crypto::Sha256Of(AsBytes("os image"))));
    identity_ = *rot_->GetIdentity();
    value_ = *rot_->ReadRegister();
  }

  Quote QuoteOver(const Bytes& nonce) { return rot_->Attest(nonce)->quote; }
  QuoteExpectation Expect(const Bytes& nonce) const {
    return {nonce, kRegisterMask, std::span(&value_, 1)};
  }
  Verdict Verify(const Quote& quote, const Bytes& nonce) const {
    return VerifyQuote(quote, identity_->public_key, Expect(nonce));
  }

  TempDir dir_;
  std::unique_ptr<RootOfTrust> rot_;
  std::optional<Identity> identity_;
  crypto::Digest value_{};
};

TEST_F(QuoteVerification, GenuineQuoteIsValid) {
  const Bytes nonce = Nonce(1);
  auto attestation = *rot_->Attest(nonce);
  EXPECT_TRUE(Verify(attestation.quote, nonce).valid());
  EXPECT_TRUE(attestation.boot_pcrs.empty());
  EXPECT_FALSE(attestation.register_certification);
  auto body = ParseAttest(attestation.quote.attest);
  ASSERT_TRUE(body);
  EXPECT_EQ(body->type, kAttestQuote);
  EXPECT_EQ(body->qualifying_data, nonce);
  EXPECT_EQ(body->register_mask, kRegisterMask);
}

TEST_F(QuoteVerification, ReplayAttackQuoteOverAnotherNonceIsInvalid) {
  auto verdict = Verify(QuoteOver(Nonce(1)), Nonce(2));
  EXPECT_EQ(verdict.outcome(), Verdict::Outcome::kInvalid);
  EXPECT_NE(verdict.reason().find("qualifying data does not match"), std::string::npos)
      << verdict.reason();
}

TEST_F(QuoteVerification, QuoteOfAnotherRegisterValueIsInvalid) {
  const Bytes nonce = Nonce(1);
  crypto::Digest other = value_;
  other[0] ^= 1;
  auto verdict = VerifyQuote(QuoteOver(nonce), identity_->public_key,
                             {nonce, kRegisterMask, std::span(&other, 1)});
  EXPECT_EQ(verdict.outcome(), Verdict::Outcome::kInvalid);
  EXPECT_NE(verdict.reason().find("quoted PCR values differ"), std::string::npos)
      << verdict.reason();
}

TEST_F(QuoteVerification, ImpersonationQuoteFromAnotherDeviceIsInvalid) {
  TempDir other_dir;
  auto other = NewSoftware(other_dir);
  ASSERT_TRUE(other->Extend(*crypto::Sha256Of(AsBytes("os image"))));
  const Bytes nonce = Nonce(1);
  auto verdict = Verify(other->Attest(nonce)->quote, nonce);
  EXPECT_EQ(verdict.outcome(), Verdict::Outcome::kInvalid);
  EXPECT_NE(verdict.reason().find("signature does not verify"), std::string::npos);
}

TEST_F(QuoteVerification, ForgedQuoteWithEditedFieldsIsInvalid) {
  const Bytes nonce = Nonce(1);
  auto quote = QuoteOver(Nonce(9));
  // Overwrite the qualifying data inside the signed structure with the expected nonce.
  auto body = *ParseAttest(quote.attest);
  auto it = std::search(quote.attest.begin(), quote.attest.end(), body.qualifying_data.begin(),
                        body.qualifying_data.end());
  ASSERT_NE(it, quote.attest.end());
  std::copy(nonce.begin(), nonce.end(), it);
  auto verdict = Verify(quote, nonce);
  EXPECT_EQ(verdict.outcome(), Verdict::Outcome::kInvalid);
  EXPECT_NE(verdict.reason().find("signature does not verify"), std::string::npos);
}

TEST_F(QuoteVerification, QuoteOverOtherRegistersThanTheVerifierRequiresIsInvalid) {
  const Bytes nonce = Nonce(1);
  // The register value is right, but the verifier asks for PCR 14, not the quoted 15.
  auto verdict = VerifyQuote(QuoteOver(nonce), identity_->public_key,
                             {nonce, 1u << 14, std::span(&value_, 1)});
  EXPECT_EQ(verdict.outcome(), Verdict::Outcome::kInvalid);
  EXPECT_NE(verdict.reason().find("quote covers PCRs 15, but the verifier requires exactly 14"),
            std::string::npos)
      << verdict.reason();
}

TEST_F(QuoteVerification, MalformedQuotesAreInvalidNotCrashes) {
  const Bytes nonce = Nonce(1);
  auto good = QuoteOver(nonce);
  std::vector<Quote> bad{
      {{}, {}},
      {good.attest, {}},
      {Bytes(good.attest.begin(), good.attest.begin() + 10), good.signature},
      {good.attest, Bytes(good.signature.begin(), good.signature.end() - 3)},
      {Bytes(4096, 0xff), good.signature},
  };
  Quote trailing = good;
  trailing.attest.push_back(0);
  bad.push_back(trailing);
  for (const auto& quote : bad) {
    EXPECT_EQ(Verify(quote, nonce).outcome(), Verdict::Outcome::kInvalid);
  }
}

// Signed by the identity key (what Sign produces), so only the structure checks can refuse.
TEST_F(QuoteVerification, SignedStructureThatIsNotTpmGeneratedIsInvalid) {
  const Bytes nonce = Nonce(1);
  Bytes attest = QuoteOver(nonce).attest;
  attest[0] ^= 0xff;  // the TPM_GENERATED magic a TPM puts only into structures it made
  const Quote forged{attest, *MarshalEcdsaSignature(*rot_->Sign(attest))};
  auto verdict = Verify(forged, nonce);
  EXPECT_EQ(verdict.outcome(), Verdict::Outcome::kInvalid);
  EXPECT_NE(verdict.reason().find("lacks the TPM_GENERATED magic"), std::string::npos)
      << verdict.reason();

  const Bytes junk = ToBytes("not a TPMS_ATTEST");
  const Quote unparsable{junk, *MarshalEcdsaSignature(*rot_->Sign(junk))};
  verdict = Verify(unparsable, nonce);
  EXPECT_NE(verdict.reason().find("not a TPMS_ATTEST"), std::string::npos) << verdict.reason();
}

TEST_F(QuoteVerification, QuotePresentedAsAnNvCertificationIsInvalid) {
  const Bytes nonce = Nonce(1);
  AttestBody body;
  EXPECT_TRUE(
      VerifySignedAttest(QuoteOver(nonce), identity_->public_key, kAttestQuote, nonce, &body)
          .valid());
  auto verdict =
      VerifySignedAttest(QuoteOver(nonce), identity_->public_key, kAttestNv, nonce, &body);
  EXPECT_EQ(verdict.outcome(), Verdict::Outcome::kInvalid);
  EXPECT_NE(verdict.reason().find("signed structure of another type"), std::string::npos)
      << verdict.reason();
}

TEST(NvPcr, PolicyIsPolicyCommandCodeOfUndefineSpaceSpecialAsTpm2ToolsComputesIt) {
  // tpm2_policycommandcode -L policy.dat TPM2_CC_NV_UndefineSpaceSpecial, in a trial session.
  EXPECT_EQ(crypto::ToHex(*NvPcrPolicy()),
            "1d2dc485e177ddd0a40a344913ceeb420caa093c42587d2e1b132b157ccb5db0");
}

TEST(SoftwareRootOfTrust, RefusesWorldReadableIdentityKey) {
  TempDir dir;
  NewSoftware(dir);
  ::chmod((dir / "rot/identity-key.pem").c_str(), 0644);
  auto reopened = Open(dir / "rot");
  ASSERT_FALSE(reopened);
  EXPECT_NE(reopened.error().message().find("chmod 600"), std::string::npos);
}

TEST(SoftwareRootOfTrust, RegisterStartsFromZeroAfterARebootAndPersistsOtherwise) {
  TempDir dir;
  const auto boot = dir / "boot_id";
  ASSERT_TRUE(file::WriteDurably(boot, AsBytes("first-boot\n"), 0644));
  auto rot = Initialize({.backend = "software", .state_dir = dir / "rot", .boot_id_file = boot});
  ASSERT_TRUE(rot) << rot.error().message();
  const Digest zero{};
  ASSERT_TRUE((*rot)->Extend(Digest{1}));
  ASSERT_TRUE((*rot)->AdvanceCounter(2, 5));
  const Digest extended = *(*rot)->ReadRegister();
  const std::string id = (*rot)->GetIdentity()->device_id;
  rot->reset();

  auto restarted = Open(dir / "rot", boot);
  ASSERT_TRUE(restarted) << restarted.error().message();
  EXPECT_EQ(*(*restarted)->ReadRegister(), extended) << "a restart without a reboot keeps it";
  restarted->reset();

  ASSERT_TRUE(file::WriteDurably(boot, AsBytes("second-boot\n"), 0644));
  auto rebooted = Open(dir / "rot", boot);
  ASSERT_TRUE(rebooted) << rebooted.error().message();
  EXPECT_EQ(*(*rebooted)->ReadRegister(), zero);
  EXPECT_EQ((*rebooted)->GetIdentity()->device_id, id);
  EXPECT_EQ(*(*rebooted)->ReadCounter(2), 5u);
}

TEST(SoftwareRootOfTrust, TruncatedRegisterIsAClearErrorNotAReset) {
  TempDir dir;
  NewSoftware(dir);
  ASSERT_TRUE(file::WriteDurably(dir / "rot/register.bin", Bytes(7, 0), 0600));
  auto reopened = Open(dir / "rot");
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error(), RotErrc::kBadState);
  EXPECT_NE(reopened.error().message().find("register.bin"), std::string::npos);
  // Initialize must not paper over the damage either.
  EXPECT_FALSE(Initialize({.backend = "software", .state_dir = dir / "rot"}));
}

TEST(SoftwareRootOfTrust, CorruptCountersAndKeyAreClearErrors) {
  TempDir dir;
  NewSoftware(dir);
  ASSERT_TRUE(file::WriteDurably(dir / "rot/counters.json", AsBytes("{\"counters\":[1,2"), 0600));
  EXPECT_EQ(Open(dir / "rot").error(), RotErrc::kBadState);
  ASSERT_TRUE(file::WriteDurably(dir / "rot/counters.json", AsBytes("{\"counters\":[-1]}"), 0600));
  EXPECT_EQ(Open(dir / "rot").error(), RotErrc::kBadState);

  TempDir dir2;
  NewSoftware(dir2);
  ASSERT_TRUE(file::WriteDurably(dir2 / "rot/identity-key.pem", AsBytes("-----BEGIN"), 0600));
  auto reopened = Open(dir2 / "rot");
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error(), RotErrc::kBadState);
}

TEST(SoftwareRootOfTrust, MissingStateIsReportedWithTheFixToRun) {
  TempDir dir;
  auto opened = Open(dir / "nothing");
  ASSERT_FALSE(opened);
  EXPECT_NE(opened.error().message().find("aspisd identity init"), std::string::npos);
}

TEST(SoftwareRootOfTrust, InitializeRefusesToSwitchBackendOfExistingState) {
  TempDir dir;
  NewSoftware(dir);
  auto switched = Initialize({.backend = "tpm2", .state_dir = dir / "rot"});
  ASSERT_FALSE(switched);
  EXPECT_NE(switched.error().message().find("refusing to switch"), std::string::npos);
}

TEST(SoftwareRootOfTrust, RegisterSurvivesReopen) {
  TempDir dir;
  crypto::Digest value{};
  {
    auto rot = NewSoftware(dir);
    ASSERT_TRUE(rot->Extend(*crypto::Sha256Of(AsBytes("m"))));
    value = *rot->ReadRegister();
  }
  auto rot = *Open(dir / "rot");
  EXPECT_EQ(*rot->ReadRegister(), value);
}

}  // namespace
}  // namespace aspis::rot
