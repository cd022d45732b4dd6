// Signed TPM structures are evidence sent by devices to the verifier: quotes and NV
// certifications (TPMS_ATTEST). The structure parser and the coverage checks are fuzzed directly,
// not behind the signature check, which random input never passes. Input: a TPMS_ATTEST.
#include <cstddef>
#include <cstdint>

#include "rot/quote.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  static const crypto::PrivateKey key = *crypto::PrivateKey::GenerateP256();
  static const Bytes nv_name = *rot::NvPcrName();
  const ByteView attest(data, size);
  if (auto body = rot::ParseAttest(attest)) {
    const std::vector<crypto::Digest> values(rot::kBootPcrs.size());
    (void)rot::CheckQuoteCovers(*body, rot::BootPcrMask(), values);
    (void)rot::CheckNvCertifies(*body, nv_name, crypto::Digest{});
  }
  rot::AttestBody body;
  (void)rot::VerifySignedAttest({Bytes(attest.begin(), attest.end()), {}}, key.Public(),
                                rot::kAttestQuote, Bytes(32, 0), &body);
  return 0;
}
