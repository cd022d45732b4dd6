// Keys held by a real TPM (swtpm behind tpm2-abrmd) through the tpm2-openssl provider.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include <openssl/asn1.h>
#include <openssl/pem.h>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "crypto/errors.hpp"
#include "crypto/tpm_key.hpp"
#include "crypto/x509.hpp"
#include "device/daemon/credentials.hpp"
#include "support/process.hpp"
#include "support/swtpm.hpp"
#include "support/tabrmd.hpp"
#include "support/temp_dir.hpp"

namespace aspis {
namespace {

// The public and private halves (marshaled TPM2B_PUBLIC and TPM2B_PRIVATE) of a "TSS2 PRIVATE
// KEY" PEM: SEQUENCE { type, [0] emptyAuth OPTIONAL, parent, pubkey OCTET STRING, privkey OCTET
// STRING }. Empty halves when the PEM is not one.
std::pair<Bytes, Bytes> TssKeyParts(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* der = nullptr;
  long length = 0;
  std::pair<Bytes, Bytes> parts;
  if (PEM_read_bio(bio, &name, &header, &der, &length) == 1) {
    const unsigned char* cursor = der;
    ASN1_SEQUENCE_ANY* fields = d2i_ASN1_SEQUENCE_ANY(nullptr, &cursor, length);
    const int count = fields != nullptr ? sk_ASN1_TYPE_num(fields) : 0;
    auto octets = [&](int i) {
      const ASN1_TYPE* field = sk_ASN1_TYPE_value(fields, i);
      if (field->type != V_ASN1_OCTET_STRING) return Bytes();
      const ASN1_OCTET_STRING* s = field->value.octet_string;
      return Bytes(s->data, s->data + s->length);
    };
    if (count >= 4) parts = {octets(count - 2), octets(count - 1)};
    sk_ASN1_TYPE_pop_free(fields, ASN1_TYPE_free);
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(der);
  BIO_free(bio);
  return parts;
}

class TpmKey : public ::testing::Test {
 protected:
  crypto::TpmKeyStore Store() const {
    auto store = crypto::TpmKeyStore::Open(tpm_.Tcti());
    if (!store) throw std::runtime_error(store.error().message());
    return *store;
  }

  testing::Tabrmd tpm_;
};

TEST_F(TpmKey, GeneratedKeySignsInTheTpmAndVerifiesWithItsPublicKey) {
  auto key = Store().Generate();
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_TRUE(key->tpm_held());
  const ByteView data = AsBytes(std::string_view("check-in"));
  auto signature = key->Sign(data);
  ASSERT_TRUE(signature) << signature.error().message();
  EXPECT_TRUE(key->Public().Verify(data, *signature).valid());
  EXPECT_FALSE(key->Public().Verify(AsBytes(std::string_view("other")), *signature).valid());
}

TEST_F(TpmKey, StoredFormIsTheTpmWrappedBlobAndLoadsBackToTheSameKey) {
  const auto store = Store();
  auto key = store.Generate();
  ASSERT_TRUE(key) << key.error().message();
  auto pem = key->ToPem();
  ASSERT_TRUE(pem) << pem.error().message();
  EXPECT_TRUE(pem->starts_with("-----BEGIN TSS2 PRIVATE KEY-----")) << *pem;
  auto again = store.Load(*pem);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->Public(), key->Public());
  const ByteView data = AsBytes(std::string_view("renewal"));
  auto signature = again->Sign(data);
  ASSERT_TRUE(signature) << signature.error().message();
  EXPECT_TRUE(key->Public().Verify(data, *signature).valid());
}

TEST_F(TpmKey, CertificateRequestIsSignedByTheTpmKey) {
  auto key = Store().Generate();
  ASSERT_TRUE(key) << key.error().message();
  auto request = crypto::CertificateRequest::Create(*key, "runtime");
  ASSERT_TRUE(request) << request.error().message();
  EXPECT_TRUE(request->VerifySignature().valid());
  EXPECT_EQ(request->SubjectPublicKey(), key->Public());
}

TEST_F(TpmKey, KeyCloningAttackBlobCopiedToAnotherDeviceDoesNotLoad) {
  auto key = Store().Generate();
  ASSERT_TRUE(key) << key.error().message();
  auto pem = key->ToPem();
  ASSERT_TRUE(pem) << pem.error().message();
  testing::Swtpm other_device;
  // The other TPM is reached directly: this process holds no other connection to it.
  auto other = crypto::TpmKeyStore::Open(other_device.Tcti());
  ASSERT_TRUE(other) << other.error().message();
  auto stolen = other->Load(*pem);
  ASSERT_FALSE(stolen);
  // tpm2-openssl reports only that the TPM could not load it...
  EXPECT_NE(stolen.error().message().find("not a key this TPM can load"), std::string::npos)
      << stolen.error().message();
  // ...so the blob's two halves go to the other TPM's TPM2_Load by hand, under a storage key of
  // that TPM: the private half's integrity HMAC, keyed from a parent seed that only the first TPM
  // has, does not verify (TPM_RC_INTEGRITY for parameter 1, the private area: 0x1df).
  const auto [public_area, private_area] = TssKeyParts(*pem);
  ASSERT_FALSE(public_area.empty());
  testing::TempDir dir;
  ASSERT_TRUE(file::WriteDurably(dir / "key.pub", public_area, 0600));
  ASSERT_TRUE(file::WriteDurably(dir / "key.priv", private_area, 0600));
  auto tool = [&](const std::vector<std::string>& argv) {
    return testing::RunProcess(argv, {{"TPM2TOOLS_TCTI", other_device.Tcti()}});
  };
  const auto parent = tool({"tpm2_createprimary", "-C", "o", "-c", (dir / "parent.ctx").string()});
  ASSERT_EQ(parent.exit_code, 0) << parent.output;
  const auto loaded =
      tool({"tpm2_load", "-C", (dir / "parent.ctx").string(), "-u", (dir / "key.pub").string(),
            "-r", (dir / "key.priv").string(), "-c", (dir / "key.ctx").string()});
  EXPECT_NE(loaded.exit_code, 0);
  EXPECT_NE(loaded.output.find("(0x1DF) - tpm:parameter(1):integrity check failed"),
            std::string::npos)
      << loaded.output;
  EXPECT_TRUE(Store().Load(*pem)) << "the same blob loads on its own TPM";
}

TEST_F(TpmKey, SoftwareKeyPassedOffAsTpmKeyIsRefused) {
  const auto software = *crypto::PrivateKey::GenerateP256();
  auto loaded = Store().Load(*software.ToPem());
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code(), crypto::CryptoErrc::kUnsupportedKey);
  EXPECT_FALSE(
      Store().Load("-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n-----END TSS2 PRIVATE KEY-----\n"));
}

TEST_F(TpmKey, RuntimeKeyMovesIntoTheTpmAndTheSoftwareOneIsDeleted) {
  using namespace std::chrono_literals;
  testing::TempDir state;
  auto software = device::Credentials::Open(state.path());
  ASSERT_TRUE(software) << software.error().message();
  ASSERT_TRUE(std::filesystem::exists(state / "runtime.key"));
  const auto old_cert = crypto::CreateSelfSigned(
      software->runtime_key(),
      {.common_name = "old", .not_before = std::chrono::system_clock::now(), .lifetime = 24h});
  ASSERT_TRUE(old_cert);
  ASSERT_TRUE(
      file::WriteDurably(state / "runtime-certificate.pem", AsBytes(*old_cert->ToPem()), 0644));

  const auto store = Store();
  auto tpm = device::Credentials::Open(state.path(), &store);
  ASSERT_TRUE(tpm) << tpm.error().message();
  EXPECT_TRUE(tpm->runtime_key().tpm_held());
  EXPECT_FALSE(std::filesystem::exists(state / "runtime.key"));
  // The stored certificate was for the software key: unusable now, so the device re-attests.
  EXPECT_FALSE(tpm->runtime_certificate());
  EXPECT_TRUE(tpm->runtime_chain().empty());
  EXPECT_FALSE(tpm->app_key().tpm_held());
  EXPECT_EQ(tpm->app_key().Public(), software->app_key().Public());

  auto again = device::Credentials::Open(state.path(), &store);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->runtime_key().Public(), tpm->runtime_key().Public());
}

TEST_F(TpmKey, EmptyTctiIsRefusedRatherThanSearchingForATpm) {
  auto store = crypto::TpmKeyStore::Open("");
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), crypto::CryptoErrc::kInvalidArgument);
}

TEST_F(TpmKey, UnreachableTpmIsAnErrorNotAHang) {
  auto store =
      crypto::TpmKeyStore::Open("swtpm:host=127.0.0.1,port=" + std::to_string(testing::FreePort()));
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message().find("tpm2 provider"), std::string::npos)
      << store.error().message();
}

}  // namespace
}  // namespace aspis
