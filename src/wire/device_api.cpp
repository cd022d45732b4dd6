#include "wire/device_api.hpp"

#include <fmt/format.h>

#include "wire/errors.hpp"

namespace aspis::wire {

std::string DeviceImagePath(std::string_view image_id) {
  return "/v1/device/images/" + std::string(image_id);
}

std::string DeviceDeltaPath(std::string_view image_id, std::string_view base_image_id) {
  return DeviceImagePath(image_id) + "/deltas/" + std::string(base_image_id);
}

namespace {

const std::vector<std::pair<std::string, std::string>> kJson = {
    {"Content-Type", "application/json"}};

}  // namespace

Reply ReplyOf(int status) {
  switch (status) {
    case 200:
      return Reply::kOk;
    case 403:
      return Reply::kRefused;
    case 429:
    case 502:
    case 503:
    case 504:
      return Reply::kRetry;
    default:
      return Reply::kProtocol;
  }
}

Error ErrorOf(const HttpResponse& response, std::string_view step) {
  const std::string what = std::string(step) + ": " + ProblemDetail(response);
  switch (ReplyOf(response.status)) {
    case Reply::kRefused:
      return Error(WireErrc::kRefused, what);
    case Reply::kRetry:
      return Error(WireErrc::kUnavailable, what);
    case Reply::kOk:
    case Reply::kProtocol:
      break;
  }
  return Error(WireErrc::kProtocol, fmt::format("{} (HTTP {})", what, response.status));
}

Expected<HttpResponse> AttestationSession::Post(std::string_view path, std::string_view body,
                                                std::string_view step) {
  auto response = connection_.Send("POST", path, body, body.empty() ? decltype(kJson){} : kJson);
  if (!response) return response;
  if (ReplyOf(response->status) != Reply::kOk) {
    retry_after_ = RetryAfter(*response);
    return std::unexpected(ErrorOf(*response, step));
  }
  return response;
}

Expected<Challenge> AttestationSession::GetChallenge() {
  auto response = Post(kChallengePath, {}, "challenge");
  if (!response) return std::unexpected(response.error());
  auto challenge = ParseChallenge(response->body);
  if (!challenge) {
    return Fail(WireErrc::kProtocol, "malformed challenge: " + challenge.error().message());
  }
  return challenge;
}

Expected<AttestationResult> AttestationSession::Submit(const Evidence& evidence) {
  auto response = Post(kAttestationPath, Serialize(evidence), "attestation");
  if (!response) return std::unexpected(response.error());
  auto result = ParseAttestationResult(response->body);
  if (!result) {
    return Fail(WireErrc::kProtocol, "malformed attestation result: " + result.error().message());
  }
  return result;
}

Expected<CheckInResponse> PostCheckIn(const HttpsClient& client, const CheckIn& report,
                                      std::optional<std::chrono::seconds>* retry_after) {
  auto response = client.Send("POST", kCheckInPath, Serialize(report), kJson);
  if (!response) return std::unexpected(response.error());
  if (ReplyOf(response->status) != Reply::kOk) {
    if (retry_after != nullptr) *retry_after = RetryAfter(*response);
    return std::unexpected(ErrorOf(*response, "check-in"));
  }
  return ParseCheckInResponse(response->body);
}

}  // namespace aspis::wire
