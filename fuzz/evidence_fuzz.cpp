// Device<->service messages: attestation evidence arrives before any authentication; check-ins,
// check-in responses and update manifests cross the network too, as do operator API requests.
#include <cstddef>
#include <cstdint>

#include "wire/attestation.hpp"
#include "wire/check_in.hpp"
#include "wire/operator_api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  const std::string_view text = AsString(ByteView(data, size));
  if (auto evidence = wire::ParseEvidence(text)) {
    (void)wire::ReplayEventLog(evidence->event_log);
    (void)wire::Serialize(*evidence);
  }
  (void)wire::ParseChallenge(text);
  (void)wire::ParseAttestationResult(text);
  if (auto check_in = wire::ParseCheckIn(text)) (void)wire::Serialize(*check_in);
  if (auto manifest = wire::ParseUpdateManifest(text)) (void)wire::Serialize(*manifest);
  (void)wire::ParseCheckInResponse(text);
  if (auto fields = wire::api::ParseProductFields(text)) (void)wire::api::Serialize(*fields);
  if (auto fields = wire::api::ParseDeviceGroupFields(text)) (void)wire::api::Serialize(*fields);
  if (auto request = wire::api::ParseDeploymentRequest(text)) (void)wire::api::Serialize(*request);
  (void)wire::api::ParseDeviceGroupAssignment(text);
  (void)wire::api::ParseOsReleasePublication(text);
  return 0;
}
