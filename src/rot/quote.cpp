#include "rot/quote.hpp"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include <bit>
#include <cstring>

#include "crypto/encoding.hpp"
#include "rot/errors.hpp"
#include "rot/tpm2b.hpp"

namespace aspis::rot {

namespace {

constexpr std::uint32_t kMaxRegister = 23;
constexpr std::size_t kDigestSize = std::tuple_size_v<crypto::Digest>;

Expected<TPMS_ATTEST> UnmarshalAttest(ByteView bytes) {
  TPMS_ATTEST attest{};
  std::size_t offset = 0;
  if (Tss2_MU_TPMS_ATTEST_Unmarshal(bytes.data(), bytes.size(), &offset, &attest) !=
      TSS2_RC_SUCCESS) {
    return Fail(RotErrc::kInvalidArgument, "not a TPMS_ATTEST structure");
  }
  if (offset != bytes.size()) {
    return Fail(RotErrc::kInvalidArgument, "attestation structure has trailing bytes");
  }
  return attest;
}

Expected<Bytes> SignatureToDer(ByteView bytes) {
  TPMT_SIGNATURE sig{};
  std::size_t offset = 0;
  if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(bytes.data(), bytes.size(), &offset, &sig) !=
          TSS2_RC_SUCCESS ||
      offset != bytes.size()) {
    return Fail(RotErrc::kInvalidArgument, "signature is not a TPMT_SIGNATURE structure");
  }
  if (sig.sigAlg != TPM2_ALG_ECDSA || sig.signature.ecdsa.hash != TPM2_ALG_SHA256) {
    return Fail(RotErrc::kInvalidArgument, "signature is not ECDSA with SHA-256");
  }
  const auto& r = sig.signature.ecdsa.signatureR;
  const auto& s = sig.signature.ecdsa.signatureS;
  return crypto::EcdsaRsToDer(ByteView(r.buffer, r.size), ByteView(s.buffer, s.size));
}

std::string MaskName(std::uint32_t mask) {
  std::string out;
  for (std::uint32_t i = 0; i <= kMaxRegister; ++i) {
    if ((mask & (1u << i)) == 0) continue;
    out += (out.empty() ? "" : ",") + std::to_string(i);
  }
  return out.empty() ? "none" : out;
}

}  // namespace

std::uint32_t NvPcrAttributes() {
  return TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA | TPMA_NV_POLICY_DELETE |
         TPMA_NV_PLATFORMCREATE | TPMA_NV_CLEAR_STCLEAR |
         (static_cast<std::uint32_t>(TPM2_NT_EXTEND) << TPMA_NV_TPM2_NT_SHIFT);
}

Expected<crypto::Digest> NvPcrPolicy() {
  // PolicyCommandCode extends a zero policy digest: SHA-256(zeros || TPM_CC_PolicyCommandCode ||
  // the command code), each code big-endian.
  Bytes input(kDigestSize, 0);
  for (const std::uint32_t code : {TPM2_CC_PolicyCommandCode, TPM2_CC_NV_UndefineSpaceSpecial}) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      input.push_back(static_cast<std::uint8_t>(code >> shift));
    }
  }
  return crypto::Sha256Of(input);
}

Expected<Bytes> NvPcrName() {
  TPMS_NV_PUBLIC pub{};
  pub.nvIndex = kNvPcrIndex;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.attributes = NvPcrAttributes() | TPMA_NV_WRITTEN;
  auto policy = NvPcrPolicy();
  if (!policy) return std::unexpected(policy.error());
  SetTpm2b(pub.authPolicy, *policy);
  pub.dataSize = kDigestSize;
  auto marshaled = MarshalTpm(pub, Tss2_MU_TPMS_NV_PUBLIC_Marshal, "the NvPCR's public area");
  if (!marshaled) return marshaled;
  auto digest = crypto::Sha256Of(*marshaled);
  if (!digest) return std::unexpected(digest.error());
  Bytes name = {TPM2_ALG_SHA256 >> 8, TPM2_ALG_SHA256 & 0xff};
  name.insert(name.end(), digest->begin(), digest->end());
  return name;
}

std::uint32_t BootPcrMask() {
  std::uint32_t mask = 0;
  for (const std::uint32_t pcr : kBootPcrs) mask |= 1u << pcr;
  return mask;
}

