#include "package/hardware_definition.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <variant>

#include <fmt/format.h>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "package/errors.hpp"

namespace aspis::package {

namespace fs = std::filesystem;
using json::Json;

namespace {

constexpr std::size_t kMaxFileSize = std::size_t{1} << 20;
constexpr std::size_t kMaxFiles = 64;
constexpr std::size_t kMaxPeripherals = 4096;
constexpr std::size_t kMaxText = 1024;
constexpr std::size_t kMaxTopLines = 256;

Error Malformed(const fs::path& file, std::string_view rule) {
  return Error(PackageErrc::kMalformed, file.string() + ": " + std::string(rule));
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 128 || std::isdigit(static_cast<unsigned char>(s[0])) != 0) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
  });
}

// One line of text for a C comment: printable, no line break (which would end the comment).
bool IsLine(std::string_view s) {
  return s.size() <= kMaxText && std::none_of(s.begin(), s.end(), [](char c) {
           return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
         });
}

// "(4)", "(-1)": a parenthesised integer, the only header values the format has.
bool IsHeaderValue(std::string_view s) {
  if (s.size() < 3 || s.size() > 13 || s.front() != '(' || s.back() != ')') return false;
  std::string_view digits = s.substr(1, s.size() - 2);
  if (digits.front() == '-') digits.remove_prefix(1);
  return !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

// "ISU0", "PWM-CONTROLLER-2".
bool IsManifestName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
  });
}

Expected<std::string> OptionalString(const Json& object, const char* key, const fs::path& file,
                                     std::string_view where) {
  const auto it = object.find(key);
  if (it == object.end()) return std::string();
  if (!it->is_string()) {
    return std::unexpected(Malformed(file, std::string(where) + key + " is not a string"));
  }
  return it->get<std::string>();
}

Expected<HardwarePeripheral> ParsePeripheral(const Json& entry, const fs::path& file) {
  if (!entry.is_object()) return std::unexpected(Malformed(file, "a peripheral is not an object"));
  HardwarePeripheral p;
  auto name = OptionalString(entry, "Name", file, "a peripheral's ");
  if (!name) return std::unexpected(name.error());
  p.name = std::move(*name);
  if (!IsIdentifier(p.name)) {
    return std::unexpected(Malformed(file, "a peripheral's Name is not a C identifier"));
  }
  const std::string where = "peripheral " + p.name + ": ";
  for (const auto& item : entry.items()) {
    static constexpr std::string_view kKeys[] = {
        "Name", "Type", "Comment", "Mapping", "MainCoreHeaderValue", "AppManifestValue"};
    if (std::find(std::begin(kKeys), std::end(kKeys), item.key()) == std::end(kKeys)) {
      return std::unexpected(Malformed(file, fmt::format("{}unknown key {}", where, item.key())));
    }
  }
  auto type = OptionalString(entry, "Type", file, where);
  auto comment = OptionalString(entry, "Comment", file, where);
  auto mapping = OptionalString(entry, "Mapping", file, where);
  auto header = OptionalString(entry, "MainCoreHeaderValue", file, where);
  for (const auto* field : {&type, &comment, &mapping, &header}) {
    if (!*field) return std::unexpected(field->error());
  }
  p.type = std::move(*type);
  p.comment = std::move(*comment);
  p.mapping = std::move(*mapping);
  p.header_value = std::move(*header);
  if (std::find(std::begin(kHardwareTypes), std::end(kHardwareTypes), p.type) ==
      std::end(kHardwareTypes)) {
    return std::unexpected(Malformed(file, where + "unknown Type \"" + p.type + "\""));
  }
  if (!IsLine(p.comment)) {
    return std::unexpected(Malformed(file, where + "the Comment is not one line of text"));
  }
  const auto manifest = entry.find("AppManifestValue");
  if (!p.mapping.empty()) {
    if (!IsIdentifier(p.mapping)) {
      return std::unexpected(Malformed(file, where + "the Mapping is not a peripheral's name"));
    }
    if (!p.header_value.empty() || manifest != entry.end()) {
      return std::unexpected(
          Malformed(file, where + "has a Mapping and values of its own (MainCoreHeaderValue, "
                                  "AppManifestValue): it must have one or the other"));
    }
    return p;
  }
  if (!IsHeaderValue(p.header_value)) {
    return std::unexpected(
        Malformed(file, where + "has no Mapping, and its MainCoreHeaderValue is not like \"(4)\""));
  }
  if (p.type == "int") {
    if (manifest != entry.end()) {
      return std::unexpected(
          Malformed(file, where + "is a constant (int): an app manifest never lists it"));
    }
    return p;
  }
  if (manifest == entry.end()) {
    return std::unexpected(Malformed(file, where + "has no AppManifestValue"));
  }
  if (p.type == "Gpio") {
    if (!manifest->is_number_integer() || manifest->get<std::int64_t>() < 0 ||
        manifest->get<std::int64_t>() > 0xffff) {
      return std::unexpected(
          Malformed(file, where + "a Gpio's AppManifestValue is not a GPIO number"));
    }
    p.manifest_value = manifest->get<std::int64_t>();
  } else {
    if (!manifest->is_string() || !IsManifestName(manifest->get<std::string>())) {
      return std::unexpected(
          Malformed(file, where + "the AppManifestValue is not a name like \"ISU0\""));
    }
    p.manifest_value = manifest->get<std::string>();
  }
  return p;
}

