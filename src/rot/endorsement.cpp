#include "rot/endorsement.hpp"

#include <openssl/asn1.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include <cstring>

#include "rot/errors.hpp"
#include "rot/tpm2b.hpp"

namespace aspis::rot {

namespace {

// PolicySecret(TPM_RH_ENDORSEMENT): the authPolicy of the default EK templates.
constexpr std::uint8_t kEkPolicy[] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

TPM2B_PUBLIC EkTemplateStruct(EkKind kind) {
  TPM2B_PUBLIC in{};
  TPMT_PUBLIC& p = in.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  SetTpm2b(p.authPolicy, kEkPolicy);
  if (kind == EkKind::kRsa2048) {
    p.type = TPM2_ALG_RSA;
    auto& rsa = p.parameters.rsaDetail;
    rsa.symmetric.algorithm = TPM2_ALG_AES;
    rsa.symmetric.keyBits.aes = 128;
    rsa.symmetric.mode.aes = TPM2_ALG_CFB;
    rsa.scheme.scheme = TPM2_ALG_NULL;
    rsa.keyBits = 2048;
    rsa.exponent = 0;
    p.unique.rsa.size = 256;
  } else {
    p.type = TPM2_ALG_ECC;
    auto& ecc = p.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_AES;
    ecc.symmetric.keyBits.aes = 128;
    ecc.symmetric.mode.aes = TPM2_ALG_CFB;
    ecc.scheme.scheme = TPM2_ALG_NULL;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = 32;
    p.unique.ecc.y.size = 32;
  }
  return in;
}

TPM2B_PUBLIC IdentityTemplateStruct() {
  TPM2B_PUBLIC in{};
  TPMT_PUBLIC& p = in.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  auto& ecc = p.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_NULL;
  ecc.scheme.scheme = TPM2_ALG_ECDSA;
  ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  return in;
}

Expected<TPM2B_PUBLIC> Unmarshal(ByteView bytes, std::string_view what) {
  auto area = UnmarshalPublic(bytes, what);
  if (!area) return std::unexpected(area.error());
  TPM2B_PUBLIC pub{};
  pub.publicArea = *area;
  return pub;
}

// Whether `pub` is `want` in everything but the unique field (the key itself).
bool SameTemplate(TPM2B_PUBLIC pub, TPM2B_PUBLIC want) {
  pub.publicArea.unique = {};
  want.publicArea.unique = {};
  pub.size = 0;
  want.size = 0;
  auto a = MarshalTpm(pub, Tss2_MU_TPM2B_PUBLIC_Marshal, "a public area");
  auto b = MarshalTpm(want, Tss2_MU_TPM2B_PUBLIC_Marshal, "a public area");
  return a && b && *a == *b;
}

// The DER SubjectPublicKeyInfo of a TPM key.
Expected<Bytes> Spki(const TPMT_PUBLIC& p) {
  if (p.type == TPM2_ALG_RSA) {
    const std::uint32_t exponent = p.parameters.rsaDetail.exponent;
    return crypto::RsaPublicKeySpki(ByteView(p.unique.rsa.buffer, p.unique.rsa.size),
                                    exponent == 0 ? 65537 : exponent);
  }
  auto key = crypto::PublicKey::FromEcPoint(ByteView(p.unique.ecc.x.buffer, p.unique.ecc.x.size),
                                            ByteView(p.unique.ecc.y.buffer, p.unique.ecc.y.size));
  if (!key) return std::unexpected(key.error());
  return key->Der();
}

}  // namespace

Expected<Bytes> EkTemplate(EkKind kind) {
  return MarshalTpm(EkTemplateStruct(kind), Tss2_MU_TPM2B_PUBLIC_Marshal, "the EK template");
}

Expected<Bytes> IdentityTemplate() {
  return MarshalTpm(IdentityTemplateStruct(), Tss2_MU_TPM2B_PUBLIC_Marshal,
                    "the identity key template");
}

Verdict CheckEndorsement(const crypto::ForeignCertificate& ek_certificate, const Endorsement& e,
                         const crypto::PublicKey& identity) {
  auto ek = Unmarshal(e.ek_public, "the EK public area");
  if (!ek) return Verdict::Invalid(ek.error().message());
  if (!SameTemplate(*ek, EkTemplateStruct(EkKind::kRsa2048)) &&
      !SameTemplate(*ek, EkTemplateStruct(EkKind::kEccP256))) {
    return Verdict::Invalid(
        "the EK is not made from a default EK template (RSA 2048 or ECC NIST P-256)");
  }
  auto ek_spki = Spki(ek->publicArea);
  if (!ek_spki) return Verdict::Invalid("the EK public area holds no usable key");
  auto certified = ek_certificate.SubjectPublicKeyInfo();
  if (!certified) return Verdict::CouldNotCheck(certified.error().message());
  auto same = crypto::SamePublicKey(*ek_spki, *certified);
  if (!same) return Verdict::Invalid("the EK certificate's key is unreadable");
  if (!*same) return Verdict::Invalid("the EK certificate certifies another key than the EK");

  auto id = Unmarshal(e.identity_public, "the identity key's public area");
  if (!id) return Verdict::Invalid(id.error().message());
  if (!SameTemplate(*id, IdentityTemplateStruct())) {
    return Verdict::Invalid(
        "the identity key's public area is not an Aspis identity key (a restricted signing key "
        "that never leaves the TPM)");
  }
  auto id_spki = Spki(id->publicArea);
  if (!id_spki || *id_spki != identity.Der()) {
    return Verdict::Invalid("the identity key's public area holds another key than the evidence");
  }
  return Verdict::Valid();
}

Expected<Bytes> LeadingDer(ByteView bytes) {
  const unsigned char* p = bytes.data();
  long length = 0;
  int tag = 0;
  int xclass = 0;
  const int info = ASN1_get_object(&p, &length, &tag, &xclass, static_cast<long>(bytes.size()));
  if ((info & 0x80) != 0 || info != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE) {
    return Fail(RotErrc::kInvalidArgument, "the EK certificate NV index holds no DER certificate");
  }
  const auto header = static_cast<std::size_t>(p - bytes.data());
  return Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header + length));
}

}  // namespace aspis::rot
