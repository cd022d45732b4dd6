#include "service/attest/attestation.hpp"

#include "core/log.hpp"
#include "crypto/encoding.hpp"
#include "crypto/x509.hpp"
#include "rot/credential.hpp"
#include "rot/endorsement.hpp"
#include "rot/quote.hpp"
#include "service/attest/launch.hpp"

namespace aspis::service::attest {

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kTimeSize = 8;
constexpr std::size_t kRandomSize = 16;
constexpr std::size_t kMacSize = 32;
constexpr std::size_t kNonceSize = kTimeSize + kRandomSize + kMacSize;
// Clocks of service instances may differ a little.
constexpr auto kClockSkew = 30s;

Expected<Bytes> NonceMac(const Bytes& master_key, ByteView body) {
  // A key of its own for nonces, derived from the master key.
  Bytes label = ToBytes("aspis nonce key v1");
  auto key = crypto::HmacSha256(master_key, label);
  if (!key) return key;
  return crypto::HmacSha256(*key, body);
}

Clock::TimePoint NonceIssuedAt(ByteView nonce) {
  std::uint64_t issued = 0;
  for (std::size_t i = 0; i < kTimeSize; ++i) issued = (issued << 8) | nonce[i];
  return Clock::TimePoint(std::chrono::seconds(issued));
}

rot::Quote ToRot(const wire::Quote& q) { return {q.attest, q.signature}; }

rot::Endorsement ToRot(const wire::Endorsement& e) {
  return {e.ek_certificate, e.ek_public, e.identity_public};
}

Verdict Prefixed(std::string_view prefix, const Verdict& verdict) {
  if (verdict.outcome() != Verdict::Outcome::kInvalid) return verdict;
  return Verdict::Invalid(std::string(prefix) + verdict.reason());
}

Checked Untrusted(std::string reason) {
  return {Verdict::Invalid(std::move(reason)), {}, false, {}, {}, Next::kNothing, {}};
}

std::string BootPcrsText(const std::vector<crypto::Digest>& values) {
  std::string out;
  for (const auto& value : values) out += (out.empty() ? "" : ",") + crypto::ToHex(value);
  return out;
}

Verdict CompareBootPcrs(std::string_view golden, const std::vector<crypto::Digest>& values) {
  const std::string reported = BootPcrsText(values);
  if (reported == golden) return Verdict::Valid();
  if (values.size() != rot::kBootPcrs.size()) {
    return Verdict::Invalid(
        "the tenant has pinned golden boot PCRs, and the device reports none (no TPM)");
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::string value = crypto::ToHex(values[i]);
    const std::size_t at = i * (value.size() + 1);
    if (golden.substr(at, value.size()) != value) {
      return Verdict::Invalid("boot PCR " + std::to_string(rot::kBootPcrs[i]) + " is " +
                              value.substr(0, 16) + "..., the tenant's golden value is " +
                              std::string(golden.substr(at, 16)) + "...");
    }
  }
  return Verdict::Invalid("the boot PCRs differ from the tenant's golden values");
}

}  // namespace

Expected<wire::Challenge> Verifier::Challenge() const {
  Bytes nonce(kTimeSize);
  const auto now = static_cast<std::uint64_t>(UnixSeconds(clock_.Now()));
  for (std::size_t i = 0; i < kTimeSize; ++i) {
    nonce[i] = static_cast<std::uint8_t>(now >> (8 * (kTimeSize - 1 - i)));
  }
  auto random = crypto::RandomBytes(kRandomSize);
  if (!random) return std::unexpected(random.error());
  nonce.insert(nonce.end(), random->begin(), random->end());
  auto mac = NonceMac(data_.master_key, nonce);
  if (!mac) return std::unexpected(mac.error());
  nonce.insert(nonce.end(), mac->begin(), mac->end());
  return wire::Challenge{std::move(nonce)};
}

