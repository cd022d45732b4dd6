#include "service/attest/attestation.hpp"

#include "core/log.hpp"
#include "crypto/encoding.hpp"
#include "crypto/x509.hpp"
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

Verdict Prefixed(std::string_view prefix, const Verdict& verdict) {
  if (verdict.outcome() != Verdict::Outcome::kInvalid) return verdict;
  return Verdict::Invalid(std::string(prefix) + verdict.reason());
}

Checked Untrusted(std::string reason) { return {Verdict::Invalid(std::move(reason)), {}, false}; }

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
  auto used = store_.UseNonce(crypto::ToHex(*digest), UnixSeconds(expires),
                              UnixSeconds(clock_.Now()));
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
  auto replayed = wire::ReplayEventLog(evidence.event_log);
  if (!replayed) return {Verdict::CouldNotCheck("hashing failed"), {}, false};
  const bool tpm = evidence.root_of_trust == wire::kRootOfTrustTpm;
  if (tpm) {
    if (!proven.certification) {
      return Untrusted(
          "a TPM root of trust must certify the Aspis NvPCR (TPM2_NV_Certify); the evidence "
          "has no certification");
    }
    if (Verdict quote = rot::CheckQuoteCovers(proven.quote, rot::BootPcrMask(), evidence.boot_pcrs);
        !quote.valid()) {
      return {Prefixed("quote rejected: ", quote), {}, false};
    }
    auto name = rot::NvPcrName();
    if (!name) return {Verdict::CouldNotCheck(name.error().message()), {}, true};
    if (Verdict nv = rot::CheckNvCertifies(*proven.certification, *name, *replayed);
        !nv.valid()) {
      return {Prefixed("NV certification rejected: ", nv), {}, true};
    }
  } else {
    if (proven.certification || !evidence.boot_pcrs.empty()) {
      return Untrusted("a software root of trust has no NvPCR or boot PCRs to report");
    }
    if (Verdict quote = rot::CheckQuoteCovers(proven.quote, 1u << rot::kSoftwareRegister,
                                              std::span(&*replayed, 1));
        !quote.valid()) {
      return {Prefixed("quote rejected: ", quote), {}, false};
    }
  }
  LaunchVerdict launch = CheckLaunch(evidence.event_log, store_);
  if (!launch.verdict.valid()) return {std::move(launch.verdict), launch.release, tpm};
  auto golden = store_.GetGoldenBootPcrs(device.tenant_id);
  if (!golden) return {Verdict::CouldNotCheck(golden.error().message()), launch.release, tpm};
  if (!golden->empty()) {
    if (Verdict boot = CompareBootPcrs(*golden, evidence.boot_pcrs); !boot.valid()) {
      return {std::move(boot), launch.release, tpm};
    }
  }
  return {Verdict::Valid(), launch.release, tpm};
}

Outcome Verifier::Record(const std::optional<store::Device>& device, const wire::Evidence& evidence,
                         const Checked& checked, Outcome outcome) const {
  const bool trusted = outcome.verdict.valid();
  const bool error = outcome.verdict.outcome() == Verdict::Outcome::kCouldNotCheck;
  const std::string_view label = trusted          ? "trusted"
                                 : error          ? "error"
                                 : outcome.proven ? "untrusted"
                                                  : "refused";
  metrics_.Increment("aspis_attestations_total", {{"verdict", std::string(label)}});
  if (trusted) metrics_.Increment("aspis_certificates_issued_total", {}, 2);
  if (!device) return outcome;
  const auto now = UnixSeconds(clock_.Now());
  Expected<void> recorded;
  if (outcome.proven && !error) {
    recorded = store_.RecordAttestation(
        {.device_id = device->id,
         .verdict = std::string(label),
         .reasons = outcome.verdict.reason(),
         .at = now,
         .certificate_expiry = outcome.certificate_expiry,
         .root_of_trust = device->root_of_trust.empty() && trusted ? evidence.root_of_trust
                                                                   : device->root_of_trust,
         .boot_pcrs = checked.boot_pcrs_proven ? BootPcrsText(evidence.boot_pcrs)
                                               : device->boot_pcrs,
         .os_release = checked.release});
  } else {
    recorded = store_.AddAttestationAttempt(
        {device->id, now, std::string(label), outcome.verdict.reason(), false});
  }
  if (!recorded) {
    log::Error("recording attestation of {}: {}", device->id, recorded.error().message());
  }
  return outcome;
}

