#pragma once

#include <memory>
#include <string>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace aspis::testing {

struct SwtpmOptions {
  // Manufactured as a TPM vendor would: swtpm_setup makes the endorsement keys (RSA 2048 and ECC)
  // and an EK certificate for each in the TCG NV indices, signed by a local CA of its own.
  bool endorsed = false;
};

// A real software TPM (swtpm) on free 127.0.0.1 ports with its own state directory, stopped on
// destruction. Throws when swtpm cannot start (the test then fails: swtpm is a bootstrap package).
class Swtpm {
 public:
  explicit Swtpm(SwtpmOptions options = {});

  // The tpm2-tss TCTI configuration that reaches it.
  std::string Tcti() const;
  int port() const { return port_; }
  // Endorsed TPMs: a directory holding the certificates of the CA that signed the EK
  // certificates (its root and the issuing CA), as a TPM manufacturer publishes them.
  std::filesystem::path ManufacturerCaDir() const { return ca_.path() / "certificates"; }

 private:
  TempDir ca_;
  TempDir state_;
  int port_ = 0;
  std::unique_ptr<BackgroundProcess> process_;
};

}  // namespace aspis::testing