Expected<Bytes> Verifier::ActivationToken(std::string_view device_id,
                                          std::string_view ek_fingerprint, ByteView secret,
                                          Clock::TimePoint issued_at) const {
  Bytes token(kTimeSize);
  const auto issued = static_cast<std::uint64_t>(UnixSeconds(issued_at));
  for (std::size_t i = 0; i < kTimeSize; ++i) {
    token[i] = static_cast<std::uint8_t>(issued >> (8 * (kTimeSize - 1 - i)));
  }
  Bytes body = token;
  for (const std::string_view part : {device_id, ek_fingerprint}) {
    body.insert(body.end(), part.begin(), part.end());
    body.push_back(0);
  }
  body.insert(body.end(), secret.begin(), secret.end());
  auto key = crypto::HmacSha256(data_.master_key, ToBytes("aspis activation key v1"));
  if (!key) return key;
  auto mac = crypto::HmacSha256(*key, body);
  if (!mac) return mac;
  token.insert(token.end(), mac->begin(), mac->end());
  return token;
}

Verdict Verifier::CheckNonceIssued(ByteView nonce) const {
  if (nonce.size() != kNonceSize)
    return Verdict::Invalid("the nonce was not issued by this service");
  auto mac = NonceMac(data_.master_key, nonce.first(kTimeSize + kRandomSize));
  if (!mac) return Verdict::CouldNotCheck(mac.error().message());
  if (!crypto::ConstantTimeEquals(*mac, nonce.last(kMacSize))) {
    return Verdict::Invalid("the nonce was not issued by this service");
  }
  const auto now = clock_.Now();
  const auto issued_at = NonceIssuedAt(nonce);
  if (issued_at > now + kClockSkew || now - issued_at > policy_.nonce_lifetime) {
    return Verdict::Invalid("the nonce has expired; request a new challenge");
  }
  return Verdict::Valid();
}

Verdict Verifier::UseNonce(ByteView nonce) const {
  auto digest = crypto::Sha256Of(nonce);
  if (!digest) return Verdict::CouldNotCheck(digest.error().message());
  const auto expires = NonceIssuedAt(nonce) + policy_.nonce_lifetime + kClockSkew;
  auto used =
      store_.UseNonce(crypto::ToHex(*digest), UnixSeconds(expires), UnixSeconds(clock_.Now()));
  if (!used) {
    if (used.error() == store::StoreErrc::kConflict) {
      return Verdict::Invalid("the nonce has been used already (replay)");
    }
    return Verdict::CouldNotCheck(used.error().message());
  }
  return Verdict::Valid();
}

// What the evidence proved before any rule about what it says is applied.
struct Verifier::Proven {
  rot::AttestBody quote;
  std::optional<rot::AttestBody> certification;
  bool keys_differ = false;
};

Checked Verifier::CheckProven(const wire::Evidence& evidence, const store::Device& device,
                              const Proven& proven) const {
  if (device.revoked) return Untrusted("the device is revoked");
  if (!device.root_of_trust.empty() && device.root_of_trust != evidence.root_of_trust) {
    return Untrusted("the device proved a " + device.root_of_trust +
                     " root of trust before and now reports " + evidence.root_of_trust +
                     "; a device's root of trust cannot change");
  }
  if (!proven.keys_differ) return Untrusted("the runtime, app and identity keys must all differ");
  auto policy = store_.GetAttestationPolicy(device.tenant_id);
  if (!policy)
    return {
        Verdict::CouldNotCheck(policy.error().message()), {}, false, {}, {}, Next::kNothing, {}};
  if (evidence.root_of_trust == wire::kRootOfTrustSoftware &&
      !policy->allow_software_root_of_trust) {
    return Untrusted(
        "the device has a software root of trust (no hardware protection), which the tenant "
        "does not accept; a tenant administrator can allow it with `aspis attestation-policy "
        "update --allow-software-root-of-trust true`");
  }
  auto replayed = wire::ReplayEventLog(evidence.event_log);
  if (!replayed)
    return {Verdict::CouldNotCheck("hashing failed"), {}, false, {}, {}, Next::kNothing, {}};
  const bool tpm = evidence.root_of_trust == wire::kRootOfTrustTpm;
  if (tpm) {
    if (!proven.certification) {
      return Untrusted(
          "a TPM root of trust must certify the Aspis NvPCR (TPM2_NV_Certify); the evidence "
          "has no certification");
    }
    if (Verdict quote = rot::CheckQuoteCovers(proven.quote, rot::BootPcrMask(), evidence.boot_pcrs);
        !quote.valid()) {
      return {Prefixed("quote rejected: ", quote), {}, false, {}, {}, Next::kNothing, {}};
    }
    auto name = rot::NvPcrName();
    if (!name)
      return {Verdict::CouldNotCheck(name.error().message()), {}, true, {}, {}, Next::kNothing, {}};
    if (Verdict nv = rot::CheckNvCertifies(*proven.certification, *name, *replayed); !nv.valid()) {
      return {Prefixed("NV certification rejected: ", nv), {}, true, {}, {}, Next::kNothing, {}};
    }
  } else {
    if (proven.certification || !evidence.boot_pcrs.empty()) {
      return Untrusted("a software root of trust has no NvPCR or boot PCRs to report");
    }
    if (Verdict quote = rot::CheckQuoteCovers(proven.quote, 1u << rot::kSoftwareRegister,
                                              std::span(&*replayed, 1));
        !quote.valid()) {
      return {Prefixed("quote rejected: ", quote), {}, false, {}, {}, Next::kNothing, {}};
    }
  }
  LaunchVerdict launch = CheckLaunch(evidence.event_log, store_, device);
  Checked checked{std::move(launch.verdict), launch.release, tpm, {}, {}, Next::kNothing, {}};
  if (!checked.verdict.valid()) return checked;
  if (!policy->golden_boot_pcrs.empty()) {
    checked.verdict = CompareBootPcrs(policy->golden_boot_pcrs, evidence.boot_pcrs);
    if (!checked.verdict.valid()) return checked;
  }
  if (!tpm) return checked;
  if (!device.ek_fingerprint.empty()) {
    checked.ek_fingerprint = device.ek_fingerprint;
    checked.ek_issuer = device.ek_issuer;
    return checked;
  }
  return Bind(evidence, device, std::move(checked));
}

