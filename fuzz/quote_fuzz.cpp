// Quotes are evidence sent by devices to the verifier. Input: 2-byte big-endian length of the
// TPMS_ATTEST, the TPMS_ATTEST, then the TPMT_SIGNATURE.
#include <cstddef>
#include <cstdint>

#include "rot/quote.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  static const crypto::PrivateKey key = *crypto::PrivateKey::GenerateP256();
  if (size < 2) return 0;
  const std::size_t attest_size = std::min<std::size_t>((data[0] << 8) | data[1], size - 2);
  const rot::Quote quote{Bytes(data + 2, data + 2 + attest_size),
                         Bytes(data + 2 + attest_size, data + size)};
  (void)rot::ParseQuoteBody(quote.attest);
  const Bytes nonce(32, 0);
  (void)rot::VerifyQuote(quote, key.Public(), {nonce, 15, {}});
  return 0;
}
