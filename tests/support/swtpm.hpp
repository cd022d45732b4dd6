#pragma once

#include <memory>
#include <string>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace aspis::testing {

// A real software TPM (swtpm) on free 127.0.0.1 ports with its own state directory, stopped on
// destruction. Throws when swtpm cannot start (the test then fails: swtpm is a bootstrap package).
class Swtpm {
 public:
  Swtpm();

  // The tpm2-tss TCTI configuration that reaches it.
  std::string Tcti() const;
  int port() const { return port_; }

 private:
  TempDir state_;
  int port_;
  std::unique_ptr<BackgroundProcess> process_;
};

}  // namespace aspis::testing
