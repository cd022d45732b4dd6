// TPM-specific behaviour against a real swtpm, and agreement with an outside implementation
// (tpm2-tools) on the quote format.
#include <gtest/gtest.h>

#include <fstream>

#include "rot/errors.hpp"
#include "rot/platform/tpm2/tpm2_root_of_trust.hpp"
#include "rot/root_of_trust.hpp"
#include "support/process.hpp"
#include "support/swtpm.hpp"
#include "support/temp_dir.hpp"

namespace aspis::rot {
namespace {

using testing::RunProcess;
using testing::Swtpm;
using testing::TempDir;

void WriteFile(const std::filesystem::path& path, ByteView data) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

struct QuoteFiles {
  std::string nonce_hex;
};

// Writes message, signature, public key and register value in tpm2-tools' formats.
QuoteFiles WriteQuote(RootOfTrust& rot, const TempDir& dir) {
  const Bytes nonce(32, 0xa5);
  auto quote = rot.CreateQuote(nonce);
  EXPECT_TRUE(quote) << quote.error().message();
  WriteFile(dir / "msg.bin", quote->attest);
  WriteFile(dir / "sig.bin", quote->signature);
  std::ofstream(dir / "key.pem") << *rot.GetIdentity()->public_key.ToPem();
  WriteFile(dir / "pcr.bin", *rot.ReadRegister());
  return {HexEncode(nonce)};
}

std::vector<std::string> CheckQuote(const TempDir& dir, const std::string& nonce_hex,
                                    const std::string& pcr_file, std::uint32_t index) {
  return {"tpm2_checkquote",
          "-u",
          (dir / "key.pem").string(),
          "-m",
          (dir / "msg.bin").string(),
          "-s",
          (dir / "sig.bin").string(),
          "-f",
          (dir / pcr_file).string(),
          "-l",
          "sha256:" + std::to_string(index),
          "-g",
          "sha256",
          "-q",
          nonce_hex};
}

TEST(Tpm2, Tpm2CheckquoteAcceptsOurQuoteAndItsPcrReading) {
  Swtpm swtpm;
  TempDir dir;
  QuoteFiles files;
  {
    auto rot = Initialize({.backend = "tpm2", .state_dir = dir / "state", .tcti = swtpm.Tcti()});
    ASSERT_TRUE(rot) << rot.error().message();
    ASSERT_TRUE((*rot)->Extend(*crypto::Sha256Of(AsBytes("os image"))));
    files = WriteQuote(**rot, dir);
  }
  // tpm2-tools reads the PCR itself, on its own connection.
  auto pcrread = RunProcess({"tpm2_pcrread", "sha256:15", "-o", (dir / "pcr-tools.bin").string()},
                            {{"TPM2TOOLS_TCTI", swtpm.Tcti()}});
  ASSERT_EQ(pcrread.exit_code, 0) << pcrread.output;

  auto accepted = RunProcess(CheckQuote(dir, files.nonce_hex, "pcr-tools.bin", 15));
  EXPECT_EQ(accepted.exit_code, 0) << accepted.output;
  auto ours = RunProcess(CheckQuote(dir, files.nonce_hex, "pcr.bin", 15));
  EXPECT_EQ(ours.exit_code, 0) << ours.output;

  // The outside verifier is not a rubber stamp: another nonce fails.
  auto rejected = RunProcess(CheckQuote(dir, std::string(64, '0'), "pcr-tools.bin", 15));
  EXPECT_NE(rejected.exit_code, 0) << rejected.output;
}

TEST(Tpm2, Tpm2CheckquoteAcceptsSoftwareBackendQuotes) {
  TempDir dir;
  auto rot = Initialize({.backend = "software", .state_dir = dir / "state"});
  ASSERT_TRUE(rot);
  ASSERT_TRUE((*rot)->Extend(*crypto::Sha256Of(AsBytes("os image"))));
  const QuoteFiles files = WriteQuote(**rot, dir);
  auto accepted = RunProcess(CheckQuote(dir, files.nonce_hex, "pcr.bin", 15));
  EXPECT_EQ(accepted.exit_code, 0) << accepted.output;
}

TEST(Tpm2, RepeatedOperationsAndFailuresLeakNoTransientObjects) {
  // swtpm has no resource manager and holds three transient objects: a single leaked handle per
  // call would exhaust it within a few iterations.
  Swtpm swtpm;
  TempDir dir;
  auto rot = Initialize({.backend = "tpm2", .state_dir = dir / "state", .tcti = swtpm.Tcti()});
  ASSERT_TRUE(rot) << rot.error().message();
  RootOfTrust& tpm = **rot;
  for (int i = 0; i < 8; ++i) {
    auto blob = tpm.Seal(ToBytes("secret"));
    ASSERT_TRUE(blob) << "iteration " << i << ": " << blob.error().message();
    ASSERT_TRUE(tpm.Unseal(*blob)) << "iteration " << i;
    ASSERT_TRUE(tpm.Sign(Bytes(3000, 1))) << "iteration " << i;  // hash sequence path
    ASSERT_TRUE(tpm.CreateQuote(Bytes(32, 2))) << "iteration " << i;
    ASSERT_TRUE(tpm.Extend(*crypto::Sha256Of(AsBytes("next"))));
    auto refused = tpm.Unseal(*blob);  // policy failure path
    ASSERT_FALSE(refused);
    ASSERT_EQ(refused.error(), RotErrc::kPolicy) << refused.error().message();
    ASSERT_FALSE(tpm.Unseal(Bytes(blob->size(), 0x11)));  // load failure path
  }
}

TEST(Tpm2, ResettablePcrsAreRefusedAsMeasurementRegisters) {
  Swtpm swtpm;
  for (std::uint32_t index : {16u, 23u, 24u}) {
    auto rot = tpm2::Open(swtpm.Tcti(), index, true);
    ASSERT_FALSE(rot) << index;
    EXPECT_EQ(rot.error(), RotErrc::kInvalidArgument);
  }
}

TEST(Tpm2, ConfigurableRegisterIsTheOneExtendedAndQuoted) {
  Swtpm swtpm;
  TempDir dir;
  auto rot = Initialize(
      {.backend = "tpm2", .state_dir = dir / "state", .tcti = swtpm.Tcti(), .register_index = 14});
  ASSERT_TRUE(rot) << rot.error().message();
  ASSERT_TRUE((*rot)->Extend(*crypto::Sha256Of(AsBytes("x"))));
  const Bytes nonce(32, 1);
  auto quote = *(*rot)->CreateQuote(nonce);
  const QuoteExpectation expected{nonce, 14, *(*rot)->ReadRegister()};
  EXPECT_TRUE(VerifyQuote(quote, (*rot)->GetIdentity()->public_key, expected).valid());
}

TEST(Tpm2, UnreachableTpmIsReportedAsUnavailable) {
  const int port = testing::FreePort(2);
  auto rot = tpm2::Open("swtpm:host=127.0.0.1,port=" + std::to_string(port), 15, true);
  ASSERT_FALSE(rot);
  EXPECT_EQ(rot.error(), RotErrc::kUnavailable) << rot.error().message();
}

TEST(Tpm2, OpenWithoutProvisioningNamesTheFix) {
  Swtpm swtpm;
  auto rot = tpm2::Open(swtpm.Tcti(), 15, false);
  ASSERT_FALSE(rot);
  EXPECT_EQ(rot.error(), RotErrc::kBadState);
  EXPECT_NE(rot.error().message().find("aspisd identity init"), std::string::npos);
}

TEST(Tpm2, KeySubstitutionAttackForeignObjectAtIdentityHandleIsRefused) {
  Swtpm swtpm;
  TempDir dir;
  const std::map<std::string, std::string> env{{"TPM2TOOLS_TCTI", swtpm.Tcti()}};
  // An unrestricted signing key parked at the identity handle would sign anything as a "quote".
  auto primary = RunProcess({"tpm2_createprimary", "-C", "o", "-G", "ecc256:ecdsa-sha256", "-a",
                             "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign", "-c",
                             (dir / "k.ctx").string()},
                            env);
  ASSERT_EQ(primary.exit_code, 0) << primary.output;
  char handle[16];
  std::snprintf(handle, sizeof handle, "0x%08x", tpm2::kIdentityHandle);
  auto evict =
      RunProcess({"tpm2_evictcontrol", "-C", "o", "-c", (dir / "k.ctx").string(), handle}, env);
  ASSERT_EQ(evict.exit_code, 0) << evict.output;
  RunProcess({"tpm2_flushcontext", "-t"}, env);

  auto rot = tpm2::Open(swtpm.Tcti(), 15, true);
  ASSERT_FALSE(rot);
  EXPECT_EQ(rot.error(), RotErrc::kBadState);
  EXPECT_NE(rot.error().message().find("not an Aspis identity key"), std::string::npos);
}

}  // namespace
}  // namespace aspis::rot
