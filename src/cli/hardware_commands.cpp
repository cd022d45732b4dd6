// `hardware-definition`: the C headers apps include, made from hardware definitions offline, as
// Azure Sphere's `azsphere hardware-definition generate-header|test-header` make them.
#include <CLI/CLI.hpp>

#include <filesystem>

#include "cli/command.hpp"
#include "core/bytes.hpp"
#include "core/file.hpp"
#include "package/hardware_definition.hpp"

namespace aspis::cli {

namespace {

namespace fs = std::filesystem;
using json::Json;

class HeaderCommand : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--hardware-definition-file", definition_,
                     "The hardware definition (JSON); its imports are found beside it")
        ->required();
  }
  Output Format() const override { return {.columns = {"header", "up_to_date"}}; }

 protected:
  // The header the definition makes, and where it goes: inc/hw/<stem>.h beside the definition.
  struct Made {
    fs::path path;
    std::string text;
  };
  Expected<Made> Make() const {
    auto definition = package::HardwareDefinition::Load(definition_);
    if (!definition) return std::unexpected(definition.error());
    const fs::path at = fs::path(definition_).parent_path() / "inc" / "hw" /
                        (fs::path(definition_).stem().string() + ".h");
    return Made{at, definition->Header()};
  }
  std::string definition_;
};

class GenerateHeader final : public HeaderCommand {
 public:
  Expected<Json> Run() override {
    auto made = Make();
    if (!made) return std::unexpected(made.error());
    if (auto ok = file::EnsureDirectory(made->path.parent_path(), 0755); !ok) {
      return std::unexpected(ok.error());
    }
    if (auto ok = file::WriteDurably(made->path, AsBytes(made->text), 0644); !ok) {
      return std::unexpected(ok.error());
    }
    return Json{{"header", made->path.string()}, {"up_to_date", true}};
  }
};

class TestHeader final : public HeaderCommand {
 public:
  Expected<Json> Run() override {
    auto made = Make();
    if (!made) return std::unexpected(made.error());
    auto existing = file::Read(made->path, file::kDefaultReadLimit);
    if (!existing || AsString(*existing) != made->text) {
      return Fail(CoreErrc::kCorrupt, made->path.string() + " is not up to date with " +
                                          definition_ +
                                          ": run aspis hardware-definition generate-header");
    }
    return Json{{"header", made->path.string()}, {"up_to_date", true}};
  }
};

}  // namespace

void AddHardwareCommands(CLI::App& app, Registry& r) {
  auto* noun = app.add_subcommand("hardware-definition", "Hardware definitions (offline)")
                   ->require_subcommand(1);
  r.Add<GenerateHeader>(noun->add_subcommand(
      "generate-header",
      "Write the C header apps include (inc/hw/<name>.h beside the definition)"));
  r.Add<TestHeader>(noun->add_subcommand(
      "test-header", "Check that the C header beside the definition is up to date"));
}

}  // namespace aspis::cli
