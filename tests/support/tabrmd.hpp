#pragma once

#include <memory>
#include <string>

#include "support/process.hpp"
#include "support/swtpm.hpp"
#include "support/temp_dir.hpp"

namespace aspis::testing {

// A software TPM behind the TPM2 access broker and resource manager (tpm2-abrmd), so that several
// clients share the TPM at once (aspisd's root of trust and the tpm2-openssl provider), as on a
// device. Brokers register on a private D-Bus session bus that the first instance starts for the
// rest of the test process (setting DBUS_SESSION_BUS_ADDRESS for it and its children). Throws when
// a part cannot start.
class Tabrmd {
 public:
  explicit Tabrmd(SwtpmOptions options = {});
  Tabrmd(const Tabrmd&) = delete;
  Tabrmd& operator=(const Tabrmd&) = delete;
  ~Tabrmd();

  // The tpm2-tss TCTI configuration that reaches the TPM through the broker.
  std::string Tcti() const;
  const Swtpm& tpm() const { return swtpm_; }

 private:
  Swtpm swtpm_;
  TempDir dir_;
  std::string bus_name_;
  std::unique_ptr<BackgroundProcess> broker_;
};

}  // namespace aspis::testing