Checked Verifier::Bind(const wire::Evidence& evidence, const store::Device& device,
                       Checked checked) const {
  auto refuse = [&](std::string reason) {
    checked.verdict = Verdict::Invalid(std::move(reason));
    return checked;
  };
  auto could_not_check = [&](const Error& error) {
    checked.verdict = Verdict::CouldNotCheck(error.message());
    return checked;
  };
  if (!evidence.endorsement) {
    checked.next = Next::kSendEndorsement;
    checked.verdict = Verdict::Invalid("the TPM's endorsement was asked for");
    return checked;
  }
  if (policy_.tpm_cas.empty()) {
    return refuse(
        "the service trusts no TPM manufacturer CA (aspis-service --tpm-ca-dir), so it cannot "
        "tell a TPM from software");
  }
  auto ek_certificate = crypto::ForeignCertificate::FromDer(evidence.endorsement->ek_certificate);
  if (!ek_certificate) {
    return refuse("the EK certificate is unreadable: " + ek_certificate.error().message());
  }
  if (Verdict chain = crypto::VerifyChain(*ek_certificate, {}, policy_.tpm_cas, clock_.Now());
      !chain.valid()) {
    checked.verdict =
        Prefixed("the EK certificate is not from a trusted TPM manufacturer: ", chain);
    return checked;
  }
  auto key = crypto::PublicKey::FromCanonicalDer(evidence.identity_public_key);
  if (!key) return could_not_check(key.error());
  if (Verdict endorsed = rot::CheckEndorsement(*ek_certificate, ToRot(*evidence.endorsement), *key);
      !endorsed.valid()) {
    checked.verdict = endorsed;
    return checked;
  }
  auto spki = ek_certificate->SubjectPublicKeyInfo();
  auto fingerprint = spki ? crypto::Sha256Of(*spki) : std::unexpected(spki.error());
  if (!fingerprint) return could_not_check(fingerprint.error());
  checked.ek_fingerprint = crypto::ToHex(*fingerprint);
  checked.ek_issuer = ek_certificate->IssuerName();

  const auto now = clock_.Now();
  if (!evidence.activation) {
    auto secret = crypto::RandomBytes(rot::kMaxCredentialSecret);
    auto name = rot::ObjectName(evidence.endorsement->identity_public);
    if (!secret || !name) return could_not_check(!secret ? secret.error() : name.error());
    auto credential = rot::MakeCredential(evidence.endorsement->ek_public, *name, *secret);
    if (!credential) return could_not_check(credential.error());
    auto token = ActivationToken(device.id, checked.ek_fingerprint, *secret, now);
    if (!token) return could_not_check(token.error());
    checked.next = Next::kActivateCredential;
    checked.challenge = CredentialChallenge{std::move(*credential), std::move(*token)};
    checked.verdict = Verdict::Invalid("a credential for the TPM's EK was sent to activate");
    return checked;
  }
  const wire::ActivationProof& proof = *evidence.activation;
  if (proof.token.size() != kTimeSize + kMacSize) {
    return refuse("the credential activation does not answer a challenge of this service");
  }
  const auto issued_at = NonceIssuedAt(proof.token);
  auto expected = ActivationToken(device.id, checked.ek_fingerprint, proof.secret, issued_at);
  if (!expected) return could_not_check(expected.error());
  if (!crypto::ConstantTimeEquals(*expected, proof.token)) {
    return refuse(
        "the credential was not activated by the TPM of this EK for this identity key (the "
        "secret does not match the service's challenge)");
  }
  if (issued_at > now + kClockSkew || now - issued_at > policy_.nonce_lifetime) {
    return refuse("the credential activation has expired; attest again");
  }
  return checked;
}

