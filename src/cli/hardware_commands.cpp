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

// Where a definition's header goes: inc/hw/<stem>.h beside it.
fs::path HeaderPath(const fs::path& definition) {
  return definition.parent_path() / "inc" / "hw" / (definition.stem().string() + ".h");
}

class HeaderCommand : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--hardware-definition-file", definition_,
                     "The hardware definition (JSON); its imports are found beside it")
        ->required();
  }
  Output Format() const override { return {.columns = {"header", "up_to_date"}}; }

 protected:
  Expected<std::string> Header() const {
    auto definition = package::HardwareDefinition::Load(definition_);
    if (!definition) return std::unexpected(definition.error());
    return definition->Header();
  }
  std::string definition_;
};

class GenerateHeader final : public HeaderCommand {
 public:
  Expected<Json> Run() override {
    auto header = Header();
    if (!header) return std::unexpected(header.error());
    const fs::path path = HeaderPath(definition_);
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    if (ec)
      return Fail(CoreErrc::kIo, "creating " + path.parent_path().string() + ": " + ec.message());
    if (auto ok = file::WriteDurably(path, AsBytes(*header), 0644); !ok) {
      return std::unexpected(ok.error());
    }
    return Json{{"header", path.string()}, {"up_to_date", true}};
  }
};

class TestHeader final : public HeaderCommand {
 public:
  Expected<Json> Run() override {
    auto header = Header();
    if (!header) return std::unexpected(header.error());
    const fs::path path = HeaderPath(definition_);
    auto existing = file::Read(path, file::kDefaultReadLimit);
    if (!existing || AsString(*existing) != *header) {
      return Fail(CoreErrc::kCorrupt, path.string() + " is not up to date with " + definition_ +
                                          ": run aspis hardware-definition generate-header");
    }
    return Json{{"header", path.string()}, {"up_to_date", true}};
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
