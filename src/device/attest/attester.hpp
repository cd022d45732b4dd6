#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "core/error.hpp"
#include "crypto/key.hpp"
#include "crypto/x509.hpp"
#include "rot/root_of_trust.hpp"
#include "wire/attestation.hpp"
#include "wire/https_client.hpp"

// The device half of attestation (DESIGN section 4): one attestation on one new TLS connection.
namespace aspis::device::attest {

// What a trusted attestation gives the device: both certificates, parsed and checked to belong to
// the keys that asked for them and to chain to the pinned platform root.
struct Certificates {
  wire::AttestationResult result;  // as received (PEM)
  crypto::Certificate runtime;
  crypto::Certificate app;
};

// Fetches a challenge, has the root of trust sign what the verifier requires over the nonce and
// both CSRs, posts the evidence and checks the answer. The first time a TPM device attests, the
// service asks for its endorsement and then for a credential only its TPM can activate: each is a
// further challenge and evidence on the same connection. `event_log` is what was extended into the
// register, in order.
// Errors (WireErrc): kRefused with the service's one generic refusal when the device is untrusted;
// kUnavailable, kTimeout, kTls when the service cannot be reached (retry later); kProtocol when
// the answer is malformed or its certificates are not for these keys. When the service answered
// 429 or 503 with Retry-After, `*retry_after` (when given) is set to it, and left empty otherwise:
// the device must not try again sooner (see Backoff::NextDelay). Calls for one `rot` must be
// serialized (a root of trust is not thread-safe).
Expected<Certificates> Attest(const wire::HttpsClient& client, rot::RootOfTrust& rot,
                              const std::vector<wire::MeasurementEvent>& event_log,
                              const crypto::PrivateKey& runtime_key,
                              const crypto::PrivateKey& app_key,
                              const std::vector<crypto::Certificate>& trusted_roots,
                              Clock::TimePoint now,
                              std::optional<std::chrono::seconds>* retry_after = nullptr);

}  // namespace aspis::device::attest
