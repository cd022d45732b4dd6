// A TPM device's endorsement, checked by the verifier before any credential is made: the EK
// certificate as read from the TPM's NV (a DER certificate, maybe followed by padding), the EK's
// and the identity key's public areas. Input: three parts, each after a 2-byte big-endian length.
#include <cstddef>
#include <cstdint>

#include "rot/endorsement.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  static const crypto::PublicKey identity = crypto::PrivateKey::GenerateP256()->Public();
  ByteView rest(data, size);
  auto take = [&rest] {
    if (rest.size() < 2) return Bytes{};
    const std::size_t n = std::min<std::size_t>((rest[0] << 8) | rest[1], rest.size() - 2);
    Bytes part(rest.begin() + 2, rest.begin() + 2 + static_cast<std::ptrdiff_t>(n));
    rest = rest.subspan(2 + n);
    return part;
  };
  rot::Endorsement e;
  e.ek_certificate = take();
  e.ek_public = take();
  e.identity_public = take();
  auto der = rot::LeadingDer(e.ek_certificate);
  if (!der) return 0;
  if (auto certificate = crypto::ForeignCertificate::FromDer(*der)) {
    (void)certificate->IssuerName();
    (void)certificate->SubjectPublicKeyInfo();
    (void)rot::CheckEndorsement(*certificate, e, identity);
  }
  return 0;
}
