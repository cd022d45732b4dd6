// TPM-specific behaviour against a real swtpm, and agreement with an outside implementation
// (tpm2-tools) on the quote format.
#include <gtest/gtest.h>

#include <tss2/tss2_tpm2_types.h>

#include <fstream>

#include "core/file.hpp"
#include "rot/errors.hpp"
#include "rot/platform/tpm2/tpm2_root_of_trust.hpp"
#include "rot/quote.hpp"
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

// The boot PCR values in tpm2-tools' "serialized" PCR format (what `tpm2_pcrread -F serialized`
// writes and tpm2_checkquote reads for more than eight PCRs): the selection, then the values in
// TPML_DIGESTs of at most eight, as in-memory structures.
Bytes SerializedBootPcrs(const std::vector<crypto::Digest>& values) {
  TPML_PCR_SELECTION selection{};
  selection.count = 1;
  selection.pcrSelections[0].hash = TPM2_ALG_SHA256;
  selection.pcrSelections[0].sizeofSelect = 3;
  for (const std::uint32_t pcr : kBootPcrs) {
    selection.pcrSelections[0].pcrSelect[pcr / 8] |= static_cast<BYTE>(1u << (pcr % 8));
  }
  std::vector<TPML_DIGEST> digests;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i % 8 == 0) digests.emplace_back();
    TPM2B_DIGEST& d = digests.back().digests[digests.back().count++];
    d.size = static_cast<UINT16>(values[i].size());
    std::copy(values[i].begin(), values[i].end(), d.buffer);
  }
  const auto count = static_cast<std::uint32_t>(digests.size());
  Bytes out;
  auto append = [&out](const void* p, std::size_t n) {
    out.insert(out.end(), static_cast<const std::uint8_t*>(p),
               static_cast<const std::uint8_t*>(p) + n);
  };
  append(&selection, sizeof selection);
  append(&count, sizeof count);
  append(digests.data(), digests.size() * sizeof(TPML_DIGEST));
  return out;
}

// Writes the quote's message, signature, the public key and the quoted values in tpm2-tools'
// formats.
QuoteFiles WriteQuote(RootOfTrust& rot, const TempDir& dir) {
  const Bytes nonce(32, 0xa5);
  auto attestation = rot.Attest(nonce);
  EXPECT_TRUE(attestation) << attestation.error().message();
  WriteFile(dir / "msg.bin", attestation->quote.attest);
  WriteFile(dir / "sig.bin", attestation->quote.signature);
  std::ofstream(dir / "key.pem") << *rot.GetIdentity()->public_key.ToPem();
  if (attestation->boot_pcrs.empty()) {
    WriteFile(dir / "pcr.bin", *rot.ReadRegister());
  } else {
    WriteFile(dir / "pcr.bin", SerializedBootPcrs(attestation->boot_pcrs));
  }
  return {HexEncode(nonce)};
}

// `pcrs` empty: the PCR file is in the serialized format, which names its selection.
std::vector<std::string> CheckQuote(const TempDir& dir, const std::string& nonce_hex,
                                    const std::string& pcr_file, const std::string& pcrs) {
  std::vector<std::string> argv = {"tpm2_checkquote",
                                   "-u",
                                   (dir / "key.pem").string(),
                                   "-m",
                                   (dir / "msg.bin").string(),
                                   "-s",
                                   (dir / "sig.bin").string(),
                                   "-f",
                                   (dir / pcr_file).string(),
                                   "-g",
                                   "sha256",
                                   "-q",
                                   nonce_hex};
  if (!pcrs.empty()) argv.insert(argv.end(), {"-l", "sha256:" + pcrs});
  return argv;
}

Bytes ReadBytes(const std::filesystem::path& path) {
  auto bytes = file::Read(path, file::kSmallFileLimit);
  return bytes ? *bytes : Bytes{};
}

constexpr char kBootPcrList[] = "0,1,2,3,4,5,6,7,11";