Expected<HardwareDefinitionFile> ParseFile(const fs::path& path) {
  auto bytes = file::Read(path, kMaxFileSize);
  if (!bytes) return std::unexpected(std::move(bytes.error()).WithContext(path.string()));
  auto doc = json::Parse(AsString(*bytes));
  if (!doc || !doc->is_object()) {
    return std::unexpected(Malformed(path, "is not a JSON object"));
  }
  const Json metadata = doc->value("Metadata", Json());
  if (!metadata.is_object() ||
      metadata.value("Type", Json()) != Json("Azure Sphere Hardware Definition") ||
      metadata.value("Version", Json()) != Json(1)) {
    return std::unexpected(
        Malformed(path,
                  "is not a hardware definition (Metadata: Type \"Azure Sphere Hardware "
                  "Definition\", Version 1)"));
  }
  HardwareDefinitionFile out;
  out.path = path;
  const Json description = doc->value("Description", Json::object());
  if (!description.is_object()) {
    return std::unexpected(Malformed(path, "Description is not an object"));
  }
  auto name = OptionalString(description, "Name", path, "Description.");
  if (!name) return std::unexpected(name.error());
  out.name = std::move(*name);
  const Json top = description.value("MainCoreHeaderFileTopContent", Json::array());
  if (!top.is_array() || top.size() > kMaxTopLines) {
    return std::unexpected(
        Malformed(path, "Description.MainCoreHeaderFileTopContent is not an array of lines"));
  }
  for (const auto& line : top) {
    if (!line.is_string() || !IsLine(line.get<std::string>())) {
      return std::unexpected(Malformed(
          path, "Description.MainCoreHeaderFileTopContent holds something not one line of text"));
    }
    out.top_content.push_back(line.get<std::string>());
  }
  const Json imports = doc->value("Imports", Json::array());
  if (!imports.is_array() || imports.size() > kMaxFiles) {
    return std::unexpected(Malformed(path, "Imports is not an array"));
  }
  for (const auto& import : imports) {
    const Json where = import.is_object() ? import.value("Path", Json()) : Json();
    if (!where.is_string() || where.get<std::string>().empty()) {
      return std::unexpected(Malformed(path, "an import has no Path"));
    }
    out.imports.emplace_back(where.get<std::string>());
  }
  const Json peripherals = doc->value("Peripherals", Json::array());
  if (!peripherals.is_array() || peripherals.size() > kMaxPeripherals) {
    return std::unexpected(Malformed(path, "Peripherals is not an array"));
  }
  for (const auto& entry : peripherals) {
    auto p = ParsePeripheral(entry, path);
    if (!p) return std::unexpected(p.error());
    out.peripherals.push_back(std::move(*p));
  }
  return out;
}

}  // namespace

// Loads files depth first, imports before their importer, each once.
class HardwareDefinitionLoader {
 public:
  explicit HardwareDefinitionLoader(const std::vector<fs::path>& search) : search_(search) {}