Outcome Verifier::Record(const std::optional<store::Device>& device, const wire::Evidence& evidence,
                         const Checked& checked, Outcome outcome) const {
  auto label = [](const Outcome& o) -> std::string {
    if (o.verdict.valid()) return "trusted";
    if (o.verdict.outcome() == Verdict::Outcome::kCouldNotCheck) return "error";
    // Pending: the device is asked for more (its endorsement, an activated credential).
    if (o.next != Next::kNothing) return "pending";
    return o.proven ? "untrusted" : "refused";
  };
  if (device) {
    const std::string verdict = label(outcome);
    const auto now = UnixSeconds(clock_.Now());
    Expected<void> recorded;
    if (verdict == "trusted" || verdict == "untrusted") {
      const bool trusted = verdict == "trusted";
      // Boot PCR values are believed only from a key known to live in a TPM: one bound to its EK
      // before, or in this very attempt.
      const bool tpm_bound =
          !device->ek_fingerprint.empty() || (trusted && !checked.ek_fingerprint.empty());
      recorded = store_.RecordAttestation(
          {.device_id = device->id,
           .verdict = verdict,
           .reasons = outcome.verdict.reason(),
           .at = now,
           .certificate_expiry =
               outcome.certificates ? UnixSeconds(outcome.certificates->runtime.NotAfter()) : 0,
           .root_of_trust = device->root_of_trust.empty() && trusted ? evidence.root_of_trust
                                                                     : device->root_of_trust,
           .boot_pcrs = checked.boot_pcrs_proven && tpm_bound ? BootPcrsText(evidence.boot_pcrs)
                                                              : device->boot_pcrs,
           .os_release = checked.release,
           .ek_fingerprint = trusted ? checked.ek_fingerprint : device->ek_fingerprint,
           .ek_issuer = trusted ? checked.ek_issuer : device->ek_issuer,
           .issued = outcome.certificates ? outcome.certificates->records
                                          : std::vector<store::IssuedCertificate>{}});
    } else if (outcome.proven) {
      recorded = store_.AddAttestationAttempt(
          {device->id, now, verdict, outcome.verdict.reason(), outcome.proven});
    } else {
      attempts_->Add({device->id, now, verdict, outcome.verdict.reason(), false});
    }
    if (!recorded) {
      log::Error("recording attestation of {}: {}", device->id, recorded.error().message());
      // Certificates not on record would escape the CRL: they are never handed out.
      if (outcome.certificates) {
        outcome = {recorded.error() == store::StoreErrc::kConflict
                       ? Verdict::Invalid("the device was revoked while it attested")
                       : Verdict::CouldNotCheck("the attestation could not be recorded"),
                   true,
                   {},
                   Next::kNothing,
                   {}};
      }
    }
  }
  metrics_.Increment("aspis_attestations_total", {{"verdict", label(outcome)}});
  if (outcome.certificates) metrics_.Increment("aspis_certificates_issued_total", {}, 2);
  return outcome;
}

