// TPM2_MakeCredential in software (rot/credential.hpp) against a real TPM (swtpm, driven by
// tpm2-tools) and against tpm2-tools' own implementation of it.
#include <gtest/gtest.h>

#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "rot/credential.hpp"
#include "rot/errors.hpp"
#include "support/process.hpp"
#include "support/swtpm.hpp"
#include "support/temp_dir.hpp"

namespace aspis::rot {
namespace {

using testing::ProcessResult;
using testing::RunProcess;

constexpr std::array<std::uint8_t, 8> kToolsFileHeader = {0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1};

void WriteFile(const std::filesystem::path& path, ByteView data) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

Bytes ReadBytes(const std::filesystem::path& path) {
  auto bytes = file::Read(path, file::kSmallFileLimit);
  EXPECT_TRUE(bytes) << bytes.error().message();
  return bytes ? *bytes : Bytes{};
}

// tpm2-tools' credential file (tpm2_makecredential -o, tpm2_activatecredential -i): magic
// 0xBADCC0DE and version 1, both big-endian 32-bit, then the TPM2B_ID_OBJECT and the
// TPM2B_ENCRYPTED_SECRET.
Bytes ToolsCredentialFile(const Credential& credential) {
  Bytes out(kToolsFileHeader.begin(), kToolsFileHeader.end());
  out.insert(out.end(), credential.credential_blob.begin(), credential.credential_blob.end());
  out.insert(out.end(), credential.encrypted_secret.begin(), credential.encrypted_secret.end());
  return out;
}

struct CredentialFile {
  TPM2B_ID_OBJECT id_object{};
  TPM2B_ENCRYPTED_SECRET encrypted_secret{};
  // The parts of the TPM2B_ID_OBJECT: integrityHMAC (a TPM2B_DIGEST) and encIdentity.
  TPM2B_DIGEST integrity_hmac{};
  std::size_t enc_identity_size = 0;
};

// Parses a credential file strictly: every structure complete, no byte left over.
CredentialFile ParseCredentialFile(ByteView file) {
  CredentialFile parsed;
  EXPECT_GE(file.size(), kToolsFileHeader.size());
  if (file.size() < kToolsFileHeader.size()) return parsed;
  EXPECT_TRUE(std::equal(kToolsFileHeader.begin(), kToolsFileHeader.end(), file.begin()));
  std::size_t offset = kToolsFileHeader.size();
  EXPECT_EQ(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(file.data(), file.size(), &offset, &parsed.id_object),
            TSS2_RC_SUCCESS);
  EXPECT_EQ(Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(file.data(), file.size(), &offset,
                                                     &parsed.encrypted_secret),
            TSS2_RC_SUCCESS);
  EXPECT_EQ(offset, file.size()) << "credential file has trailing bytes";
  std::size_t inner = 0;
  EXPECT_EQ(Tss2_MU_TPM2B_DIGEST_Unmarshal(parsed.id_object.credential, parsed.id_object.size,
                                           &inner, &parsed.integrity_hmac),
            TSS2_RC_SUCCESS);
  parsed.enc_identity_size = parsed.id_object.size - inner;
  return parsed;
}

// The TPMS_ECC_POINT an ECC EK's encrypted secret holds, parsed strictly.
TPMS_ECC_POINT EphemeralPoint(const TPM2B_ENCRYPTED_SECRET& secret) {
  TPMS_ECC_POINT point{};
  std::size_t offset = 0;
  EXPECT_EQ(Tss2_MU_TPMS_ECC_POINT_Unmarshal(secret.secret, secret.size, &offset, &point),
            TSS2_RC_SUCCESS);
  EXPECT_EQ(offset, secret.size);
  return point;
}

// `tpm2b_public` with `change` applied to its TPMT_PUBLIC, marshaled again.
Bytes Mutated(ByteView tpm2b_public, const std::function<void(TPMT_PUBLIC&)>& change) {
  TPM2B_PUBLIC pub{};
  std::size_t offset = 0;
  EXPECT_EQ(Tss2_MU_TPM2B_PUBLIC_Unmarshal(tpm2b_public.data(), tpm2b_public.size(), &offset, &pub),
            TSS2_RC_SUCCESS);
  change(pub.publicArea);
  Bytes out(sizeof pub);
  offset = 0;
  EXPECT_EQ(Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, out.data(), out.size(), &offset), TSS2_RC_SUCCESS);
  out.resize(offset);
  return out;
}

// A real TPM with an EK and attestation keys made by tpm2-tools. swtpm serves one connection at a
// time, so the tools run one after the other; without a resource manager the objects and sessions
// they load stay in the TPM, so each step ends by flushing them.
class CredentialActivation : public ::testing::Test {
 protected:
  ProcessResult Tool(const std::vector<std::string>& argv) {
    return RunProcess(argv, {{"TPM2TOOLS_TCTI", swtpm_.Tcti()}});
  }