  // Loads `path` (and its imports): the indices of the files it sees, itself last.
  Expected<std::set<std::size_t>> Load(const fs::path& path) {
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(path, ec);
    if (ec) return Fail(PackageErrc::kIo, path.string() + ": " + ec.message());
    if (const auto done = seen_.find(canonical); done != seen_.end()) return done->second;
    if (std::find(loading_.begin(), loading_.end(), canonical) != loading_.end()) {
      return std::unexpected(Malformed(path, "imports itself (an import cycle)"));
    }
    if (loading_.size() + seen_.size() >= kMaxFiles) {
      return std::unexpected(Malformed(path, "imports too many files"));
    }
    auto parsed = ParseFile(canonical);
    if (!parsed) return std::unexpected(parsed.error());
    loading_.push_back(canonical);
    std::set<std::size_t> visible;  // the files this one's mappings may name
    for (auto& import : parsed->imports) {
      auto found = Find(canonical.parent_path(), import);
      if (!found)
        return std::unexpected(
            Malformed(path, "imports " + import.string() + ", which is not found"));
      import = *found;
      auto imported = Load(*found);
      if (!imported) return std::unexpected(imported.error());
      visible.insert(imported->begin(), imported->end());
    }
    loading_.pop_back();
    const std::size_t index = definition_.files_.size();
    for (std::size_t i = 0; i < parsed->peripherals.size(); ++i) {
      const auto& p = parsed->peripherals[i];
      if (!definition_.by_name_.emplace(p.name, std::pair{index, i}).second) {
        return std::unexpected(Malformed(path, p.name + " is defined twice"));
      }
      if (p.mapping.empty()) continue;
      const auto target = definition_.by_name_.find(p.mapping);
      if (target == definition_.by_name_.end() || !visible.contains(target->second.first)) {
        return std::unexpected(Malformed(
            path, "peripheral " + p.name + " maps to " + p.mapping + ", which no import defines"));
      }
      const auto& mapped =
          definition_.files_[target->second.first].peripherals[target->second.second];
      if (mapped.type != p.type) {
        return std::unexpected(Malformed(path, "peripheral " + p.name + " (" + p.type +
                                                   ") maps to " + p.mapping + " (" + mapped.type +
                                                   ")"));
      }
    }
    definition_.files_.push_back(std::move(*parsed));
    visible.insert(index);
    seen_.emplace(canonical, visible);
    return visible;
  }

  HardwareDefinition Take() && {
    // The top file was loaded last; it comes first.
    std::rotate(definition_.files_.rbegin(), definition_.files_.rbegin() + 1,
                definition_.files_.rend());
    const std::size_t last = definition_.files_.size() - 1;
    for (auto& [name, at] : definition_.by_name_) at.first = at.first == last ? 0 : at.first + 1;
    return std::move(definition_);
  }

 private:
  std::optional<fs::path> Find(const fs::path& beside, const fs::path& import) const {
    std::error_code ec;
    if (fs::is_regular_file(beside / import, ec)) return beside / import;
    for (const auto& dir : search_) {
      if (fs::is_regular_file(dir / import, ec)) return dir / import;
    }
    return std::nullopt;
  }

  const std::vector<fs::path>& search_;
  HardwareDefinition definition_;
  std::vector<fs::path> loading_;
  std::map<fs::path, std::set<std::size_t>> seen_;
};

Expected<HardwareDefinition> HardwareDefinition::Load(const fs::path& path,
                                                      const std::vector<fs::path>& search) {
  HardwareDefinitionLoader loader(search);
  if (auto loaded = loader.Load(path); !loaded) return std::unexpected(loaded.error());
  return std::move(loader).Take();
}

const HardwarePeripheral* HardwareDefinition::Find(std::string_view name) const {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  return &files_[it->second.first].peripherals[it->second.second];
}

const HardwarePeripheral* HardwareDefinition::Resolve(std::string_view name) const {
  const HardwarePeripheral* p = Find(name);
  // Mappings lead only to files imported earlier, so this ends.
  while (p != nullptr && !p->mapping.empty()) p = Find(p->mapping);
  return p;
}

Expected<std::string> HardwareDefinition::ManifestValue(std::string_view name,
                                                        std::string_view capability) const {
  const HardwarePeripheral* named = Find(name);
  const HardwarePeripheral* root = Resolve(name);
  if (named == nullptr || root == nullptr) {
    return Fail(PackageErrc::kMalformed, "the hardware definition " +
                                             top().path.filename().string() + " defines no " +
                                             std::string(name));
  }
  if (!root->manifest_value) {
    return Fail(PackageErrc::kMalformed,
                std::string(name) + " is a constant (int), not a peripheral an app manifest lists");
  }
  if (named->type != capability) {
    return Fail(PackageErrc::kMalformed,
                std::string(name) + " is a " + named->type + ", not a " + std::string(capability));
  }
  if (const auto* number = std::get_if<std::int64_t>(&*root->manifest_value)) {
    return std::to_string(*number);
  }
  return std::get<std::string>(*root->manifest_value);
}

std::string HardwareDefinition::Header() const {
  const HardwareDefinitionFile& file = top();
  std::string out;
  for (const auto& line : file.top_content) out += line + "\n";
  out += "\n// This file is autogenerated from ../../" + file.path.filename().string() +
         ".  Do not edit it directly.\n\n#pragma once\n";
  for (const auto& import : file.imports) {
    out += "#include \"" + import.stem().string() + ".h\"\n";
  }
  if (!file.imports.empty()) out += "\n";
  for (const auto& p : file.peripherals) {
    if (!p.comment.empty()) out += "// " + p.comment + "\n";
    out += "#define " + p.name + " " + (p.mapping.empty() ? p.header_value : p.mapping) + "\n\n";
  }
  return out;
}

}  // namespace aspis::package
