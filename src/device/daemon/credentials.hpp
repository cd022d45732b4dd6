#pragma once

#include <filesystem>
#include <optional>
#include <vector>

#include "core/error.hpp"
#include "core/file.hpp"
#include "crypto/key.hpp"
#include "crypto/tpm_key.hpp"
#include "crypto/x509.hpp"
#include "device/attest/attester.hpp"

// The device's two certificate keys and the certificates of its last trusted attestation, under
// the state directory:
//   runtime.key (0600)        the runtime key, used by aspisd alone (check-in, downloads, reports),
//                             on the software backend
//   runtime.tpm-key (0600)    instead, on the TPM backend: the TPM's wrapped copy of a runtime key
//                             that never leaves the TPM (useless on any other device)
//   runtime-certificate.pem   the runtime certificate, then the tenant CA chain
//   app/key.pem (0600)        the app key, which the sandbox will expose only to apps holding
//   app/certificate.pem       DeviceAuthentication, with the app certificate and chain
// Keys are made once and kept across attestations; every write is durable.
namespace aspis::device {

class Credentials {
 public:
  // Loads the keys, making any that is missing, and the stored certificates if present. With
  // `tpm`, the runtime key is held by that TPM (and a software runtime key left from the software
  // backend is deleted). A certificate that cannot be read, or that is not for its key, is ignored
  // (the next attestation replaces it).
  // Every file goes through `files`.
  static Expected<Credentials> Open(const std::filesystem::path& state_dir,
                                    const crypto::TpmKeyStore* tpm = nullptr,
                                    file::FileSystem& files = file::RealFileSystem());

  const crypto::PrivateKey& runtime_key() const { return runtime_key_; }
  const crypto::PrivateKey& app_key() const { return app_key_; }
  const std::optional<crypto::Certificate>& runtime_certificate() const { return runtime_cert_; }
  const std::optional<crypto::Certificate>& app_certificate() const { return app_cert_; }
  // The runtime certificate, then its CA chain: what aspisd presents in mutual TLS. Empty when
  // there is no runtime certificate.
  const std::vector<crypto::Certificate>& runtime_chain() const { return runtime_chain_; }

  Expected<void> Store(const attest::Certificates& issued);
  // Removes both certificates durably (the service refused the device).
  Expected<void> Drop();

 private:
  Credentials(std::filesystem::path dir, file::FileSystem& files, crypto::PrivateKey runtime_key,
              crypto::PrivateKey app_key)
      : dir_(std::move(dir)),
        files_(&files),
        runtime_key_(std::move(runtime_key)),
        app_key_(std::move(app_key)) {}

  std::filesystem::path dir_;
  file::FileSystem* files_;
  crypto::PrivateKey runtime_key_;
  crypto::PrivateKey app_key_;
  std::optional<crypto::Certificate> runtime_cert_;
  std::optional<crypto::Certificate> app_cert_;
  std::vector<crypto::Certificate> runtime_chain_;
};

}  // namespace aspis::device