TEST(Tpm2, Tpm2CheckquoteAcceptsOurBootPcrQuoteAndItsPcrReading) {
  Swtpm swtpm;
  TempDir dir;
  QuoteFiles files;
  const std::map<std::string, std::string> env{{"TPM2TOOLS_TCTI", swtpm.Tcti()}};
  // Firmware would have measured into the boot PCRs: give them values of their own.
  for (const char* pcr : {"0", "7", "11"}) {
    auto extended =
        RunProcess({"tpm2_pcrextend",
                    std::string(pcr) + ":sha256=" + std::string(64, pcr[0] == '1' ? 'b' : 'a')},
                   env);
    ASSERT_EQ(extended.exit_code, 0) << extended.output;
  }
  {
    auto rot = Initialize({.backend = "tpm2", .state_dir = dir / "state", .tcti = swtpm.Tcti()});
    ASSERT_TRUE(rot) << rot.error().message();
    ASSERT_TRUE((*rot)->Extend(*crypto::Sha256Of(AsBytes("os image"))));
    files = WriteQuote(**rot, dir);
  }
  // tpm2-tools reads the PCRs itself, on its own connection.
  auto pcrread = RunProcess({"tpm2_pcrread", std::string("sha256:") + kBootPcrList, "-F",
                             "serialized", "-o", (dir / "pcr-tools.bin").string()},
                            env);
  ASSERT_EQ(pcrread.exit_code, 0) << pcrread.output;

  // The serialized PCR files name their selection themselves.
  auto accepted = RunProcess(CheckQuote(dir, files.nonce_hex, "pcr-tools.bin", ""));
  EXPECT_EQ(accepted.exit_code, 0) << accepted.output;
  EXPECT_EQ(ReadBytes(dir / "pcr.bin"), ReadBytes(dir / "pcr-tools.bin"));
  auto ours = RunProcess(CheckQuote(dir, files.nonce_hex, "pcr.bin", ""));
  EXPECT_EQ(ours.exit_code, 0) << ours.output;

  // The outside verifier is not a rubber stamp: another nonce fails.
  auto rejected = RunProcess(CheckQuote(dir, std::string(64, '0'), "pcr-tools.bin", ""));
  EXPECT_NE(rejected.exit_code, 0) << rejected.output;
}

TEST(Tpm2, Tpm2CheckquoteAcceptsSoftwareBackendQuotes) {
  TempDir dir;
  auto rot = Initialize({.backend = "software", .state_dir = dir / "state"});
  ASSERT_TRUE(rot);
  ASSERT_TRUE((*rot)->Extend(*crypto::Sha256Of(AsBytes("os image"))));
  const QuoteFiles files = WriteQuote(**rot, dir);
  auto accepted = RunProcess(CheckQuote(dir, files.nonce_hex, "pcr.bin", "15"));
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
  ASSERT_TRUE(tpm.Extend(*crypto::Sha256Of(AsBytes("os"))));
  for (int i = 0; i < 8; ++i) {
    auto blob = tpm.Seal(ToBytes("secret"));
    ASSERT_TRUE(blob) << "iteration " << i << ": " << blob.error().message();
    ASSERT_TRUE(tpm.Unseal(*blob)) << "iteration " << i;
    ASSERT_TRUE(tpm.Sign(Bytes(3000, 1))) << "iteration " << i;  // hash sequence path
    ASSERT_TRUE(tpm.Attest(Bytes(32, 2))) << "iteration " << i;
    ASSERT_TRUE(tpm.Extend(*crypto::Sha256Of(AsBytes("next"))));
    auto refused = tpm.Unseal(*blob);  // policy failure path
    ASSERT_FALSE(refused);
    ASSERT_EQ(refused.error(), RotErrc::kPolicy) << refused.error().message();
    ASSERT_FALSE(tpm.Unseal(Bytes(blob->size(), 0x11)));  // load failure path
  }
}

std::string NvPcrHandle() {
  char handle[16];
  std::snprintf(handle, sizeof handle, "0x%08x", kNvPcrIndex);
  return handle;
}

TEST(Tpm2, NvPcrIsPlatformCreatedAndTheOwnerCannotDeleteIt) {
  Swtpm swtpm;
  TempDir dir;
  const std::map<std::string, std::string> env{{"TPM2TOOLS_TCTI", swtpm.Tcti()}};
  {
    auto rot = Initialize({.backend = "tpm2", .state_dir = dir / "state", .tcti = swtpm.Tcti()});
    ASSERT_TRUE(rot) << rot.error().message();
    EXPECT_EQ((*rot)->RegisterName(), "NvPCR " + NvPcrHandle());
    ASSERT_TRUE((*rot)->Extend(*crypto::Sha256Of(AsBytes("os image"))));
  }
  auto pub = RunProcess({"tpm2_nvreadpublic", NvPcrHandle()}, env);
  ASSERT_EQ(pub.exit_code, 0) << pub.output;
  char attributes[32];
  std::snprintf(attributes, sizeof attributes, "value: 0x%X", NvPcrAttributes() | TPMA_NV_WRITTEN);
  EXPECT_NE(pub.output.find(attributes), std::string::npos) << pub.output;
  EXPECT_NE(pub.output.find("policydelete"), std::string::npos) << pub.output;
  EXPECT_NE(pub.output.find("platformcreate"), std::string::npos) << pub.output;
  // Root on the device holds owner authorization (empty here) and still cannot delete it.
  auto undefine = RunProcess({"tpm2_nvundefine", "-C", "o", NvPcrHandle()}, env);
  EXPECT_NE(undefine.exit_code, 0) << undefine.output;
  EXPECT_EQ(RunProcess({"tpm2_nvreadpublic", NvPcrHandle()}, env).exit_code, 0);
}

