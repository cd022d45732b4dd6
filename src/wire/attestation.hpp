#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/sha256.hpp"

// The attestation protocol, v1 (DESIGN section 4): messages and their JSON form. Byte fields are
// base64 in JSON. Parsers enforce sizes, so hostile evidence costs little to refuse.
namespace aspis::wire {

// Certificate policy OIDs marking what a certificate from a tenant CA is for, under a UUID-derived
// arc (ITU-T X.667): only runtime certificates open the device routes, and only deployment
// certificates sign update manifests.
inline constexpr char kRuntimeCertificatePolicy[] =
    "2.25.311582474623116484012930744116426097721.1";
inline constexpr char kAppCertificatePolicy[] = "2.25.311582474623116484012930744116426097721.2";
inline constexpr char kDeploymentCertificatePolicy[] =
    "2.25.311582474623116484012930744116426097721.3";

// The SAN URI of a device certificate, "urn:aspis:tenant:<tenant>:device:<device>", which ties the
// device to its tenant.
struct DeviceName {
  std::string tenant;
  std::string device_id;
};
std::string DeviceUri(const DeviceName& name);
// Nullopt unless `uri` has that form with both parts non-empty.
std::optional<DeviceName> ParseDeviceUri(std::string_view uri);

// One measured component, in the order it was extended into the register.
struct MeasurementEvent {
  std::string component;  // "os", "aspisd", "board", "trust-bundle", "app:<component id>"
  crypto::Digest digest{};
};

// The components of a launch, in the order aspisd measures them; an OS release defines a digest
// for each. Events after them name apps ("app:<component id>").
inline constexpr std::array<std::string_view, 4> kLaunchComponents = {"os", "aspisd", "board",
                                                                      "trust-bundle"};

// Roots of trust as evidence names them.
inline constexpr char kRootOfTrustTpm[] = "tpm";
inline constexpr char kRootOfTrustSoftware[] = "software";

// What the register holds after extending `events` in order from all zeros.
Expected<crypto::Digest> ReplayEventLog(const std::vector<MeasurementEvent>& events);

struct Challenge {
  Bytes nonce;
};

// A TPM attestation structure (TPMS_ATTEST: a quote or an NV certification) and its TPMT_SIGNATURE,
// both marshaled as the TPM 2.0 specification defines; rot/quote.hpp verifies them.
struct Quote {
  Bytes attest;
  Bytes signature;
};

// What a TPM device sends the first time it attests (rot/endorsement.hpp checks it).
struct Endorsement {
  Bytes ek_certificate;   // DER, from the TPM's NV
  Bytes ek_public;        // marshaled TPM2B_PUBLIC of the EK
  Bytes identity_public;  // marshaled TPM2B_PUBLIC of the identity key
};

// The answer to a credential challenge: the secret TPM2_ActivateCredential recovered, and the
// service's token for it.
struct ActivationProof {
  Bytes secret;
  Bytes token;
};

// What the device says; the verifier decides what each kind of root of trust must prove
// (rot/quote.hpp) and believes nothing here that a signature does not cover.
struct Evidence {
  std::string device_id;      // the claimed ID: lowercase hex SHA-256 of identity_public_key
  Bytes identity_public_key;  // DER SubjectPublicKeyInfo
  std::string root_of_trust;  // kRootOfTrustTpm or kRootOfTrustSoftware
  std::vector<MeasurementEvent> event_log;
  Quote quote;
  std::vector<crypto::Digest> boot_pcrs;        // TPM: the values of the boot PCRs (rot/quote.hpp)
  std::optional<Quote> register_certification;  // TPM: NV_Certify of the NvPCR
  // TPM, when the service asks (kEndorsementRequired) until it has bound the identity key to the
  // TPM's EK; then, with the answer to its credential challenge.
  std::optional<Endorsement> endorsement;
  std::optional<ActivationProof> activation;
  Bytes nonce;
  Bytes runtime_csr;  // DER
  Bytes app_csr;      // DER
};

// SHA-256(nonce || SHA-256(runtime CSR) || SHA-256(app CSR)): what the quote's qualifying data
// must be, binding both requests to this challenge.
Expected<crypto::Digest> EvidenceBinding(ByteView nonce, ByteView runtime_csr, ByteView app_csr);

inline constexpr std::size_t kMaxEvents = 256;
inline constexpr std::size_t kMaxBootPcrs = 24;

std::string Serialize(const Challenge& challenge);
Expected<Challenge> ParseChallenge(std::string_view json);
std::string Serialize(const Evidence& evidence);
Expected<Evidence> ParseEvidence(std::string_view json);

// The one refusal an unauthenticated attester gets, whatever the reason; the device's tenant sees
// the reasons.
inline constexpr char kAttestationRefused[] =
    "the service does not trust this evidence; the device's tenant can see why";

// Verdicts of an attestation result. kTrusted carries the certificates; the other two ask the
// device to attest again: with its endorsement, then with the credential activated.
inline constexpr char kTrusted[] = "trusted";
inline constexpr char kEndorsementRequired[] = "endorsement-required";
inline constexpr char kActivateCredential[] = "activate-credential";

// A credential only the device's TPM can open, for its identity key (TPM2_MakeCredential).
struct CredentialChallenge {
  Bytes credential_blob;   // TPM2B_ID_OBJECT
  Bytes encrypted_secret;  // TPM2B_ENCRYPTED_SECRET
  Bytes token;             // returned in ActivationProof
};

struct AttestationResult {
  std::string verdict;  // kTrusted, kEndorsementRequired or kActivateCredential
  std::string runtime_certificate_pem;
  std::string app_certificate_pem;
  std::string ca_chain_pem;                       // tenant CA, then the platform root
  std::optional<CredentialChallenge> credential;  // kActivateCredential
};

std::string Serialize(const AttestationResult& result);
Expected<AttestationResult> ParseAttestationResult(std::string_view json);

}  // namespace aspis::wire
