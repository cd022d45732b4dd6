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

Expected<TPMS_ATTEST> UnmarshalAttest(ByteView bytes) {
  TPMS_ATTEST attest{};
  std::size_t offset = 0;
  if (Tss2_MU_TPMS_ATTEST_Unmarshal(bytes.data(), bytes.size(), &offset, &attest) !=
      TSS2_RC_SUCCESS) {
    return Fail(RotErrc::kInvalidArgument, "quote is not a TPMS_ATTEST structure");
  }
  if (offset != bytes.size()) return Fail(RotErrc::kInvalidArgument, "quote has trailing bytes");
  return attest;
}

Expected<Bytes> SignatureToDer(ByteView bytes) {
  TPMT_SIGNATURE sig{};
  std::size_t offset = 0;
  if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(bytes.data(), bytes.size(), &offset, &sig) !=
          TSS2_RC_SUCCESS ||
      offset != bytes.size()) {
    return Fail(RotErrc::kInvalidArgument, "quote signature is not a TPMT_SIGNATURE structure");
  }
  if (sig.sigAlg != TPM2_ALG_ECDSA || sig.signature.ecdsa.hash != TPM2_ALG_SHA256) {
    return Fail(RotErrc::kInvalidArgument, "quote signature is not ECDSA with SHA-256");
  }
  const auto& r = sig.signature.ecdsa.signatureR;
  const auto& s = sig.signature.ecdsa.signatureS;
  return crypto::EcdsaRsToDer(ByteView(r.buffer, r.size), ByteView(s.buffer, s.size));
}

}  // namespace

Expected<QuoteBody> ParseQuoteBody(ByteView bytes) {
  auto attest = UnmarshalAttest(bytes);
  if (!attest) return std::unexpected(attest.error());
  if (attest->magic != TPM2_GENERATED_VALUE) {
    return Fail(RotErrc::kInvalidArgument, "quote lacks the TPM_GENERATED magic value");
  }
  if (attest->type != TPM2_ST_ATTEST_QUOTE) {
    return Fail(RotErrc::kInvalidArgument, "attestation structure is not a quote");
  }
  const TPML_PCR_SELECTION& selection = attest->attested.quote.pcrSelect;
  if (selection.count != 1) {
    return Fail(RotErrc::kInvalidArgument, "quote must select exactly one register bank, selects " +
                                               std::to_string(selection.count));
  }
  const TPMS_PCR_SELECTION& bank = selection.pcrSelections[0];
  QuoteBody body;
  body.hash_alg = bank.hash;
  for (std::uint32_t i = 0; i < bank.sizeofSelect && i < sizeof bank.pcrSelect; ++i) {
    body.register_mask |= static_cast<std::uint32_t>(bank.pcrSelect[i]) << (i * 8);
  }
  if ((body.register_mask >> (kMaxRegister + 1)) != 0) {
    return Fail(RotErrc::kInvalidArgument, "quote selects a register above 23");
  }
  const TPM2B_DATA& extra = attest->extraData;
  body.qualifying_data.assign(extra.buffer, extra.buffer + extra.size);
  const TPM2B_DIGEST& digest = attest->attested.quote.pcrDigest;
  body.register_digest.assign(digest.buffer, digest.buffer + digest.size);
  return body;
}

Verdict VerifyQuote(const Quote& quote, const crypto::PublicKey& identity,
                    const QuoteExpectation& expected) {
  auto der = SignatureToDer(quote.signature);
  if (!der) return Verdict::Invalid(der.error().message());
  // The signature is checked before any field is believed.
  Verdict signature = identity.Verify(quote.attest, *der);
  if (!signature.valid()) {
    if (signature.outcome() == Verdict::Outcome::kCouldNotCheck) return signature;
    return Verdict::Invalid("quote signature does not verify with the device's identity key");
  }
  auto body = ParseQuoteBody(quote.attest);
  if (!body) return Verdict::Invalid(body.error().message());
  if (!crypto::ConstantTimeEquals(body->qualifying_data, expected.qualifying_data)) {
    return Verdict::Invalid("quote qualifying data does not match the challenge (" +
                            HexEncode(body->qualifying_data).substr(0, 16) + "... instead of " +
                            HexEncode(expected.qualifying_data).substr(0, 16) + "...)");
  }
  if (body->hash_alg != TPM2_ALG_SHA256) {
    return Verdict::Invalid("quote covers a register bank other than SHA-256");
  }
  if (expected.register_index > kMaxRegister ||
      body->register_mask != (1u << expected.register_index)) {
    return Verdict::Invalid("quote does not cover exactly register " +
                            std::to_string(expected.register_index));
  }
  auto digest = crypto::Sha256Of(expected.register_value);
  if (!digest) return Verdict::CouldNotCheck(digest.error().message());
  if (!crypto::ConstantTimeEquals(body->register_digest, *digest)) {
    return Verdict::Invalid("quoted register value differs from the expected " +
                            HexEncode(expected.register_value).substr(0, 16) + "...");
  }
  return Verdict::Valid();
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
