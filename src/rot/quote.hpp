#pragma once

#include <cstdint>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/verdict.hpp"
#include "crypto/key.hpp"
#include "crypto/sha256.hpp"

// Quotes in the TPM 2.0 wire format, from either backend, and their verification. Nothing here
// needs a TPM: the security service links this to check evidence.
namespace aspis::rot {

// What TPM2_Quote returns, marshaled as the TPM 2.0 specification defines (Part 2): exactly the
// files tpm2_quote writes and tpm2_checkquote reads with -m and -s.
struct Quote {
  Bytes attest;     // TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE
  Bytes signature;  // TPMT_SIGNATURE, ECDSA with SHA-256, by the identity key
};

inline constexpr std::size_t kMaxQualifyingData = 64;

// The fields of a quote that the verifier looks at.
struct QuoteBody {
  Bytes qualifying_data;
  std::uint32_t hash_alg = 0;       // TPM_ALG_ID of the one PCR bank selected
  std::uint32_t register_mask = 0;  // bit i set = register i selected (registers 0..23)
  Bytes register_digest;            // hash of the selected register values
};

// Parses a TPMS_ATTEST. Errors for truncated or trailing bytes, a missing TPM_GENERATED magic, a
// type other than quote, or a selection of more than one bank.
Expected<QuoteBody> ParseQuoteBody(ByteView attest);

struct QuoteExpectation {
  ByteView qualifying_data;
  std::uint32_t register_index = 0;
  crypto::Digest register_value{};
};

// Valid only when the quote is signed by `identity`, carries exactly `expected.qualifying_data`,
// selects only register `expected.register_index` in the SHA-256 bank, and that register held
// `expected.register_value`. Malformed quotes are invalid; only an internal failure (OpenSSL) is
// "could not check".
Verdict VerifyQuote(const Quote& quote, const crypto::PublicKey& identity,
                    const QuoteExpectation& expected);

// Building blocks for backends that produce quotes without a TPM (the software root of trust).
Expected<Bytes> MarshalQuoteAttest(const crypto::PublicKey& signer, ByteView qualifying_data,
                                   std::uint32_t register_index,
                                   const crypto::Digest& register_value, std::uint64_t clock_ms);
Expected<Bytes> MarshalEcdsaSignature(ByteView der_signature);

}  // namespace aspis::rot
