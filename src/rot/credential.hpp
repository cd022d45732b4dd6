#pragma once

#include <cstddef>

#include "core/bytes.hpp"
#include "core/error.hpp"

// TPM 2.0 credential activation, the service's half: TPM2_MakeCredential computed in software
// (TPM 2.0 Library, Part 1, "Credential Protection" and "Secret Sharing"), so that the service can
// bind a device's identity key to the endorsement key (EK) of the device's TPM. The device answers
// with TPM2_ActivateCredential, which only its TPM can run, and only for the named object.
// Nothing here needs a TPM. All functions are thread-safe.
namespace aspis::rot {

// A credential in the TPM 2.0 wire format: the two command parameters of TPM2_ActivateCredential,
// which tpm2-tools' credential file holds after its 8-byte header (magic 0xBADCC0DE, version 1).
struct Credential {
  Bytes credential_blob;   // TPM2B_ID_OBJECT: integrityHMAC (TPM2B_DIGEST) || encIdentity
  Bytes encrypted_secret;  // TPM2B_ENCRYPTED_SECRET: the seed, RSA-OAEP-encrypted or an ECDH point
};

// The longest secret a credential carries: a TPM2B_DIGEST no longer than a SHA-256 digest.
inline constexpr std::size_t kMaxCredentialSecret = 32;

// Makes a credential that only the TPM holding the private part of `ek_public` can open, and only
// for the object whose TPM Name is `object_name`; TPM2_ActivateCredential on that TPM returns
// `secret`.
//
// `ek_public` is a marshaled TPM2B_PUBLIC of a restricted decryption key with SHA-256 nameAlg and
// AES-128-CFB symmetric definition: ECC NIST P-256 or RSA 2048 (the TCG default EK templates).
// Any other key, malformed bytes or trailing bytes are refused (RotErrc::kInvalidArgument), as is
// an `object_name` that is not a SHA-256, SHA-384 or SHA-512 nameAlg followed by a digest of that
// size, or a `secret` that is empty or longer than kMaxCredentialSecret. An OpenSSL failure is a
// crypto::CryptoErrc::kOpenSsl error. Each call draws a fresh seed, so outputs differ.
[[nodiscard]] Expected<Credential> MakeCredential(ByteView ek_public, ByteView object_name,
                                                  ByteView secret);

// The TPM Name of the object whose public area `tpm2b_public` (a marshaled TPM2B_PUBLIC) is:
// nameAlg (2 bytes, big-endian) || nameAlg digest of the marshaled TPMT_PUBLIC. For an identity
// key or an EK. Malformed or trailing bytes, and nameAlgs other than SHA-256, SHA-384 or SHA-512,
// are refused (RotErrc::kInvalidArgument).
[[nodiscard]] Expected<Bytes> ObjectName(ByteView tpm2b_public);

}  // namespace aspis::rot
