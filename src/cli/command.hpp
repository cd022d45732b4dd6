#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"

namespace CLI {
class App;
}

// The shape of every `aspis` verb (Mender v4's cli/actions.hpp): one small object per verb that
// holds its parsed options, registered once with the parser, and run once chosen.
namespace aspis::cli {

// How a result is printed: `--output json` prints the JSON; otherwise `table` when set, else a
// table of `columns` (dotted paths reach nested fields), else the text or JSON as it is.
struct Output {
  std::vector<std::string> columns;
  std::function<void(std::ostream&, const json::Json&)> table;
  void Print(std::ostream& out, std::string_view format, const json::Json& value) const;
};

class Command {
 public:
  virtual ~Command() = default;
  // Adds the verb's options, bound to the command's members.
  virtual void AddOptions(CLI::App* /*verb*/) {}
  // Does the verb's work; the result is printed with Format().
  virtual Expected<json::Json> Run() = 0;
  virtual Output Format() const { return {}; }
};

// The verbs, each bound to its subcommand. Not thread-safe; lives as long as the parse.
class Registry {
 public:
  // Makes a `C` from `args`, lets it add its options to `verb`, and chooses it when `verb` is
  // given on the command line.
  template <class C, class... Args>
  C& Add(CLI::App* verb, Args&&... args) {
    auto command = std::make_unique<C>(std::forward<Args>(args)...);
    C& made = *command;
    Bind(verb, std::move(command));
    made.AddOptions(verb);
    return made;
  }
  // The verb given on the command line, once parsed; null before.
  Command* chosen() const { return chosen_; }

 private:
  void Bind(CLI::App* verb, std::unique_ptr<Command> command);

  std::vector<std::unique_ptr<Command>> commands_;
  Command* chosen_ = nullptr;
};

// Unix seconds as "YYYY-MM-DD HH:MM:SS UTC"; "-" for 0 or a non-number.
std::string UtcTime(const json::Json& seconds);

// Each adds its noun's subcommands.
void AddOperatorCommands(CLI::App& app, Registry& registry);    // the security service's API
void AddDeviceCommands(CLI::App& app, Registry& registry);      // `dev`: the local aspisd
void AddPackageCommands(CLI::App& app, Registry& registry);     // `key`, `image-package`: offline
void AddCatalogCommands(CLI::App& app, Registry& registry);     // `publisher-key-set`, `image`
void AddProductCommands(CLI::App& app, Registry& registry);     // `product`, `device-group`
void AddDeploymentCommands(CLI::App& app, Registry& registry);  // `deployment`
void AddHardwareCommands(CLI::App& app, Registry& registry);    // `hardware-definition`: offline
// `device update --device-group`, under the `device` noun of AddOperatorCommands.
void AddDeviceUpdateCommand(CLI::App& device, Registry& registry);

}  // namespace aspis::cli
