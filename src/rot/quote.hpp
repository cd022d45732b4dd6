#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/verdict.hpp"
#include "crypto/key.hpp"
#include "crypto/sha256.hpp"

// Signed TPM attestation structures (quotes and NV certifications) in the TPM 2.0 wire format,
// from either backend, and their verification; and what the verifier requires them to cover.
// Nothing here needs a TPM: the security service links this to check evidence.
namespace aspis::rot {

// A TPMS_ATTEST and its TPMT_SIGNATURE, marshaled as the TPM 2.0 specification defines (Part 2):
// for a quote, exactly the files tpm2_quote writes and tpm2_checkquote reads with -m and -s.
struct Quote {
  Bytes attest;     // TPMS_ATTEST
  Bytes signature;  // TPMT_SIGNATURE, ECDSA with SHA-256, by the identity key
};

inline constexpr std::size_t kMaxQualifyingData = 64;

// What the verifier requires evidence to cover; the device never chooses.
//
// TPM devices: a quote over the boot PCRs of the SHA-256 bank (0-7 from firmware, 11 where
// systemd-stub measures a signed kernel image), and a TPM2_NV_Certify of the Aspis NvPCR holding
// the launch measurements, both over the same qualifying data.
inline constexpr std::array<std::uint32_t, 9> kBootPcrs = {0, 1, 2, 3, 4, 5, 6, 7, 11};
// The Aspis NvPCR: an NV index of type extend in the range the TCG gave Linux, above the indices
// systemd uses (0x01D10200-0x01D10224). It is defined through the platform hierarchy with
// TPMA_NV_POLICY_DELETE, so the owner (root on the device) can neither delete nor recreate it,
// and TPMA_NV_CLEAR_STCLEAR, so it starts from zeros at each TPM reset, as a PCR does.
inline constexpr std::uint32_t kNvPcrIndex = 0x01D10300;
static_assert(kNvPcrIndex > 0x01D10224 && kNvPcrIndex <= 0x01D105FF);
// Software devices: a quote over the backend's own register, presented as this PCR index.
inline constexpr std::uint32_t kSoftwareRegister = 15;

// TPMA_NV attributes of the Aspis NvPCR as defined (TPMA_NV_WRITTEN comes with the first extend).
std::uint32_t NvPcrAttributes();
// Its authPolicy: TPM2_PolicyCommandCode(TPM2_CC_NV_UndefineSpaceSpecial), the only way it can be
// deleted (and that also needs the platform hierarchy).
Expected<crypto::Digest> NvPcrPolicy();
// The TPM Name (nameAlg || SHA-256 of TPMS_NV_PUBLIC) the NvPCR has once extended this boot: a
// certification of any other index, or of this index with other attributes, names something else.
Expected<Bytes> NvPcrName();
// Bit mask of kBootPcrs (bit i = PCR i).
std::uint32_t BootPcrMask();

// The fields of a signed TPMS_ATTEST that the verifier looks at.
struct AttestBody {
  std::uint16_t type = 0;  // TPM_ST_ATTEST_QUOTE or TPM_ST_ATTEST_NV
  Bytes qualifying_data;
  // Quotes: the one PCR bank selected.
  std::uint32_t hash_alg = 0;       // TPM_ALG_ID
  std::uint32_t register_mask = 0;  // bit i set = PCR i selected (0..23)
  Bytes register_digest;            // hash of the selected PCR values, ascending index order
  // NV certifications.
  Bytes nv_name;
  std::uint32_t nv_offset = 0;
  Bytes nv_contents;
};

inline constexpr std::uint16_t kAttestQuote = 0x8018;  // TPM_ST_ATTEST_QUOTE
inline constexpr std::uint16_t kAttestNv = 0x8014;     // TPM_ST_ATTEST_NV

// Parses a TPMS_ATTEST of a quote or an NV certification. Errors for truncated or trailing
// bytes, a missing TPM_GENERATED magic, any other type, or a quote over more than one bank.
Expected<AttestBody> ParseAttest(ByteView attest);

// The proof of possession: valid only when `signed_attest` is signed by `identity`, is a
// TPM-generated structure of `type`, and carries exactly `qualifying_data`. On success `*body`
// holds the parsed structure. Malformed input is invalid; only an internal failure (OpenSSL) is
// "could not check".
Verdict VerifySignedAttest(const Quote& signed_attest, const crypto::PublicKey& identity,
                           std::uint16_t type, ByteView qualifying_data, AttestBody* body);

// Valid when the quote selects exactly the PCRs in `register_mask` of the SHA-256 bank and those
// held `values` (ascending index order, one per set bit).
Verdict CheckQuoteCovers(const AttestBody& quote, std::uint32_t register_mask,
                         std::span<const crypto::Digest> values);

// Valid when the certification covers all of the index named `nv_name`, which held `contents`.
Verdict CheckNvCertifies(const AttestBody& certification, ByteView nv_name,
                         const crypto::Digest& contents);

struct QuoteExpectation {
  ByteView qualifying_data;
  std::uint32_t register_mask = 0;
  std::span<const crypto::Digest> values;
};

// VerifySignedAttest for a quote, then CheckQuoteCovers.
Verdict VerifyQuote(const Quote& quote, const crypto::PublicKey& identity,
                    const QuoteExpectation& expected);

// Building blocks for backends that produce quotes without a TPM (the software root of trust).
Expected<Bytes> MarshalQuoteAttest(const crypto::PublicKey& signer, ByteView qualifying_data,
                                   std::uint32_t register_index,
                                   const crypto::Digest& register_value, std::uint64_t clock_ms);
Expected<Bytes> MarshalEcdsaSignature(ByteView der_signature);

}  // namespace aspis::rot