Expected<AttestBody> ParseAttest(ByteView bytes) {
  auto attest = UnmarshalAttest(bytes);
  if (!attest) return std::unexpected(attest.error());
  if (attest->magic != TPM2_GENERATED_VALUE) {
    return Fail(RotErrc::kInvalidArgument,
                "attestation structure lacks the TPM_GENERATED magic value");
  }
  AttestBody body;
  body.type = attest->type;
  const TPM2B_DATA& extra = attest->extraData;
  body.qualifying_data.assign(extra.buffer, extra.buffer + extra.size);
  if (attest->type == TPM2_ST_ATTEST_NV) {
    const TPMS_NV_CERTIFY_INFO& nv = attest->attested.nv;
    body.nv_name.assign(nv.indexName.name, nv.indexName.name + nv.indexName.size);
    body.nv_offset = nv.offset;
    body.nv_contents.assign(nv.nvContents.buffer, nv.nvContents.buffer + nv.nvContents.size);
    return body;
  }
  if (attest->type != TPM2_ST_ATTEST_QUOTE) {
    return Fail(RotErrc::kInvalidArgument,
                "attestation structure is neither a quote nor an NV certification");
  }
  const TPML_PCR_SELECTION& selection = attest->attested.quote.pcrSelect;
  if (selection.count != 1) {
    return Fail(RotErrc::kInvalidArgument, "quote must select exactly one register bank, selects " +
                                               std::to_string(selection.count));
  }
  const TPMS_PCR_SELECTION& bank = selection.pcrSelections[0];
  body.hash_alg = bank.hash;
  for (std::uint32_t i = 0; i < bank.sizeofSelect && i < sizeof bank.pcrSelect; ++i) {
    if (i * 8 > kMaxRegister) {
      if (bank.pcrSelect[i] != 0) {
        return Fail(RotErrc::kInvalidArgument, "quote selects a register above 23");
      }
      continue;
    }
    body.register_mask |= static_cast<std::uint32_t>(bank.pcrSelect[i]) << (i * 8);
  }
  const TPM2B_DIGEST& digest = attest->attested.quote.pcrDigest;
  body.register_digest.assign(digest.buffer, digest.buffer + digest.size);
  return body;
}

Verdict VerifySignedAttest(const Quote& signed_attest, const crypto::PublicKey& identity,
                           std::uint16_t type, ByteView qualifying_data, AttestBody* body) {
  const std::string_view what = type == kAttestNv ? "NV certification" : "quote";
  auto der = SignatureToDer(signed_attest.signature);
  if (!der) return Verdict::Invalid(std::string(what) + ": " + der.error().message());
  // The signature is checked before any field is believed.
  Verdict signature = identity.Verify(signed_attest.attest, *der);
  if (!signature.valid()) {
    if (signature.outcome() == Verdict::Outcome::kCouldNotCheck) return signature;
    return Verdict::Invalid(std::string(what) +
                            " signature does not verify with the device's identity key");
  }
  auto parsed = ParseAttest(signed_attest.attest);
  if (!parsed) return Verdict::Invalid(std::string(what) + ": " + parsed.error().message());
  if (parsed->type != type) {
    return Verdict::Invalid(std::string(what) + " is a signed structure of another type");
  }
  if (!crypto::ConstantTimeEquals(parsed->qualifying_data, qualifying_data)) {
    return Verdict::Invalid(std::string(what) + " qualifying data does not match the challenge (" +
                            HexEncode(parsed->qualifying_data).substr(0, 16) + "... instead of " +
                            HexEncode(qualifying_data).substr(0, 16) + "...)");
  }
  *body = std::move(*parsed);
  return Verdict::Valid();
}

Verdict CheckQuoteCovers(const AttestBody& quote, std::uint32_t register_mask,
                         std::span<const crypto::Digest> values) {
  if (quote.hash_alg != TPM2_ALG_SHA256) {
    return Verdict::Invalid("quote covers a register bank other than SHA-256");
  }
  if (quote.register_mask != register_mask) {
    return Verdict::Invalid("quote covers PCRs " + MaskName(quote.register_mask) +
                            ", but the verifier requires exactly " + MaskName(register_mask));
  }
  if (static_cast<std::size_t>(std::popcount(register_mask)) != values.size()) {
    return Verdict::Invalid("the evidence gives " + std::to_string(values.size()) +
                            " PCR values for the " + std::to_string(std::popcount(register_mask)) +
                            " PCRs quoted");
  }
  Bytes joined;
  for (const auto& value : values) joined.insert(joined.end(), value.begin(), value.end());
  auto digest = crypto::Sha256Of(joined);
  if (!digest) return Verdict::CouldNotCheck(digest.error().message());
  if (!crypto::ConstantTimeEquals(quote.register_digest, *digest)) {
    return Verdict::Invalid("the quoted PCR values differ from those in the evidence");
  }
  return Verdict::Valid();
}

