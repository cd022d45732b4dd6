#pragma once

#include <cstdint>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/verdict.hpp"
#include "crypto/key.hpp"
#include "crypto/x509.hpp"

// Hardware binding (DESIGN section 4): what a TPM device shows the verifier so that its identity
// key is known to live in a genuine TPM. Shared by the device (which reads it from its TPM) and the
// service (which checks it); nothing here needs a TPM.
namespace aspis::rot {

// TCG EK Credential Profile 2.0: the NV indices of the EK certificates Aspis reads (low range:
// RSA 2048, ECC NIST P-256), whose keys the default EK templates L-1 and L-2 re-create.
inline constexpr std::uint32_t kEkCertificateRsa2048 = 0x01C00002;
inline constexpr std::uint32_t kEkCertificateEccP256 = 0x01C0000A;
enum class EkKind { kRsa2048, kEccP256 };

// The default EK template of `kind` as a marshaled TPM2B_PUBLIC (unique zero-filled, as the
// profile defines it; TPM2_CreatePrimary under the endorsement hierarchy makes the EK from it).
Expected<Bytes> EkTemplate(EkKind kind);
// The Aspis identity key: a restricted ECDSA-SHA256 P-256 signing key that never leaves the TPM
// (fixedTPM, fixedParent, sensitiveDataOrigin), as a marshaled TPM2B_PUBLIC with empty unique.
Expected<Bytes> IdentityTemplate();

// What a TPM device sends at its first attestation.
struct Endorsement {
  Bytes ek_certificate;   // DER, from the TPM's NV
  Bytes ek_public;        // marshaled TPM2B_PUBLIC of the EK
  Bytes identity_public;  // marshaled TPM2B_PUBLIC of the identity key
};

// Valid when `e.ek_public` is a default EK (its template in all but the unique field) holding the
// key `ek_certificate` certifies, and `e.identity_public` is an Aspis identity key holding
// `identity`. Malformed structures are invalid. The certificate's chain is checked elsewhere.
Verdict CheckEndorsement(const crypto::ForeignCertificate& ek_certificate, const Endorsement& e,
                         const crypto::PublicKey& identity);

// The DER encoding at the start of `bytes`: EK certificate NV indices may be longer than the
// certificate they hold. Errors when `bytes` does not begin with a whole DER element.
Expected<Bytes> LeadingDer(ByteView bytes);

}  // namespace aspis::rot