  std::string Path(const std::string& file) const { return (dir_ / file).string(); }

  void Flush() {
    for (const char* what : {"-t", "-l", "-s"}) {
      const auto flushed = Tool({"tpm2_flushcontext", what});
      ASSERT_EQ(flushed.exit_code, 0) << flushed.output;
    }
  }

  // Creates the EK of algorithm `alg` ("ecc", "rsa", ...) in <alg>-ek.ctx; returns its TPM2B_PUBLIC
  // and checks that ObjectName computes the Name the TPM gives it.
  Bytes CreateEk(const std::string& alg) {
    const auto created = Tool(
        {"tpm2_createek", "-G", alg, "-c", Path(alg + "-ek.ctx"), "-u", Path(alg + "-ek.pub")});
    EXPECT_EQ(created.exit_code, 0) << created.output;
    Flush();
    const auto read =
        Tool({"tpm2_readpublic", "-c", Path(alg + "-ek.ctx"), "-n", Path(alg + "-ek.name")});
    EXPECT_EQ(read.exit_code, 0) << read.output;
    Flush();
    const Bytes ek_public = ReadBytes(Path(alg + "-ek.pub"));
    auto name = ObjectName(ek_public);
    EXPECT_TRUE(name) << name.error().message();
    if (name) {
      EXPECT_EQ(HexEncode(*name), HexEncode(ReadBytes(Path(alg + "-ek.name"))));
    }
    return ek_public;
  }

  // Creates an attestation key (restricted ECDSA P-256 signing key) `ak` under the EK of `alg`, in
  // <ak>.ctx; returns its Name as the TPM computes it, after checking ObjectName agrees.
  Bytes CreateAk(const std::string& alg, const std::string& ak) {
    const auto created =
        Tool({"tpm2_createak", "-C", Path(alg + "-ek.ctx"), "-c", Path(ak + ".ctx"), "-G", "ecc",
              "-g", "sha256", "-s", "ecdsa", "-u", Path(ak + ".pub"), "-n", Path(ak + ".name")});
    EXPECT_EQ(created.exit_code, 0) << created.output;
    Flush();
    const Bytes tpm_name = ReadBytes(Path(ak + ".name"));
    auto name = ObjectName(ReadBytes(Path(ak + ".pub")));
    EXPECT_TRUE(name) << name.error().message();
    if (name) {
      EXPECT_EQ(HexEncode(*name), HexEncode(tpm_name));
    }
    return tpm_name;
  }

  // TPM2_ActivateCredential of the credential file `in` for `ak` with the EK of `alg`, under the
  // policy the EK requires (PolicySecret with the endorsement hierarchy). The secret is in `out`.
  ProcessResult Activate(const std::string& alg, const std::string& ak, const std::string& in,
                         const std::string& out) {
    const std::string session = Path("session.ctx");
    auto started = Tool({"tpm2_startauthsession", "--policy-session", "-S", session});
    EXPECT_EQ(started.exit_code, 0) << started.output;
    auto policy = Tool({"tpm2_policysecret", "-S", session, "-c", "e"});
    EXPECT_EQ(policy.exit_code, 0) << policy.output;
    auto activated =
        Tool({"tpm2_activatecredential", "-c", Path(ak + ".ctx"), "-C", Path(alg + "-ek.ctx"), "-i",
              Path(in), "-o", Path(out), "-P", "session:" + session});
    Flush();
    return activated;
  }

