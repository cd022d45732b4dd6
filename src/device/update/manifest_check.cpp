#include "device/update/manifest_check.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "crypto/dsse.hpp"
#include "crypto/errors.hpp"
#include "wire/attestation.hpp"

namespace aspis::device::update {

namespace {

Error Untrusted(std::string why) {
  return Error(crypto::CryptoErrc::kUntrusted, "update manifest refused: " + std::move(why));
}

}  // namespace

Expected<wire::UpdateManifest> VerifyUpdateManifest(const wire::CheckInResponse& response,
                                                    const ManifestExpectations& expected) {
  auto certificates = crypto::Certificate::ChainFromPem(response.deployment_certificates_pem);
  if (!certificates || certificates->empty()) {
    return std::unexpected(Untrusted("the deployment certificates are unreadable"));
  }
  const crypto::Certificate& signer = certificates->front();
  const auto policies = signer.PolicyOids();
  if (std::find(policies.begin(), policies.end(), wire::kDeploymentCertificatePolicy) ==
          policies.end() ||
      signer.SubjectCommonName() != "Aspis Deployments " + expected.tenant) {
    return std::unexpected(
        Untrusted("it is not signed with a deployment certificate of this device's tenant"));
  }
  // Only CAs of this tenant may stand between the deployment certificate and the pinned root.
  std::vector<crypto::Certificate> tenant_cas;
  for (std::size_t i = 1; i < certificates->size(); ++i) {
    if ((*certificates)[i].SubjectCommonName() == "Aspis Tenant CA " + expected.tenant) {
      tenant_cas.push_back((*certificates)[i]);
    }
  }
  const Verdict chained = crypto::VerifyChain(signer, tenant_cas, expected.roots, expected.now);
  if (!chained.valid()) {
    return std::unexpected(
        Untrusted("the deployment certificate does not chain to the pinned "
                  "platform root through this tenant's CA: " +
                  chained.reason()));
  }

  auto envelope = crypto::dsse::Parse(response.manifest_envelope);
  if (!envelope) return std::unexpected(envelope.error());
  crypto::dsse::TrustedKeys trusted;
  trusted.Add(signer.SubjectPublicKey());
  auto payload = crypto::dsse::Verify(*envelope, wire::kManifestPayloadType, trusted);
  if (!payload) {
    return std::unexpected(
        Untrusted("its signature is not the deployment key's: " + payload.error().message()));
  }
  auto manifest = wire::ParseUpdateManifest(AsString(*payload));
  if (!manifest) return std::unexpected(manifest.error());
  if (manifest->device_id != expected.device_id) {
    return std::unexpected(Untrusted("it is for device " + manifest->device_id));
  }
  if (manifest->sequence <= expected.last_sequence) {
    return std::unexpected(
        Untrusted(fmt::format("its sequence {} is not above {}, the last one accepted (a replay)",
                              manifest->sequence, expected.last_sequence)));
  }
  if (manifest->expires_at <= UnixSeconds(expected.now)) {
    return std::unexpected(
        Untrusted(fmt::format("it expired at Unix time {} (a freeze)", manifest->expires_at)));
  }
  return manifest;
}

}  // namespace aspis::device::update
