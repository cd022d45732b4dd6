// DSSE envelopes arrive from the network (update manifests) and from package files.
#include <cstddef>
#include <cstdint>

#include "crypto/dsse.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  static const crypto::PrivateKey key = *crypto::PrivateKey::GenerateP256();
  static const crypto::dsse::TrustedKeys trusted = [] {
    crypto::dsse::TrustedKeys keys;
    keys.Add(key.Public());
    return keys;
  }();
  auto envelope = crypto::dsse::Parse(AsString(ByteView(data, size)));
  if (!envelope) return 0;
  (void)crypto::dsse::Verify(*envelope, envelope->payload_type, trusted);
  (void)crypto::dsse::Serialize(*envelope);
  return 0;
}
