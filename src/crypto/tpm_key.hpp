#pragma once

#include <memory>
#include <string_view>

#include "core/error.hpp"
#include "crypto/key.hpp"

// P-256 keys made and held by a TPM 2.0, used through the tpm2-openssl provider. The private key
// is created inside the TPM and never leaves it; what is stored is the TPM's wrapped copy (a
// "TSS2 PRIVATE KEY" PEM), which only that TPM can load. The provider runs in an OpenSSL library
// context of its own: no other operation of the process is routed to the TPM, and within that
// context only key operations are (digests, ciphers and random numbers come from OpenSSL).
//
// The provider keeps its own connection to the TPM for as long as a store or one of its keys is
// alive; a TCTI that serves one connection at a time (swtpm, /dev/tpm0) cannot be shared with
// another user such as the root of trust. Operations on one store's keys are not thread-safe:
// use them from one thread at a time.
namespace aspis::crypto {

class TpmKeyStore {
 public:
  // Loads the provider connected through the tpm2-tss TCTI configuration `tcti`
  // ("tabrmd:bus_type=system", "device:/dev/tpmrm0"); kOpenSsl when it cannot load or reach the
  // TPM. The provider takes its TCTI from the environment (TPM2OPENSSL_TCTI, set here and restored
  // before returning): call this before starting threads that read the environment.
  static Expected<TpmKeyStore> Open(std::string_view tcti);

  // A new ECDSA P-256 signing key in the TPM.
  Expected<PrivateKey> Generate() const;
  // A key from its wrapped copy (PrivateKey::ToPem of a key of this TPM). A PEM that is not a TPM
  // key (a software key) is kUnsupportedKey: it would not be held by the TPM.
  Expected<PrivateKey> Load(std::string_view pem) const;

 private:
  explicit TpmKeyStore(std::shared_ptr<const KeyLibrary> library) : library_(std::move(library)) {}
  Expected<PrivateKey> Wrap(evp_pkey_st* key) const;

  std::shared_ptr<const KeyLibrary> library_;
};

}  // namespace aspis::crypto
