#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.hpp"

// Hardware definitions in Azure Sphere's JSON format, loaded unchanged: a file names peripherals
// ("SAMPLE_LED") either as the chip's own (with the value C code uses, MainCoreHeaderValue, and the
// value an app manifest lists, AppManifestValue) or as a Mapping to a peripheral of a file it
// imports. Apps include the C header made from a definition (`aspis hardware-definition
// generate-header`), and list "$SAMPLE_LED" in their manifests, which packing resolves to the
// chip's value. A definition comes from whoever wrote it (a board vendor, an app developer), so
// everything that reaches a C header is checked to be what the format allows and nothing more.
namespace aspis::package {

// "Gpio", "Pwm", "Adc", "I2cMaster", "SpiMaster", "Uart" (each also an app manifest capability),
// and "int", a constant such as a PWM channel that a manifest never lists.
inline constexpr std::string_view kHardwareTypes[] = {"Gpio",      "Pwm",  "Adc", "I2cMaster",
                                                      "SpiMaster", "Uart", "int"};

struct HardwarePeripheral {
  std::string name;  // a C identifier, unique across a definition and its imports
  std::string type;  // one of kHardwareTypes
  std::string comment;
  // Exactly one of: the name of an imported peripheral of the same type, or the chip's own
  // values (header_value, and manifest_value unless the type is "int").
  std::string mapping;
  std::string header_value;                                               // "(4)", "(-1)"
  std::optional<std::variant<std::int64_t, std::string>> manifest_value;  // 8, "ISU0"
};

struct HardwareDefinitionFile {
  std::filesystem::path path;
  std::string name;                      // Description.Name; may be empty
  std::vector<std::string> top_content;  // Description.MainCoreHeaderFileTopContent, a line each
  std::vector<std::filesystem::path> imports;  // as resolved, in the file's order
  std::vector<HardwarePeripheral> peripherals;
};

class HardwareDefinition {
 public:
  // Loads `path` and, transitively, the files it imports. An import's Path is looked up relative
  // to the importing file's directory, then in each of `search` in order. Errors: kMalformed
  // naming the file and the rule (a file that is not a hardware definition, an unknown type, a
  // mapping to no imported peripheral or to one of another type, a name defined twice, an import
  // cycle, a value that is not one the format allows); kIo when a file cannot be read.
  static Expected<HardwareDefinition> Load(const std::filesystem::path& path,
                                           const std::vector<std::filesystem::path>& search = {});

  // The file Load was given, then the files it imported (each once).
  const std::vector<HardwareDefinitionFile>& files() const { return files_; }
  const HardwareDefinitionFile& top() const { return files_.front(); }

  // The peripheral `name` leads to through its mappings: the chip's own. Null when no file
  // defines `name`.
  const HardwarePeripheral* Resolve(std::string_view name) const;
  // The value an app manifest lists for `name` ("8", "ISU0"), for a manifest's "$name". Errors:
  // kMalformed when no file defines it, or it is a constant ("int") or of another capability
  // than `capability`.
  Expected<std::string> ManifestValue(std::string_view name, std::string_view capability) const;

  // The C header made from the top file, as Azure Sphere's tool writes it (inc/hw/<stem>.h): its
  // top content, an include of each import's header, and "#define NAME VALUE" for each
  // peripheral, its comment above it.
  std::string Header() const;

 private:
  friend class HardwareDefinitionLoader;
  const HardwarePeripheral* Find(std::string_view name) const;

  std::vector<HardwareDefinitionFile> files_;
  // Where each name is defined: (file, peripheral) indices.
  std::map<std::string, std::pair<std::size_t, std::size_t>, std::less<>> by_name_;
};

}  // namespace aspis::package
