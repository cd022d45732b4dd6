#include "device/attest/attester.hpp"

#include <fmt/format.h>

#include "wire/device_api.hpp"
#include "wire/errors.hpp"

namespace aspis::device::attest {

namespace {

// The issued certificate must carry the key that asked for it and chain to the pinned root.
Expected<crypto::Certificate> CheckIssued(std::string_view pem, const crypto::PrivateKey& key,
                                          const std::vector<crypto::Certificate>& chain,
                                          const std::vector<crypto::Certificate>& roots,
                                          Clock::TimePoint now, std::string_view which) {
  auto cert = crypto::Certificate::FromPem(pem);
  if (!cert) {
    return Fail(wire::WireErrc::kProtocol,
                fmt::format("the {} certificate is unreadable: {}", which, cert.error().message()));
  }
  if (!(cert->SubjectPublicKey() == key.Public())) {
    return Fail(wire::WireErrc::kProtocol,
                fmt::format("the {} certificate is not for this device's {} key", which, which));
  }
  const Verdict chained = crypto::VerifyChain(*cert, chain, roots, now);
  if (!chained.valid()) {
    return Fail(wire::WireErrc::kProtocol,
                fmt::format("the {} certificate does not chain to the pinned platform root: {}",
                            which, chained.reason()));
  }
  return cert;
}

}  // namespace

Expected<Certificates> Attest(const wire::HttpsClient& client, rot::RootOfTrust& rot,
                              const std::vector<wire::MeasurementEvent>& event_log,
                              const crypto::PrivateKey& runtime_key,
                              const crypto::PrivateKey& app_key,
                              const std::vector<crypto::Certificate>& trusted_roots,
                              Clock::TimePoint now,
                              std::optional<std::chrono::seconds>* retry_after) {
  if (retry_after != nullptr) retry_after->reset();
  auto identity = rot.GetIdentity();
  if (!identity) return std::unexpected(identity.error());
  auto runtime_csr = crypto::CertificateRequest::Create(runtime_key, identity->device_id);
  if (!runtime_csr) return std::unexpected(runtime_csr.error());
  auto app_csr = crypto::CertificateRequest::Create(app_key, identity->device_id);
  if (!app_csr) return std::unexpected(app_csr.error());

  auto connection = client.Connect();
  if (!connection) return std::unexpected(connection.error());
  wire::AttestationSession session(std::move(*connection));
  // The service's "not before", from the last answer that asked to retry later.
  auto failed = [&](Error error) -> Expected<Certificates> {
    if (retry_after != nullptr) *retry_after = session.retry_after();
    return std::unexpected(std::move(error));
  };
  std::optional<wire::Endorsement> endorsement;
  std::optional<wire::ActivationProof> activation;
  // At most: plain evidence, then with the endorsement, then with the activated credential.
  for (int round = 0; round < 3; ++round) {
    auto challenge = session.GetChallenge();
    if (!challenge) return failed(challenge.error());
    wire::Evidence evidence{.device_id = identity->device_id,
                            .identity_public_key = identity->public_key.Der(),
                            .root_of_trust = rot.Backend() == "tpm2" ? wire::kRootOfTrustTpm
                                                                     : wire::kRootOfTrustSoftware,
                            .event_log = event_log,
                            .endorsement = endorsement,
                            .activation = activation,
                            .nonce = challenge->nonce,
                            .runtime_csr = runtime_csr->Der(),
                            .app_csr = app_csr->Der()};
    auto binding = wire::EvidenceBinding(evidence.nonce, evidence.runtime_csr, evidence.app_csr);
    if (!binding) return std::unexpected(binding.error());
    auto signed_evidence = rot.Attest(*binding);
    if (!signed_evidence) {
      return std::unexpected(std::move(signed_evidence.error()).WithContext("quoting"));
    }
    evidence.quote = {std::move(signed_evidence->quote.attest),
                      std::move(signed_evidence->quote.signature)};
    evidence.boot_pcrs = std::move(signed_evidence->boot_pcrs);
    if (auto& certification = signed_evidence->register_certification) {
      evidence.register_certification =
          wire::Quote{std::move(certification->attest), std::move(certification->signature)};
    }

    auto result = session.Submit(evidence);
    if (!result) return failed(result.error());
    if (result->verdict == wire::kEndorsementRequired && !endorsement) {
      auto endorsed = rot.Endorse();
      if (!endorsed) return std::unexpected(std::move(endorsed.error()).WithContext("endorsement"));
      if (!*endorsed) {
        return Fail(wire::WireErrc::kProtocol,
                    "the service asks for a TPM endorsement of a software root of trust");
      }
      endorsement = wire::Endorsement{std::move((*endorsed)->ek_certificate),
                                      std::move((*endorsed)->ek_public),
                                      std::move((*endorsed)->identity_public)};
      continue;
    }
    if (result->verdict == wire::kActivateCredential && result->credential && endorsement &&
        !activation) {
      auto secret = rot.ActivateCredential(result->credential->credential_blob,
                                           result->credential->encrypted_secret);
      if (!secret) {
        return std::unexpected(std::move(secret.error()).WithContext("credential activation"));
      }
      activation = wire::ActivationProof{std::move(*secret), result->credential->token};
      continue;
    }
    if (result->verdict != wire::kTrusted) {
      return Fail(wire::WireErrc::kProtocol,
                  "unexpected attestation verdict \"" + result->verdict + "\"");
    }
    auto chain = crypto::Certificate::ChainFromPem(result->ca_chain_pem);
    if (!chain) return Fail(wire::WireErrc::kProtocol, "the CA chain in the result is unreadable");
    auto runtime = CheckIssued(result->runtime_certificate_pem, runtime_key, *chain, trusted_roots,
                               now, "runtime");
    if (!runtime) return std::unexpected(runtime.error());
    auto app = CheckIssued(result->app_certificate_pem, app_key, *chain, trusted_roots, now, "app");
    if (!app) return std::unexpected(app.error());
    return Certificates{std::move(*result), std::move(*runtime), std::move(*app)};
  }
  return Fail(wire::WireErrc::kProtocol, "the service kept asking for more evidence");
}

}  // namespace aspis::device::attest
