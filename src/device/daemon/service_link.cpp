#include "device/daemon/service_link.hpp"

#include <fmt/format.h>

#include "wire/device_api.hpp"
#include "wire/errors.hpp"

namespace aspis::device {

Expected<HttpsServiceLink> HttpsServiceLink::Make(wire::Endpoint endpoint,
                                                  std::vector<crypto::Certificate> roots) {
  auto tls = crypto::tls::ClientContext(roots);
  if (!tls) return std::unexpected(tls.error());
  wire::HttpsClient anonymous(endpoint, std::move(*tls));
  return HttpsServiceLink(std::move(endpoint), std::move(roots), std::move(anonymous));
}

Expected<attest::Certificates> HttpsServiceLink::Attest(
    rot::RootOfTrust& rot, const std::vector<wire::MeasurementEvent>& events,
    const Credentials& credentials, Clock::TimePoint now, RetryAfter* retry_after) {
  return attest::Attest(anonymous_, rot, events, credentials.runtime_key(), credentials.app_key(),
                        roots_, now, retry_after);
}

Expected<wire::CheckInResponse> HttpsServiceLink::CheckIn(const wire::CheckIn& report,
                                                          const Credentials& credentials,
                                                          RetryAfter* retry_after) {
  auto tls =
      crypto::tls::ClientContext(roots_, credentials.runtime_chain(), &credentials.runtime_key());
  if (!tls) return std::unexpected(tls.error());
  presenting_.emplace(endpoint_, std::move(*tls));
  return wire::PostCheckIn(*presenting_, report, retry_after);
}

Expected<std::string> HttpsServiceLink::Fetch(std::string_view url, std::uint64_t first,
                                              std::uint64_t length, RetryAfter* retry_after) {
  if (!presenting_) return Fail(wire::WireErrc::kProtocol, "a download before any check-in");
  if (!url.starts_with("/")) {
    return Fail(wire::WireErrc::kProtocol, "a target's URL must be a path on the service");
  }
  auto response = presenting_->Send(
      "GET", url, {}, {{"Range", fmt::format("bytes={}-{}", first, first + length - 1)}});
  if (!response) return std::unexpected(response.error());
  if (response->status == 206 || response->status == 200) return std::move(response->body);
  if (retry_after != nullptr && wire::ReplyOf(response->status) == wire::Reply::kRetry) {
    *retry_after = wire::RetryAfter(*response).value_or(std::chrono::seconds(1));
  }
  return std::unexpected(wire::ErrorOf(*response, "fetching " + std::string(url)));
}

}  // namespace aspis::device
