#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "wire/attestation.hpp"
#include "wire/check_in.hpp"
#include "wire/https_client.hpp"

// The device<->service HTTP contract (DESIGN sections 4 and 5), in one place: the routes, what each
// HTTP status means to a device, and typed clients for attestation and check-in. The service
// registers its handlers on these paths; aspisd reaches them only through these clients.
namespace aspis::wire {

inline constexpr char kChallengePath[] = "/v1/attestation/challenge";
inline constexpr char kAttestationPath[] = "/v1/attestation";
inline constexpr char kCheckInPath[] = "/v1/device/check-in";
inline constexpr char kDeviceStatusPath[] = "/v1/device/status";
// A target image's package, in ranges (Range: bytes=FIRST-LAST) of at most kImageRangeSize bytes:
// the device asks for no more, and the service serves no more.
inline constexpr char kDeviceImagePath[] = "/v1/device/images/{image}";
inline constexpr std::uint64_t kImageRangeSize = std::uint64_t{1} << 20;
std::string DeviceImagePath(std::string_view image_id);
// The delta that rebuilds target `image` from the installed image `base`, in ranges as above.
inline constexpr char kDeviceDeltaPath[] = "/v1/device/images/{image}/deltas/{base}";
std::string DeviceDeltaPath(std::string_view image_id, std::string_view base_image_id);

// What an answer means to a device, by HTTP status: the one table both halves follow.
enum class Reply {
  kOk,        // 200
  kRefused,   // 403: untrusted, revoked, or a certificate the service does not accept
  kRetry,     // 429, 502, 503, 504: later (after Retry-After, when given)
  kProtocol,  // anything else: a bug on one side, not retried sooner than the backoff
};
Reply ReplyOf(int status);

// The Error for an answer that is not kOk (WireErrc kRefused, kUnavailable or kProtocol), naming
// `step` and carrying the service's explanation.
Error ErrorOf(const HttpResponse& response, std::string_view step);

// Attestation on one TLS connection: a challenge, then evidence, as many rounds as the service
// asks for. Blocking; not thread-safe.
class AttestationSession {
 public:
  explicit AttestationSession(HttpsConnection connection) : connection_(std::move(connection)) {}

  Expected<Challenge> GetChallenge();
  // The service's answer to `evidence`: the certificates, or what it asks for next.
  Expected<AttestationResult> Submit(const Evidence& evidence);
  // The Retry-After of the last answer that asked to retry later.
  std::optional<std::chrono::seconds> retry_after() const { return retry_after_; }

 private:
  Expected<HttpResponse> Post(std::string_view path, std::string_view body, std::string_view step);

  HttpsConnection connection_;
  std::optional<std::chrono::seconds> retry_after_;
};

// A check-in over `client`, whose TLS context presents the device's runtime certificate. Sets
// `*retry_after` when the service asks to retry later.
Expected<CheckInResponse> PostCheckIn(const HttpsClient& client, const CheckIn& report,
                                      std::optional<std::chrono::seconds>* retry_after);

}  // namespace aspis::wire
