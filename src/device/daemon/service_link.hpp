#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/tls.hpp"
#include "crypto/x509.hpp"
#include "device/attest/attester.hpp"
#include "device/daemon/credentials.hpp"
#include "rot/root_of_trust.hpp"
#include "wire/attestation.hpp"
#include "wire/check_in.hpp"
#include "wire/https_client.hpp"

// The security service as the device's loop sees it: attestation, check-in and the targets' bytes.
// aspisd talks HTTPS (HttpsServiceLink); tests pass fakes. Answers are untrusted: the caller
// verifies certificates and manifests itself.
namespace aspis::device {

// When the service asked to be tried again no sooner than a delay (429 or 503 with Retry-After),
// calls set `*retry_after` to it, and leave it empty otherwise.
using RetryAfter = std::optional<std::chrono::seconds>;

class ServiceLink {
 public:
  virtual ~ServiceLink() = default;

  // One attestation with `credentials`' keys (attest::Attest). Errors as attest::Attest's.
  virtual Expected<attest::Certificates> Attest(rot::RootOfTrust& rot,
                                                const std::vector<wire::MeasurementEvent>& events,
                                                const Credentials& credentials,
                                                Clock::TimePoint now, RetryAfter* retry_after) = 0;

  // One check-in, presenting `credentials`' runtime certificate. Errors (WireErrc): kRefused when
  // the service refuses that certificate, else the transport's.
  virtual Expected<wire::CheckInResponse> CheckIn(const wire::CheckIn& report,
                                                  const Credentials& credentials,
                                                  RetryAfter* retry_after) = 0;

  // Bytes [first, first + length) of the target at `url` (a path on the service), as the service
  // sent them, presenting the runtime certificate of the last CheckIn. Errors: the transport's, or
  // the service's refusal.
  virtual Expected<std::string> Fetch(std::string_view url, std::uint64_t first,
                                      std::uint64_t length, RetryAfter* retry_after) = 0;
};

// The service at `endpoint`, whose server certificate must chain to `roots` (the trust bundle).
class HttpsServiceLink final : public ServiceLink {
 public:
  static Expected<HttpsServiceLink> Make(wire::Endpoint endpoint,
                                         std::vector<crypto::Certificate> roots);

  Expected<attest::Certificates> Attest(rot::RootOfTrust& rot,
                                        const std::vector<wire::MeasurementEvent>& events,
                                        const Credentials& credentials, Clock::TimePoint now,
                                        RetryAfter* retry_after) override;
  Expected<wire::CheckInResponse> CheckIn(const wire::CheckIn& report,
                                          const Credentials& credentials,
                                          RetryAfter* retry_after) override;
  Expected<std::string> Fetch(std::string_view url, std::uint64_t first, std::uint64_t length,
                              RetryAfter* retry_after) override;

 private:
  HttpsServiceLink(wire::Endpoint endpoint, std::vector<crypto::Certificate> roots,
                   wire::HttpsClient anonymous)
      : endpoint_(std::move(endpoint)),
        roots_(std::move(roots)),
        anonymous_(std::move(anonymous)) {}

  wire::Endpoint endpoint_;
  std::vector<crypto::Certificate> roots_;
  wire::HttpsClient anonymous_;                  // attestation presents no certificate
  std::optional<wire::HttpsClient> presenting_;  // the last check-in's, for its downloads
};

}  // namespace aspis::device
