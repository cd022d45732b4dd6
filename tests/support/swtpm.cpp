#include "support/swtpm.hpp"

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace aspis::testing {

namespace {

// swtpm_setup with EK certificates from swtpm_localca, whose CA lives in `ca`.
void Manufacture(const std::filesystem::path& state, const std::filesystem::path& ca) {
  std::ofstream(ca / "localca.conf") << "statedir = " << ca.string() << "\n"
                                     << "signingkey = " << (ca / "signkey.pem").string() << "\n"
                                     << "issuercert = " << (ca / "issuercert.pem").string() << "\n"
                                     << "certserial = " << (ca / "certserial").string() << "\n";
  std::ofstream(ca / "localca.options") << "--platform-manufacturer Aspis\n";
  std::ofstream(ca / "setup.conf")
      << "create_certs_tool = swtpm_localca\n"
      << "create_certs_tool_config = " << (ca / "localca.conf").string() << "\n"
      << "create_certs_tool_options = " << (ca / "localca.options").string() << "\n"
      << "active_pcr_banks = sha256\n";
  const auto result = RunProcess({"swtpm_setup", "--tpm2", "--tpmstate", state.string(), "--config",
                                  (ca / "setup.conf").string(), "--create-ek-cert", "--overwrite"});
  if (result.exit_code != 0) throw std::runtime_error("swtpm_setup failed: " + result.output);
  const auto certificates = ca / "certificates";
  std::filesystem::create_directories(certificates);
  for (const char* name : {"swtpm-localca-rootca-cert.pem", "issuercert.pem"}) {
    std::filesystem::copy_file(ca / name, certificates / name);
  }
}

}  // namespace

Swtpm::Swtpm(SwtpmOptions options) {
  if (options.endorsed) Manufacture(state_.path(), ca_.path());
  // Chosen just before swtpm binds them, not before manufacturing (seconds under load), so that
  // tests running beside this one have no time to take them.
  port_ = FreePort(2);
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