Outcome Verifier::Verify(const wire::Evidence& evidence) const {
  auto refuse = [&](const std::optional<store::Device>& device, Verdict verdict) {
    return Record(device, evidence, Checked{Verdict::Valid(), {}, false},
                  {std::move(verdict), false, std::nullopt, 0});
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
  auto device = store_.FindDeviceForAttestation(evidence.device_id);
  if (!device) {
    if (device.error() == store::StoreErrc::kNotFound) {
      return refuse(std::nullopt, Verdict::Invalid("the device has not been claimed by any tenant"));
    }
    return refuse(std::nullopt, Verdict::CouldNotCheck(device.error().message()));
  }
  if (Verdict nonce = CheckNonceIssued(evidence.nonce); !nonce.valid()) {
    return refuse(*device, std::move(nonce));
  }
  auto runtime_csr = crypto::CertificateRequest::FromDer(evidence.runtime_csr);
  auto app_csr = crypto::CertificateRequest::FromDer(evidence.app_csr);
  if (!runtime_csr || !app_csr || !runtime_csr->VerifySignature().valid() ||
      !app_csr->VerifySignature().valid()) {
    return refuse(*device,
                  Verdict::Invalid("a certificate request is malformed or not signed by its key"));
  }
  auto binding = wire::EvidenceBinding(evidence.nonce, evidence.runtime_csr, evidence.app_csr);
  if (!binding) return refuse(*device, Verdict::CouldNotCheck("hashing failed"));

  Proven proven;
  if (Verdict quote = rot::VerifySignedAttest(evidence.quote, *key, rot::kAttestQuote, *binding,
                                              &proven.quote);
      !quote.valid()) {
    return refuse(*device, Prefixed("quote rejected: ", quote));
  }
  if (evidence.register_certification) {
    rot::AttestBody body;
    if (Verdict nv = rot::VerifySignedAttest(*evidence.register_certification, *key,
                                             rot::kAttestNv, *binding, &body);
        !nv.valid()) {
      return refuse(*device, Prefixed("NV certification rejected: ", nv));
    }
    proven.certification = std::move(body);
  }
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
    return Record(*device, evidence, checked, {checked.verdict, true, std::nullopt, 0});
  }
  return Record(*device, evidence, checked, Issue(*device, *runtime_csr, *app_csr));
}

Outcome Verifier::Issue(const store::Device& device, const crypto::CertificateRequest& runtime_csr,
                        const crypto::CertificateRequest& app_csr) const {
  auto error = [](const Error& e) {
    log::Error("issuing device certificates: {}", e.message());
    return Outcome{Verdict::CouldNotCheck("the tenant CA could not issue certificates"), true,
                   std::nullopt, 0};
  };
  auto signer = cas_.Active(device.tenant_id);
  if (!signer) return error(signer.error());
  const crypto::Certificate& ca_cert = signer->generation.certificate;
  const auto now = clock_.Now();
  auto profile = [&](const char* policy) {
    return crypto::CertificateProfile{.common_name = device.id,
                                      .not_before = now - 5min,
                                      .lifetime = policy_.certificate_lifetime,
                                      .client_auth = true,
                                      .san_uris = {wire::DeviceUri({device.tenant_id, device.id})},
                                      .policy_oids = {policy}};
  };
  auto runtime = crypto::Issue(ca_cert, signer->key, runtime_csr.SubjectPublicKey(),
                               profile(kRuntimeCertificatePolicy));
  auto app = crypto::Issue(ca_cert, signer->key, app_csr.SubjectPublicKey(),
                           profile(kAppCertificatePolicy));
  if (!runtime) return error(runtime.error());
  if (!app) return error(app.error());
  auto runtime_pem = runtime->ToPem();
  auto app_pem = app->ToPem();
  auto root_pem = data_.root_ca.ToPem();
  auto ca_pem = ca_cert.ToPem();
  if (!runtime_pem || !app_pem || !root_pem || !ca_pem)
    return error(Error(CoreErrc::kIo, "PEM encoding failed"));
  return {Verdict::Valid(), true,
          wire::AttestationResult{"trusted", *runtime_pem, *app_pem, *ca_pem + *root_pem},
          UnixSeconds(runtime->NotAfter())};
}

}  // namespace aspis::service::attest
