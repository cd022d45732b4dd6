#include "cli/cli.hpp"

#include <CLI/CLI.hpp>

#include "cli/command.hpp"

namespace aspis::cli {

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app("aspis: operate an Aspis security service, and pack images for it", "aspis");
  app.require_subcommand(1);
  app.fallthrough();  // --output may come anywhere, after the verb too
  std::string output = "table";
  app.add_option("--output", output, "table, json or csv (lists)")
      ->check(CLI::IsMember({"table", "json", "csv"}));

  Registry registry;
  AddOperatorCommands(app, registry);
  AddPackageCommands(app, registry);
  AddHardwareCommands(app, registry);
  AddCatalogCommands(app, registry);
  AddProductCommands(app, registry);
  AddDeploymentCommands(app, registry);
  AddDeviceCommands(app, registry);

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }
  Command* command = registry.chosen();
  if (command == nullptr) {
    err << "aspis: no command given (see aspis --help)\n";
    return 1;
  }
  auto result = command->Run();
  if (!result) {
    err << "aspis: " << result.error().message() << "\n";
    return 1;
  }
  command->Format().Print(out, output, *result);
  return 0;
}

}  // namespace aspis::cli
