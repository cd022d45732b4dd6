#include "device/cli/aspisd_cli.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>

#include "core/json.hpp"
#include "rot/root_of_trust.hpp"

namespace aspis::device {

namespace {

constexpr char kDefaultStateDir[] = "/var/lib/aspisd";

int Report(const Error& error, std::ostream& err) {
  err << "aspisd: " << error.message() << "\n";
  return 1;
}

int PrintIdentity(rot::RootOfTrust& rot, const std::string& output, std::ostream& out,
                  std::ostream& err) {
  auto identity = rot.GetIdentity();
  if (!identity) return Report(identity.error(), err);
  auto pem = identity->public_key.ToPem();
  if (!pem) return Report(pem.error(), err);
  if (output == "json") {
    out << json::Json{{"device_id", identity->device_id},
                      {"backend", rot.Backend()},
                      {"register_index", rot.RegisterIndex()},
                      {"public_key_pem", *pem}}
               .dump(2)
        << "\n";
  } else {
    out << "Device ID:   " << identity->device_id << "\n"
        << "Backend:     " << rot.Backend() << "\n"
        << "Register:    " << rot.RegisterIndex() << "\n"
        << "Public key:\n"
        << *pem;
  }
  return 0;
}

}  // namespace

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app("aspisd: the Aspis device runtime", "aspisd");
  app.require_subcommand(1);
  auto* identity = app.add_subcommand("identity", "Device identity in the root of trust");
  identity->require_subcommand(1);

  rot::Config config;
  config.state_dir = kDefaultStateDir;
  std::string state_dir = kDefaultStateDir;
  std::string output = "table";

  auto* init = identity->add_subcommand(
      "init", "Create the identity key, counters and state (idempotent) and show the identity");
  init->add_option("--rot", config.backend, "Root-of-trust backend")
      ->check(CLI::IsMember({"software", "tpm2"}))
      ->required();
  init->add_option("--tcti", config.tcti,
                   "tpm2-tss TCTI, e.g. device:/dev/tpmrm0 or swtpm:port=2321")
      ->capture_default_str();
  init->add_option("--register", config.register_index, "Measurement register (PCR) index")
      ->capture_default_str();
  init->add_option("--state", state_dir, "State directory")->capture_default_str();
  init->add_option("--output", output)->check(CLI::IsMember({"table", "json"}));

  auto* show = identity->add_subcommand("show", "Show the device ID and identity public key");
  show->add_option("--state", state_dir, "State directory")->capture_default_str();
  show->add_option("--output", output)->check(CLI::IsMember({"table", "json"}));

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }

  if (init->parsed()) {
    config.state_dir = state_dir;
    auto rot = rot::Initialize(config);
    if (!rot) return Report(rot.error(), err);
    return PrintIdentity(**rot, output, out, err);
  }
  auto rot = rot::Open(state_dir);
  if (!rot) return Report(rot.error(), err);
  return PrintIdentity(**rot, output, out, err);
}

}  // namespace aspis::device
