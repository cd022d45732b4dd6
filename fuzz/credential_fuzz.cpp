// The security service makes credentials for TPM2_ActivateCredential from an EK public area and an
// object name that devices send. Both parsers and the EK checks are fuzzed, up to the full
// computation when the input is acceptable. Input: a marshaled TPM2B_PUBLIC (seeds: EKs from
// swtpm), also tried as an object name.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "rot/credential.hpp"

namespace {

// The ECC EK (TCG template L-2) of fuzz/corpus/credential_fuzz/ek-ecc-p256.pub.
constexpr char kEccEk[] =
    "007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa000600"
    "8000430010000300100020b0384076d08f5f93d291f9e02b313bb26b57356c0a2f9d26d48ccac3867a2417002087"
    "33c798608e45a4bc337fdc8a14219662d45dc74d5608073e5636d9a5a7e62a";

constexpr std::size_t kTpm2bHeader = 2;
// A credential blob for a full-size secret: integrityHMAC and the encrypted TPM2B_DIGEST.
constexpr std::size_t kBlobSize = kTpm2bHeader + (2 + 32) + (2 + aspis::rot::kMaxCredentialSecret);

void CheckShape(const aspis::Expected<aspis::rot::Credential>& credential) {
  if (!credential) return;
  const std::size_t secret = credential->encrypted_secret.size();
  // ECC: a TPMS_ECC_POINT of two 32-byte coordinates; RSA: a 2048-bit OAEP ciphertext.
  if (credential->credential_blob.size() != kBlobSize ||
      (secret != kTpm2bHeader + 2 * (2 + 32) && secret != kTpm2bHeader + 256)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  static const Bytes ek = *HexDecode(kEccEk);
  static const Bytes name = *rot::ObjectName(ek);
  const Bytes secret(rot::kMaxCredentialSecret, 0x42);
  const ByteView input(data, size);
  (void)rot::ObjectName(input);
  CheckShape(rot::MakeCredential(input, name, secret));
  CheckShape(rot::MakeCredential(ek, input, secret));
  return 0;
}
