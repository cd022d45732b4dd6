// Device<->service messages: attestation evidence arrives before any authentication; check-ins,
// check-in responses and update manifests cross the network too.
#include <cstddef>
#include <cstdint>

#include "wire/attestation.hpp"
#include "wire/check_in.hpp"

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
  return 0;
}
