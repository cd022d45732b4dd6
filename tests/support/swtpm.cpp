#include "support/swtpm.hpp"

#include <stdexcept>

namespace aspis::testing {

Swtpm::Swtpm() : port_(FreePort(2)) {
  process_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{
      "swtpm", "socket", "--tpm2", "--server",
      "type=tcp,port=" + std::to_string(port_) + ",bindaddr=127.0.0.1", "--ctrl",
      "type=tcp,port=" + std::to_string(port_ + 1) + ",bindaddr=127.0.0.1", "--tpmstate",
      "dir=" + state_.path().string(), "--flags", "not-need-init,startup-clear"});
  if (!WaitForPort(port_) || !WaitForPort(port_ + 1)) {
    throw std::runtime_error("swtpm did not start on port " + std::to_string(port_));
  }
}

std::string Swtpm::Tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }

}  // namespace aspis::testing
