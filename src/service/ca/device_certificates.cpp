#include "service/ca/device_certificates.hpp"

#include "wire/attestation.hpp"

namespace aspis::service::ca {

Expected<DeviceCertificates> IssueDeviceCertificates(const TenantCas& cas,
                                                     const crypto::Certificate& platform_root,
                                                     const DeviceCertificateRequest& request) {
  const store::Device& device = request.device;
  auto signer = cas.Active(device.tenant_id);
  if (!signer) return std::unexpected(signer.error());
  const crypto::Certificate& ca_cert = signer->generation.certificate;
  auto profile = [&](const char* policy) {
    return crypto::CertificateProfile{.common_name = device.id,
                                      .not_before = request.now - 5min,
                                      .lifetime = request.lifetime,
                                      .client_auth = true,
                                      .san_uris = {wire::DeviceUri({device.tenant_id, device.id})},
                                      .policy_oids = {policy}};
  };
  auto runtime = crypto::Issue(ca_cert, signer->key, request.runtime_key,
                               profile(wire::kRuntimeCertificatePolicy));
  if (!runtime) return std::unexpected(runtime.error());
  auto app =
      crypto::Issue(ca_cert, signer->key, request.app_key, profile(wire::kAppCertificatePolicy));
  if (!app) return std::unexpected(app.error());
  const std::int64_t expiry = UnixSeconds(runtime->NotAfter());
  const std::int64_t generation = signer->generation.number;
  std::vector<store::IssuedCertificate> records{
      {runtime->SerialHex(), device.tenant_id, device.id, generation, expiry},
      {app->SerialHex(), device.tenant_id, device.id, generation, expiry}};
  return DeviceCertificates{
      std::move(*runtime), std::move(*app), {ca_cert, platform_root}, std::move(records)};
}

}  // namespace aspis::service::ca