TEST(Tpm2, NvPcrImpostorDefinedByTheOwnerIsRefused) {
  Swtpm swtpm;
  TempDir dir;
  const std::map<std::string, std::string> env{{"TPM2TOOLS_TCTI", swtpm.Tcti()}};
  // An extend index at the NvPCR's handle that the owner defined, and so may delete and recreate.
  auto defined = RunProcess({"tpm2_nvdefine", "-C", "o", "-s", "32", "-a",
                             "nt=extend|authread|authwrite|no_da|clear_stclear", NvPcrHandle()},
                            env);
  ASSERT_EQ(defined.exit_code, 0) << defined.output;
  auto rot = Initialize({.backend = "tpm2", .state_dir = dir / "state", .tcti = swtpm.Tcti()});
  ASSERT_FALSE(rot);
  EXPECT_EQ(rot.error(), RotErrc::kBadState);
  EXPECT_NE(rot.error().message().find("is not an Aspis NvPCR"), std::string::npos)
      << rot.error().message();
}

TEST(Tpm2, NvPcrCertificationNamesTheIndexTheVerifierExpects) {
  Swtpm swtpm;
  TempDir dir;
  auto rot = Initialize({.backend = "tpm2", .state_dir = dir / "state", .tcti = swtpm.Tcti()});
  ASSERT_TRUE(rot) << rot.error().message();
  ASSERT_TRUE((*rot)->Extend(*crypto::Sha256Of(AsBytes("os image"))));
  const Bytes nonce(32, 7);
  auto attestation = (*rot)->Attest(nonce);
  ASSERT_TRUE(attestation) << attestation.error().message();
  ASSERT_TRUE(attestation->register_certification);
  AttestBody body;
  const auto key = (*rot)->GetIdentity()->public_key;
  ASSERT_TRUE(VerifySignedAttest(*attestation->register_certification, key, kAttestNv, nonce, &body)
                  .valid());
  EXPECT_EQ(body.nv_name, *NvPcrName());
  EXPECT_TRUE(CheckNvCertifies(body, *NvPcrName(), *(*rot)->ReadRegister()).valid());
}

TEST(Tpm2, AttestBeforeAnyMeasurementIsAnError) {
  Swtpm swtpm;
  TempDir dir;
  auto rot = Initialize({.backend = "tpm2", .state_dir = dir / "state", .tcti = swtpm.Tcti()});
  ASSERT_TRUE(rot) << rot.error().message();
  auto attestation = (*rot)->Attest(Bytes(32, 1));
  ASSERT_FALSE(attestation);
  EXPECT_NE(attestation.error().message().find("holds no measurement"), std::string::npos)
      << attestation.error().message();
}

// Root copies the device's state directory, lets a counter move on, then puts the old copy back:
// the TPM's counter does not follow the files. (The software backend's counters are files; its
// limit is in docs/threat-model.md.)
TEST(Tpm2, RollbackAttackRestoredStateFilesDoNotMoveTheCounterBack) {
  Swtpm swtpm;
  TempDir dir;
  const auto state = dir / "state";
  {
    auto rot = Initialize({.backend = "tpm2", .state_dir = state, .tcti = swtpm.Tcti()});
    ASSERT_TRUE(rot) << rot.error().message();
    ASSERT_TRUE((*rot)->AdvanceCounter(0, 3));
  }
  std::filesystem::copy(state, dir / "backup", std::filesystem::copy_options::recursive);
  {
    auto rot = Open(state);
    ASSERT_TRUE(rot) << rot.error().message();
    ASSERT_TRUE((*rot)->AdvanceCounter(0, 9));
  }
  std::filesystem::remove_all(state);
  std::filesystem::copy(dir / "backup", state, std::filesystem::copy_options::recursive);
  auto rot = Open(state);
  ASSERT_TRUE(rot) << rot.error().message();
  EXPECT_EQ(*(*rot)->ReadCounter(0), 9u);
  auto back = (*rot)->AdvanceCounter(0, 4);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error(), RotErrc::kCounterBackwards);
  EXPECT_TRUE((*rot)->AdvanceCounter(0, 10)) << "forward still works";
}

TEST(Tpm2, UnreachableTpmIsReportedAsUnavailable) {
  const int port = testing::FreePort(2);
  auto rot = tpm2::Open("swtpm:host=127.0.0.1,port=" + std::to_string(port), true);
  ASSERT_FALSE(rot);
  EXPECT_EQ(rot.error(), RotErrc::kUnavailable) << rot.error().message();
}

TEST(Tpm2, OpenWithoutProvisioningNamesTheFix) {
  Swtpm swtpm;
  auto rot = tpm2::Open(swtpm.Tcti(), false);
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

  auto rot = tpm2::Open(swtpm.Tcti(), true);
  ASSERT_FALSE(rot);
  EXPECT_EQ(rot.error(), RotErrc::kBadState);
  EXPECT_NE(rot.error().message().find("not an Aspis identity key"), std::string::npos);
}

}  // namespace
}  // namespace aspis::rot
