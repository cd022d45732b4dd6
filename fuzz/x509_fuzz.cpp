// Keys, certificates and certificate requests from devices, users and files.
#include <cstddef>
#include <cstdint>

#include "crypto/key.hpp"
#include "crypto/x509.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  const ByteView bytes(data, size);
  const std::string_view text = AsString(bytes);
  if (auto cert = crypto::Certificate::FromDer(bytes)) {
    (void)cert->SubjectCommonName();
    (void)cert->SanUris();
    (void)cert->PolicyOids();
    (void)cert->NotAfter();
    (void)cert->IsCa();
  }
  (void)crypto::Certificate::ChainFromPem(text);
  if (auto csr = crypto::CertificateRequest::FromDer(bytes)) {
    (void)csr->VerifySignature();
    (void)csr->SubjectCommonName();
  }
  (void)crypto::CertificateRequest::FromPem(text);
  if (auto key = crypto::PublicKey::FromDer(bytes)) (void)key->Verify(bytes, bytes);
  (void)crypto::PublicKey::FromPem(text);
  (void)crypto::PrivateKey::FromPem(text);
  (void)crypto::EcdsaDerToRs(bytes);
  return 0;
}