Verdict CheckNvCertifies(const AttestBody& certification, ByteView nv_name,
                         const crypto::Digest& contents) {
  if (!crypto::ConstantTimeEquals(certification.nv_name, nv_name)) {
    return Verdict::Invalid(
        "the NV certification is of another index than the Aspis NvPCR (0x01d10300, extend, "
        "platform-created, policy-delete)");
  }
  if (certification.nv_offset != 0 || certification.nv_contents.size() != contents.size()) {
    return Verdict::Invalid("the NV certification does not cover the whole NvPCR");
  }
  if (!crypto::ConstantTimeEquals(certification.nv_contents, contents)) {
    return Verdict::Invalid("the certified NvPCR value differs from the event log's replay " +
                            HexEncode(contents).substr(0, 16) + "...");
  }
  return Verdict::Valid();
}

Verdict VerifyQuote(const Quote& quote, const crypto::PublicKey& identity,
                    const QuoteExpectation& expected) {
  AttestBody body;
  if (Verdict signed_ok =
          VerifySignedAttest(quote, identity, kAttestQuote, expected.qualifying_data, &body);
      !signed_ok.valid()) {
    return signed_ok;
  }
  return CheckQuoteCovers(body, expected.register_mask, expected.values);
}

Expected<Bytes> MarshalQuoteAttest(const crypto::PublicKey& signer, ByteView qualifying_data,
                                   std::uint32_t register_index,
                                   const crypto::Digest& register_value, std::uint64_t clock_ms) {
  if (qualifying_data.size() > kMaxQualifyingData) {
    return Fail(RotErrc::kInvalidArgument, "qualifying data is longer than 64 bytes");
  }
  if (register_index > kMaxRegister) {
    return Fail(RotErrc::kInvalidArgument, "register index is above 23");
  }
  auto value_digest = crypto::Sha256Of(register_value);
  auto signer_hash = crypto::Sha256Of(signer.Der());
  if (!value_digest) return std::unexpected(value_digest.error());
  if (!signer_hash) return std::unexpected(signer_hash.error());

  TPMS_ATTEST attest{};
  attest.magic = TPM2_GENERATED_VALUE;
  attest.type = TPM2_ST_ATTEST_QUOTE;
  // A name in the TPM's form (hash algorithm || digest); here of the key's DER encoding.
  attest.qualifiedSigner.size = static_cast<UINT16>(2 + signer_hash->size());
  attest.qualifiedSigner.name[0] = TPM2_ALG_SHA256 >> 8;
  attest.qualifiedSigner.name[1] = TPM2_ALG_SHA256 & 0xff;
  std::memcpy(attest.qualifiedSigner.name + 2, signer_hash->data(), signer_hash->size());
  SetTpm2b(attest.extraData, qualifying_data);
  attest.clockInfo.clock = clock_ms;
  attest.clockInfo.safe = TPM2_YES;
  TPMS_PCR_SELECTION& bank = attest.attested.quote.pcrSelect.pcrSelections[0];
  attest.attested.quote.pcrSelect.count = 1;
  bank.hash = TPM2_ALG_SHA256;
  bank.sizeofSelect = 3;
  bank.pcrSelect[register_index / 8] = static_cast<BYTE>(1u << (register_index % 8));
  SetTpm2b(attest.attested.quote.pcrDigest, *value_digest);

  return MarshalTpm(attest, Tss2_MU_TPMS_ATTEST_Marshal, "quote");
}

Expected<Bytes> MarshalEcdsaSignature(ByteView der_signature) {
  auto rs = crypto::EcdsaDerToRs(der_signature);
  if (!rs) return std::unexpected(rs.error());
  TPMT_SIGNATURE sig{};
  sig.sigAlg = TPM2_ALG_ECDSA;
  sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
  SetTpm2b(sig.signature.ecdsa.signatureR, rs->r);
  SetTpm2b(sig.signature.ecdsa.signatureS, rs->s);
  return MarshalTpm(sig, Tss2_MU_TPMT_SIGNATURE_Marshal, "signature");
}

}  // namespace aspis::rot
