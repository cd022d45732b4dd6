// Attestation evidence arrives from devices before any authentication.
#include <cstddef>
#include <cstdint>

#include "wire/attestation.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  const std::string_view text = AsString(ByteView(data, size));
  if (auto evidence = wire::ParseEvidence(text)) {
    (void)wire::ReplayEventLog(evidence->event_log);
    (void)wire::Serialize(*evidence);
  }
  (void)wire::ParseChallenge(text);
  (void)wire::ParseAttestationResult(text);
  return 0;
}
