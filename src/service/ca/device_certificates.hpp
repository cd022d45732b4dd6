#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/key.hpp"
#include "crypto/x509.hpp"
#include "service/ca/tenant_ca.hpp"
#include "service/store/store.hpp"

// A trusted device's two certificates (DESIGN section 4), issued by its tenant's active CA: CN =
// device ID, SAN URI urn:aspis:tenant:<t>:device:<d>, clientAuth, told apart by policy OIDs
// (wire::kRuntimeCertificatePolicy, wire::kAppCertificatePolicy).
namespace aspis::service::ca {

struct DeviceCertificates {
  crypto::Certificate runtime;
  crypto::Certificate app;
  // The issuing tenant CA, then the platform root.
  std::vector<crypto::Certificate> chain;
  // Both certificates by serial, for the CRLs.
  std::vector<store::IssuedCertificate> records;
};

struct DeviceCertificateRequest {
  const store::Device& device;
  const crypto::PublicKey& runtime_key;
  const crypto::PublicKey& app_key;
  Clock::TimePoint now;
  std::chrono::seconds lifetime;
};

// Issues both certificates. They must not be handed out before `records` is in the store
// (Store::RecordAttestation), which refuses them once the device is revoked, so that the CA
// generation's CRL lists every certificate of a revoked device. Thread-safe.
Expected<DeviceCertificates> IssueDeviceCertificates(const TenantCas& cas,
                                                     const crypto::Certificate& platform_root,
                                                     const DeviceCertificateRequest& request);

}  // namespace aspis::service::ca