  testing::Swtpm swtpm_;
  testing::TempDir dir_;
};

TEST_F(CredentialActivation, OurCredentialActivatesOnTheTpmForEccAndRsaEks) {
  for (const std::string alg : {"ecc", "rsa"}) {
    SCOPED_TRACE(alg);
    const Bytes ek_public = CreateEk(alg);
    const Bytes ak_name = CreateAk(alg, alg + "-ak");
    auto secret = crypto::RandomBytes(kMaxCredentialSecret);
    ASSERT_TRUE(secret);

    auto credential = MakeCredential(ek_public, ak_name, *secret);
    ASSERT_TRUE(credential) << credential.error().message();
    WriteFile(Path(alg + "-cred.in"), ToolsCredentialFile(*credential));
    const auto activated = Activate(alg, alg + "-ak", alg + "-cred.in", alg + "-secret.out");
    ASSERT_EQ(activated.exit_code, 0) << activated.output;
    EXPECT_EQ(HexEncode(ReadBytes(Path(alg + "-secret.out"))), HexEncode(*secret));
  }
}

TEST_F(CredentialActivation, ToolsCredentialAndOursHaveTheSameLayout) {
  for (const std::string alg : {"ecc", "rsa"}) {
    SCOPED_TRACE(alg);
    const Bytes ek_public = CreateEk(alg);
    const Bytes ak_name = CreateAk(alg, alg + "-ak");
    const Bytes secret(20, 0x5a);  // shorter than a digest: the size travels encrypted
    WriteFile(Path("secret.bin"), secret);

    const auto made =
        RunProcess({"tpm2_makecredential", "--tcti", "none", "-u", Path(alg + "-ek.pub"), "-s",
                    Path("secret.bin"), "-n", HexEncode(ak_name), "-o", Path(alg + "-tools.out")});
    ASSERT_EQ(made.exit_code, 0) << made.output;
    const Bytes tools_file = ReadBytes(Path(alg + "-tools.out"));
    auto credential = MakeCredential(ek_public, ak_name, secret);
    ASSERT_TRUE(credential) << credential.error().message();
    const Bytes our_file = ToolsCredentialFile(*credential);

    const CredentialFile tools = ParseCredentialFile(tools_file);
    const CredentialFile ours = ParseCredentialFile(our_file);
    EXPECT_EQ(ours.id_object.size, tools.id_object.size);
    EXPECT_EQ(ours.integrity_hmac.size, 32);
    EXPECT_EQ(tools.integrity_hmac.size, 32);
    // encIdentity: the encrypted TPM2B_DIGEST, its size field included.
    EXPECT_EQ(ours.enc_identity_size, 2 + secret.size());
    EXPECT_EQ(tools.enc_identity_size, 2 + secret.size());
    if (alg == "rsa") {
      EXPECT_EQ(ours.encrypted_secret.size, 256);
      EXPECT_EQ(tools.encrypted_secret.size, 256);
      EXPECT_EQ(our_file.size(), tools_file.size());
    } else {
      // The ephemeral point QeU. tpm2-tools writes its coordinates without leading zero bytes (1
      // in 128 points has one), so only ours is always 32 + 32 bytes.
      const TPMS_ECC_POINT our_point = EphemeralPoint(ours.encrypted_secret);
      const TPMS_ECC_POINT tools_point = EphemeralPoint(tools.encrypted_secret);
      EXPECT_EQ(our_point.x.size, 32);
      EXPECT_EQ(our_point.y.size, 32);
      EXPECT_GT(tools_point.x.size, 0);
      EXPECT_LE(tools_point.x.size, 32);
      EXPECT_GT(tools_point.y.size, 0);
      EXPECT_LE(tools_point.y.size, 32);
    }

    // Both files are what tpm2_activatecredential takes, and give back the same secret.
    const auto tools_activated = Activate(alg, alg + "-ak", alg + "-tools.out", "tools-secret.out");
    ASSERT_EQ(tools_activated.exit_code, 0) << tools_activated.output;
    EXPECT_EQ(HexEncode(ReadBytes(Path("tools-secret.out"))), HexEncode(secret));
    WriteFile(Path(alg + "-ours.in"), our_file);
    const auto ours_activated = Activate(alg, alg + "-ak", alg + "-ours.in", "our-secret.out");
    ASSERT_EQ(ours_activated.exit_code, 0) << ours_activated.output;
    EXPECT_EQ(HexEncode(ReadBytes(Path("our-secret.out"))), HexEncode(secret));
  }
}

// The attack: a device asks for a credential naming one key (say, a software key it controls, or
// another device's AK) and tries to activate it with another key its TPM holds. The TPM refuses
// because the outer HMAC covers the Name; the same credential activates for the key it names.
TEST_F(CredentialActivation, CredentialForAnotherObjectNameDoesNotActivate) {
  const Bytes ek_public = CreateEk("ecc");
  const Bytes ak_name = CreateAk("ecc", "ak");
  const Bytes other_name = CreateAk("ecc", "other-ak");
  ASSERT_NE(HexEncode(ak_name), HexEncode(other_name));
  const Bytes secret(32, 0x3c);

  auto credential = MakeCredential(ek_public, other_name, secret);
  ASSERT_TRUE(credential) << credential.error().message();
  WriteFile(Path("cred.in"), ToolsCredentialFile(*credential));
  const auto refused = Activate("ecc", "ak", "cred.in", "refused.out");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("integrity check failed"), std::string::npos) << refused.output;
  EXPECT_FALSE(std::filesystem::exists(Path("refused.out")));

  const auto activated = Activate("ecc", "other-ak", "cred.in", "secret.out");
  ASSERT_EQ(activated.exit_code, 0) << activated.output;
  EXPECT_EQ(HexEncode(ReadBytes(Path("secret.out"))), HexEncode(secret));
}

