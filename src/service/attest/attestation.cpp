#include "service/attest/attestation.hpp"

#include "core/log.hpp"
#include "crypto/encoding.hpp"
#include "crypto/x509.hpp"
#include "rot/quote.hpp"

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

Outcome Untrusted(std::string reason) {
  return {Verdict::Invalid(std::move(reason)), std::nullopt};
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

Verdict Verifier::CheckNonce(ByteView nonce) const {
  if (nonce.size() != kNonceSize)
    return Verdict::Invalid("the nonce was not issued by this service");
  auto mac = NonceMac(data_.master_key, nonce.first(kTimeSize + kRandomSize));
  if (!mac) return Verdict::CouldNotCheck(mac.error().message());
  if (!crypto::ConstantTimeEquals(*mac, nonce.last(kMacSize))) {
    return Verdict::Invalid("the nonce was not issued by this service");
  }
  std::uint64_t issued = 0;
  for (std::size_t i = 0; i < kTimeSize; ++i) issued = (issued << 8) | nonce[i];
  const auto now = clock_.Now();
  const auto issued_at = Clock::TimePoint(std::chrono::seconds(issued));
  if (issued_at > now + kClockSkew || now - issued_at > policy_.nonce_lifetime) {
    return Verdict::Invalid("the nonce has expired; request a new challenge");
  }
  auto digest = crypto::Sha256Of(nonce);
  if (!digest) return Verdict::CouldNotCheck(digest.error().message());
  const auto expires = issued_at + policy_.nonce_lifetime + kClockSkew;
  auto used = store_.UseNonce(crypto::ToHex(*digest), UnixSeconds(expires), UnixSeconds(now));
  if (!used) {
    if (used.error() == store::StoreErrc::kConflict) {
      return Verdict::Invalid("the nonce has been used already (replay)");
    }
    return Verdict::CouldNotCheck(used.error().message());
  }
  return Verdict::Valid();
}

Outcome Verifier::Record(const std::optional<store::Device>& device, Outcome outcome) const {
  const bool trusted = outcome.verdict.valid();
  metrics_.Increment(
      "aspis_attestations_total",
      {{"verdict", trusted                                                   ? "trusted"
                   : outcome.verdict.outcome() == Verdict::Outcome::kInvalid ? "untrusted"
                                                                             : "error"}});
  if (trusted) metrics_.Increment("aspis_certificates_issued_total", {}, 2);
  if (device) {
    auto recorded = store_.RecordAttestation(device->id, trusted ? "trusted" : "untrusted",
                                             outcome.verdict.reason(), UnixSeconds(clock_.Now()),
                                             outcome.certificate_expiry);
    if (!recorded)
      log::Error("recording attestation of {}: {}", device->id, recorded.error().message());
  }
  return outcome;
}

Outcome Verifier::Verify(const wire::Evidence& evidence) const {
  auto key = crypto::PublicKey::FromDer(evidence.identity_public_key);
  if (!key) return Record(std::nullopt, Untrusted("the identity key is not a P-256 public key"));
  if (key->Fingerprint() != evidence.device_id) {
    return Record(std::nullopt,
                  Untrusted("the identity public key does not hash to the claimed device ID"));
  }
  auto device = store_.FindDeviceForAttestation(evidence.device_id);
  if (!device) {
    if (device.error() == store::StoreErrc::kNotFound) {
      return Record(std::nullopt, Untrusted("the device has not been claimed by any tenant"));
    }
    return Record(std::nullopt, {Verdict::CouldNotCheck(device.error().message()), std::nullopt});
  }
  if (device->revoked) return Record(*device, Untrusted("the device is revoked"));
  if (const Verdict nonce = CheckNonce(evidence.nonce); !nonce.valid()) {
    return Record(*device, {nonce, std::nullopt});
  }

  auto runtime_csr = crypto::CertificateRequest::FromDer(evidence.runtime_csr);
  auto app_csr = crypto::CertificateRequest::FromDer(evidence.app_csr);
  if (!runtime_csr || !app_csr || !runtime_csr->VerifySignature().valid() ||
      !app_csr->VerifySignature().valid()) {
    return Record(*device,
                  Untrusted("a certificate request is malformed or not signed by its key"));
  }
  if (runtime_csr->SubjectPublicKey() == app_csr->SubjectPublicKey() ||
      runtime_csr->SubjectPublicKey() == *key || app_csr->SubjectPublicKey() == *key) {
    return Record(*device, Untrusted("the runtime, app and identity keys must all differ"));
  }

  auto binding = wire::EvidenceBinding(evidence.nonce, evidence.runtime_csr, evidence.app_csr);
  auto replayed = wire::ReplayEventLog(evidence.event_log);
  if (!binding || !replayed) {
    return Record(*device, {Verdict::CouldNotCheck("hashing failed"), std::nullopt});
  }
  const Verdict quote =
      rot::VerifyQuote(evidence.quote, *key, {*binding, evidence.register_index, *replayed});
  if (!quote.valid()) {
    return Record(*device,
                  {quote.outcome() == Verdict::Outcome::kInvalid
                       ? Verdict::Invalid("quote rejected: " + quote.reason() +
                                          " (the quote must cover this challenge, both "
                                          "certificate requests, and the event log as sent)")
                       : quote,
                   std::nullopt});
  }
  for (const auto& event : evidence.event_log) {
    const std::string digest = crypto::ToHex(event.digest);
    auto known = store_.IsReferenceDigest(event.component, digest);
    if (!known)
      return Record(*device, {Verdict::CouldNotCheck(known.error().message()), std::nullopt});
    if (!*known) {
      return Record(*device, Untrusted("unknown measurement: component \"" + event.component +
                                       "\" reported digest " + digest +
                                       ", which no registered OS release lists"));
    }
  }
  return Record(*device, Issue(*device, *runtime_csr, *app_csr));
}

Outcome Verifier::Issue(const store::Device& device, const crypto::CertificateRequest& runtime_csr,
                        const crypto::CertificateRequest& app_csr) const {
  auto error = [](const Error& e) {
    log::Error("issuing device certificates: {}", e.message());
    return Outcome{Verdict::CouldNotCheck("the tenant CA could not issue certificates"),
                   std::nullopt};
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
  return {Verdict::Valid(),
          wire::AttestationResult{"trusted", *runtime_pem, *app_pem, *ca_pem + *root_pem},
          UnixSeconds(runtime->NotAfter())};
}

}  // namespace aspis::service::attest