Outcome Verifier::Verify(const wire::Evidence& evidence) const {
  auto refuse = [&](const std::optional<store::Device>& device, Verdict verdict) {
    return Record(device, evidence, Checked{Verdict::Valid(), {}, false},
                  {std::move(verdict), false, {}, Next::kNothing, {}});
  };
  // One encoding per key, so that one key has exactly one device ID.
  auto key = crypto::PublicKey::FromCanonicalDer(evidence.identity_public_key);
  if (!key) {
    return refuse(std::nullopt,
                  Verdict::Invalid("the identity key is not a P-256 SubjectPublicKeyInfo with a "
                                   "named curve and an uncompressed point"));
  }
  if (key->Fingerprint() != evidence.device_id) {
    return refuse(std::nullopt, Verdict::Invalid("the identity public key does not hash to the "
                                                 "claimed device ID"));
  }
  // The checks that need no device record run before it is looked up, for claimed and unclaimed
  // IDs alike, so that the time to refuse does not tell them apart.
  Proven proven;
  Expected<crypto::CertificateRequest> runtime_csr = Fail(CoreErrc::kInvalidArgument, "unread");
  Expected<crypto::CertificateRequest> app_csr = runtime_csr;
  const Verdict signed_by_key = [&] {
    if (Verdict nonce = CheckNonceIssued(evidence.nonce); !nonce.valid()) return nonce;
    runtime_csr = crypto::CertificateRequest::FromDer(evidence.runtime_csr);
    app_csr = crypto::CertificateRequest::FromDer(evidence.app_csr);
    if (!runtime_csr || !app_csr || !runtime_csr->VerifySignature().valid() ||
        !app_csr->VerifySignature().valid()) {
      return Verdict::Invalid("a certificate request is malformed or not signed by its key");
    }
    auto binding = wire::EvidenceBinding(evidence.nonce, evidence.runtime_csr, evidence.app_csr);
    if (!binding) return Verdict::CouldNotCheck("hashing failed");
    if (Verdict quote = rot::VerifySignedAttest(ToRot(evidence.quote), *key, rot::kAttestQuote,
                                                *binding, &proven.quote);
        !quote.valid()) {
      return Prefixed("quote rejected: ", quote);
    }
    if (evidence.register_certification) {
      rot::AttestBody body;
      if (Verdict nv = rot::VerifySignedAttest(ToRot(*evidence.register_certification), *key,
                                               rot::kAttestNv, *binding, &body);
          !nv.valid()) {
        return Prefixed("NV certification rejected: ", nv);
      }
      proven.certification = std::move(body);
    }
    return Verdict::Valid();
  }();
  auto device = store_.FindDeviceForAttestation(evidence.device_id);
  if (!device) {
    if (device.error() == store::StoreErrc::kNotFound) {
      return refuse(std::nullopt,
                    Verdict::Invalid("the device has not been claimed by any tenant"));
    }
    return refuse(std::nullopt, Verdict::CouldNotCheck(device.error().message()));
  }
  if (!signed_by_key.valid()) return refuse(*device, signed_by_key);
  if (Verdict nonce = UseNonce(evidence.nonce); !nonce.valid()) {
    return refuse(*device, std::move(nonce));
  }
  // The identity key signed this service's unused nonce: from here on the attempt speaks for the
  // device, and its verdict is recorded.
  proven.keys_differ = !(runtime_csr->SubjectPublicKey() == app_csr->SubjectPublicKey()) &&
                       !(runtime_csr->SubjectPublicKey() == *key) &&
                       !(app_csr->SubjectPublicKey() == *key);
  Checked checked = CheckProven(evidence, *device, proven);
  if (!checked.verdict.valid()) {
    return Record(*device, evidence, checked,
                  {checked.verdict, true, {}, checked.next, checked.challenge});
  }
  return Record(*device, evidence, checked, Issue(*device, *runtime_csr, *app_csr));
}

Outcome Verifier::Issue(const store::Device& device, const crypto::CertificateRequest& runtime_csr,
                        const crypto::CertificateRequest& app_csr) const {
  auto issued = ca::IssueDeviceCertificates(cas_, data_.root_ca,
                                            {.device = device,
                                             .runtime_key = runtime_csr.SubjectPublicKey(),
                                             .app_key = app_csr.SubjectPublicKey(),
                                             .now = clock_.Now(),
                                             .lifetime = policy_.certificate_lifetime});
  if (!issued) {
    log::Error("issuing device certificates: {}", issued.error().message());
    return {Verdict::CouldNotCheck("the tenant CA could not issue certificates"), true, {}, {}, {}};
  }
  return {Verdict::Valid(), true, std::move(*issued), Next::kNothing, {}};
}

}  // namespace aspis::service::attest