// Expects MakeCredential to refuse `ek_public` as invalid, with `reason` in the message.
void ExpectRefused(ByteView ek_public, ByteView name, const std::string& reason) {
  auto credential = MakeCredential(ek_public, name, Bytes(32, 1));
  ASSERT_FALSE(credential) << "accepted an EK public area that " << reason;
  EXPECT_EQ(credential.error().code(), RotErrc::kInvalidArgument);
  EXPECT_NE(credential.error().message().find(reason), std::string::npos)
      << credential.error().message();
}

TEST_F(CredentialActivation, MalformedOrUnsupportedEkPublicIsRefused) {
  const Bytes ecc_ek = CreateEk("ecc");
  const Bytes rsa_ek = CreateEk("rsa");
  const Bytes name = CreateAk("ecc", "ak");
  const Bytes secret(32, 7);
  // The positive twins: both EKs as the TPM gave them, and as marshaled again unchanged.
  for (const Bytes& ek : {ecc_ek, rsa_ek}) {
    EXPECT_TRUE(MakeCredential(ek, name, secret));
    EXPECT_EQ(HexEncode(Mutated(ek, [](TPMT_PUBLIC&) {})), HexEncode(ek));
  }

  for (const Bytes& ek : {ecc_ek, rsa_ek}) {
    for (std::size_t size = 0; size < ek.size(); ++size) {
      const ByteView truncated = ByteView(ek).first(size);
      EXPECT_FALSE(MakeCredential(truncated, name, secret)) << size;
      EXPECT_FALSE(ObjectName(truncated)) << size;
    }
    Bytes trailing = ek;
    trailing.push_back(0);
    ExpectRefused(trailing, name, "trailing bytes after its TPM2B_PUBLIC");
    EXPECT_FALSE(ObjectName(trailing));
  }
  ExpectRefused(ByteView(ecc_ek).first(ecc_ek.size() - 1), name, "is truncated");

  // Real EKs of the TCG's other templates: P-384 and RSA 3072, both with SHA-384 names.
  ExpectRefused(CreateEk("ecc384"), name, "only SHA-256 (0x000b) EKs");
  ExpectRefused(CreateEk("rsa3072"), name, "only SHA-256 (0x000b) EKs");

  // Each check on its own, on otherwise acceptable EKs.
  ExpectRefused(
      Mutated(ecc_ek, [](TPMT_PUBLIC& p) { p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384; }),
      name, "only NIST P-256");
  ExpectRefused(Mutated(rsa_ek, [](TPMT_PUBLIC& p) { p.parameters.rsaDetail.keyBits = 3072; }),
                name, "only RSA 2048");
  for (const TPMI_ALG_HASH alg : {TPM2_ALG_SHA1, TPM2_ALG_SHA384}) {
    ExpectRefused(Mutated(ecc_ek, [alg](TPMT_PUBLIC& p) { p.nameAlg = alg; }), name,
                  "only SHA-256");
  }
  ExpectRefused(
      Mutated(ecc_ek, [](TPMT_PUBLIC& p) { p.parameters.eccDetail.symmetric.keyBits.aes = 256; }),
      name, "only AES-128-CFB");
  ExpectRefused(
      Mutated(rsa_ek,
              [](TPMT_PUBLIC& p) { p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CTR; }),
      name, "only AES-128-CFB");
  ExpectRefused(Mutated(ecc_ek,
                        [](TPMT_PUBLIC& p) {
                          p.objectAttributes = (p.objectAttributes & ~TPMA_OBJECT_DECRYPT) |
                                               TPMA_OBJECT_SIGN_ENCRYPT;
                        }),
                name, "not those of a restricted decryption key");
  ExpectRefused(Mutated(ecc_ek, [](TPMT_PUBLIC& p) { p.unique.ecc.y.buffer[31] ^= 1; }), name,
                "not on NIST P-256");
  ExpectRefused(Mutated(rsa_ek, [](TPMT_PUBLIC& p) { p.unique.rsa.buffer[255] &= 0xfe; }), name,
                "not a valid RSA key");
  ExpectRefused(Mutated(rsa_ek, [](TPMT_PUBLIC& p) { p.unique.rsa.buffer[0] = 0x7f; }), name,
                "shorter than 2048 bits");

  // The other inputs.
  auto long_secret = MakeCredential(ecc_ek, name, Bytes(33, 1));
  ASSERT_FALSE(long_secret);
  EXPECT_EQ(long_secret.error().code(), RotErrc::kInvalidArgument);
  EXPECT_FALSE(MakeCredential(ecc_ek, name, Bytes{}));
  Bytes sha1_name = {0x00, 0x04};
  sha1_name.resize(22);
  for (const Bytes& bad_name :
       {Bytes{}, Bytes{0x00, 0x0b}, Bytes(name.begin(), name.end() - 1), sha1_name}) {
    auto refused = MakeCredential(ecc_ek, bad_name, secret);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), RotErrc::kInvalidArgument);
  }
}

}  // namespace
}  // namespace aspis::rot
