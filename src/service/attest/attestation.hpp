#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/verdict.hpp"
#include "crypto/x509.hpp"
#include "rot/credential.hpp"
#include "service/attest/attempt_log.hpp"
#include "service/ca/device_certificates.hpp"
#include "service/ca/tenant_ca.hpp"
#include "service/data_dir.hpp"
#include "service/metrics.hpp"
#include "service/store/store.hpp"
#include "wire/attestation.hpp"

// The attestation verifier and the tenant CAs' issuance of device certificates (DESIGN section 4).
namespace aspis::service::attest {

struct Policy {
  std::chrono::seconds certificate_lifetime = std::chrono::hours(24);
  std::chrono::seconds nonce_lifetime = std::chrono::minutes(5);
  // The TPM manufacturer CAs EK certificates must chain to (each a trust anchor). Empty: no TPM
  // device can prove its hardware.
  std::vector<crypto::ForeignCertificate> tpm_cas;
};

// What a TPM device must do before the verifier can decide: send its endorsement, then activate
// the credential made for its EK.
enum class Next { kNothing, kSendEndorsement, kActivateCredential };

// A credential challenge: what only the device's TPM can open, and the token it returns with the
// secret.
struct CredentialChallenge {
  rot::Credential credential;
  Bytes token;
};

struct Outcome {
  Verdict verdict;  // kValid: trusted, and `certificates` holds them
  // Whether the evidence proved possession of the identity key over a fresh challenge; only such
  // an attempt changes the device's recorded verdict.
  bool proven = false;
  std::optional<ca::DeviceCertificates> certificates;
  Next next = Next::kNothing;                    // not kNothing: neither trusted nor refused yet
  std::optional<CredentialChallenge> challenge;  // with kActivateCredential
};

// What the rules applied to proven evidence found.
struct Checked {
  Verdict verdict;
  std::string release;            // the OS release the launch matched
  bool boot_pcrs_proven = false;  // the quote covered the boot PCR values in the evidence
  // TPM devices: the EK the identity key is bound to (hex SHA-256 of its SubjectPublicKeyInfo),
  // and its certificate's issuer.
  std::string ek_fingerprint;
  std::string ek_issuer;
  // When the device must attest again.
  Next next = Next::kNothing;
  std::optional<CredentialChallenge> challenge;
};

// Thread-safe (its state lives in the store).
class Verifier {
 public:
  // `cas` issues the certificates; it must outlive the verifier.
  Verifier(store::Store& store, const DataDir& data, const Clock& clock, Metrics& metrics,
           const ca::TenantCas& cas, Policy policy = {})
      : store_(store),
        data_(data),
        clock_(clock),
        metrics_(metrics),
        policy_(std::move(policy)),
        cas_(cas),
        attempts_(std::make_unique<AttemptLog>(store, metrics)) {}

  // A stateless nonce: issue time, random bytes and an HMAC under a key derived from the master
  // key; valid for policy.nonce_lifetime and once.
  Expected<wire::Challenge> Challenge() const;

  // Checks everything the design lists (section 4), in order, stopping at the first failure.
  // What the evidence must cover is decided here, by the kind of root of trust, never by the
  // evidence. Every attempt on a claimed device is logged; only a proven one (a valid signature
  // by the identity key over this service's unused nonce) changes the device's verdict, and
  // unproven ones are logged in the background (AttemptLog), after the checks that need no
  // device record ran for claimed and unclaimed IDs alike. Trusted: the device's tenant CA issues
  // the runtime and app certificates for the two CSRs bound into the quote.
  Outcome Verify(const wire::Evidence& evidence) const;

 private:
  struct Proven;

  // issued_at || HMAC(key from the master key, issued_at, device, EK, secret): what the device
  // returns with the secret it activated, so that credential challenges need no state.
  Expected<Bytes> ActivationToken(std::string_view device_id, std::string_view ek_fingerprint,
                                  ByteView secret, Clock::TimePoint issued_at) const;
  Verdict CheckNonceIssued(ByteView nonce) const;
  Verdict UseNonce(ByteView nonce) const;
  Checked CheckProven(const wire::Evidence& evidence, const store::Device& device,
                      const Proven& proven) const;
  // Binds a TPM device's identity key to its TPM's EK by credential activation.
  Checked Bind(const wire::Evidence& evidence, const store::Device& device, Checked launch) const;
  Outcome Issue(const store::Device& device, const crypto::CertificateRequest& runtime_csr,
                const crypto::CertificateRequest& app_csr) const;
  Outcome Record(const std::optional<store::Device>& device, const wire::Evidence& evidence,
                 const Checked& checked, Outcome outcome) const;

  store::Store& store_;
  const DataDir& data_;
  const Clock& clock_;
  Metrics& metrics_;
  Policy policy_;
  const ca::TenantCas& cas_;
  std::unique_ptr<AttemptLog> attempts_;
};

}  // namespace aspis::service::attest
