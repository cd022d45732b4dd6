#include "device/board/board_definition.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "device/apps/errors.hpp"

namespace aspis::device::board {

namespace {

using json::Json;

constexpr std::array<std::string_view, 5> kBlockFunctions = {"Uart", "I2cMaster", "SpiMaster",
                                                             "Pwm", "Adc"};
constexpr std::size_t kMaxPins = 4096;

Error Malformed(const std::string& origin, std::string_view rule) {
  return Error(CoreErrc::kParse, "the board definition " + origin + " " + std::string(rule));
}

Expected<std::set<int>> PinList(const Json& value, const std::string& origin,
                                std::string_view field) {
  if (!value.is_array() || value.size() > kMaxPins) {
    return std::unexpected(Malformed(origin, std::string(field) + " is not an array of pins"));
  }
  std::set<int> pins;
  for (const auto& pin : value) {
    if (!pin.is_number_unsigned() || pin.get<std::uint64_t>() > 0xffff ||
        !pins.insert(pin.get<int>()).second) {
      return std::unexpected(
          Malformed(origin, std::string(field) + " lists something other than distinct pins"));
    }
  }
  return pins;
}

// A field that must be a small whole number: a GPIO, an ID, a channel count, an address.
std::optional<int> SmallInt(const Json& value, int low, int high) {
  if (!value.is_number_integer()) return std::nullopt;
  const auto number = value.get<std::int64_t>();
  if (number < low || number > high) return std::nullopt;
  return static_cast<int>(number);
}

struct Wiring {
  std::vector<Led> leds;
  std::vector<Button> buttons;
  std::vector<Sensor> sensors;
};

// Leds, Buttons and Sensors: each on a GPIO or block `board` has, each name once.
Expected<Wiring> ParseWiring(const Json& doc, const BoardDefinition& board,
                             const std::string& origin) {
  Wiring wiring;
  std::set<std::string> names;
  const auto entries = [&](std::string_view field) -> Expected<Json> {
    Json list = doc.value(std::string(field), Json::array());
    if (!list.is_array() || list.size() > 256) {
      return std::unexpected(Malformed(origin, std::string(field) + " is not a short array"));
    }
    for (const auto& entry : list) {
      if (!entry.is_object()) {
        return std::unexpected(Malformed(origin, std::string(field) + " lists a non-object"));
      }
    }
    return list;
  };
  const auto wired = [&](const Json& entry, std::string_view field) -> Expected<std::string> {
    const Json name = entry.value("Name", Json());
    const auto gpio = SmallInt(entry.value("Gpio", Json()), 0, 0xffff);
    if (!name.is_string() || !text::IsToken(name.get<std::string>(), "-_", 32) ||
        !names.insert(name.get<std::string>()).second || !gpio || !board.gpios().contains(*gpio)) {
      return std::unexpected(Malformed(
          origin, std::string(field) + " lists one without a Name of its own and a board GPIO"));
    }
    return name.get<std::string>();
  };
  auto leds = entries("Leds");
  if (!leds) return std::unexpected(leds.error());
  for (const auto& entry : *leds) {
    auto name = wired(entry, "Leds");
    if (!name) return std::unexpected(name.error());
    const Json active_low = entry.value("ActiveLow", Json(false));
    if (!active_low.is_boolean()) {
      return std::unexpected(Malformed(origin, "LED " + *name + "'s ActiveLow is not a boolean"));
    }
    wiring.leds.push_back({*name, entry.at("Gpio").get<int>(), active_low.get<bool>()});
  }
  auto buttons = entries("Buttons");
  if (!buttons) return std::unexpected(buttons.error());
  for (const auto& entry : *buttons) {
    auto name = wired(entry, "Buttons");
    if (!name) return std::unexpected(name.error());
    wiring.buttons.push_back({*name, entry.at("Gpio").get<int>()});
  }
  auto sensors = entries("Sensors");
  if (!sensors) return std::unexpected(sensors.error());
  for (const auto& entry : *sensors) {
    Sensor sensor;
    sensor.model = entry.value("Model", Json()) == Json("LSM6DS3") ? "LSM6DS3" : "";
    sensor.block = entry.value("Block", Json()).is_string() ? entry.value("Block", "") : "";
    if (entry.contains("Address")) sensor.address = SmallInt(entry["Address"], 0, 127);
    if (entry.contains("ChipSelect")) sensor.chip_select = SmallInt(entry["ChipSelect"], -2, -1);
    const bool on_bus = (sensor.address && !entry.contains("ChipSelect")) ||
                        (sensor.chip_select && !entry.contains("Address"));
    if (sensor.model.empty() || !on_bus || board.Channels(sensor.block) != 0 ||
        !board.Pins(sensor.address ? "I2cMaster" : "SpiMaster", sensor.block)) {
      return std::unexpected(
          Malformed(origin,
                    "lists a sensor that is not an LSM6DS3 on a block's I2C Address (0-127) or SPI "
                    "ChipSelect (-1 for A, -2 for B)"));
    }
    wiring.sensors.push_back(std::move(sensor));
  }
  return wiring;
}

// The Linux section: required of a "linux" board, refused on the simulator's. Each device path
// is absolute and plain, and names a block the board has.
Expected<LinuxDevices> ParseLinuxDevices(const Json& doc, const BoardDefinition& board,
                                         const std::string& origin) {
  const bool wanted = board.backend() == "linux";
  if (wanted != doc.contains("Linux")) {
    return std::unexpected(Malformed(origin,
                                     "has a Linux section if, and only if, its Backend is "
                                     "\"linux\""));
  }
  LinuxDevices devices;
  if (!wanted) return devices;
  const Json& section = doc["Linux"];
  const auto path = [](const Json& value) {
    if (!value.is_string()) return false;
    const std::string text = value.get<std::string>();
    return text.starts_with('/') && text.size() < 256 && text.find("/..") == std::string::npos &&
           text::IsToken(text, "/-_.:", 256);
  };
  const Json chip = section.is_object() ? section.value("GpioChip", Json()) : Json();
  const Json listed = section.is_object() ? section.value("Devices", Json::object()) : Json();
  const Json cores = section.is_object() ? section.value("Coprocessors", Json::object()) : Json();
  const bool known_keys =
      section.is_object() &&
      std::all_of(section.items().begin(), section.items().end(), [](const auto& item) {
        return item.key() == "GpioChip" || item.key() == "Devices" ||
               item.key() == "Coprocessors" || item.key() == "Wifi" || item.key() == "Network" ||
               item.key() == "TimeSync";
      });
  const Json wifi = section.is_object() ? section.value("Wifi", Json()) : Json();
  const Json network = section.is_object() ? section.value("Network", Json::array()) : Json();
  const bool interfaces =
      network.is_array() && std::all_of(network.begin(), network.end(), [](const Json& name) {
        return name.is_string() && text::IsToken(name.get<std::string>(), "-_.", 15);
      });
  const Json time_sync = section.is_object() ? section.value("TimeSync", Json::array()) : Json();
  const bool time_servers = time_sync.is_array() && time_sync.size() <= 4 &&
                            std::all_of(time_sync.begin(), time_sync.end(), [](const Json& name) {
                              return name.is_string() &&
                                     !name.get<std::string>().starts_with('-') &&
                                     text::IsToken(name.get<std::string>(), "-.", 253);
                            });
  if (!known_keys || !listed.is_object() || !cores.is_object() ||
      (!wifi.is_null() && !path(wifi)) || !interfaces || !time_servers ||
      (!chip.is_null() && !path(chip)) || (chip.is_null() && !board.gpios().empty())) {
    return std::unexpected(
        Malformed(origin,
                  "has a Linux section that is not a GpioChip path for its GPIOs, Devices by "
                  "block, Coprocessors by name, a Wifi control socket path, the Network "
                  "interfaces aspisd manages and the TimeSync servers it keeps the clock from"));
  }
  for (const Json& name : time_sync) devices.time_servers.push_back(name.get<std::string>());
  for (const auto& [name, remoteproc] : cores.items()) {
    if (!path(remoteproc) || !text::IsToken(name, "-_", 32)) {
      return std::unexpected(Malformed(origin, "lists a coprocessor " + text::Printable(name) +
                                                   " that is not a name and an absolute path "
                                                   "to its remoteproc"));
    }
    devices.coprocessors[name] = remoteproc.get<std::string>();
  }
  if (!chip.is_null()) devices.gpio_chip = chip.get<std::string>();
  if (!wifi.is_null()) devices.wifi = wifi.get<std::string>();
  for (const Json& name : network) devices.network.insert(name.get<std::string>());
  for (const auto& [block, device] : listed.items()) {
    if (!path(device) || !board.HasBlock(block)) {
      return std::unexpected(
          Malformed(origin, "lists a Linux device for " + text::Printable(block) +
                                " that is not an absolute path of a block the board has"));
    }
    devices.devices[block] = device.get<std::string>();
  }
  return devices;
}

Error Refused(std::string reason) {
  return Error(apps::AppsErrc::kNotPermitted, std::move(reason));
}

// One peripheral an app lists: "Gpio 26", and the pins it uses.
struct Claim {
  std::string what;
  std::set<int> pins;
};

// The peripherals `app` lists on `board`, each once. One the board lacks is an error, or, with
// `skip_missing` (another app's, whose own problem it is), left out.
Expected<std::vector<Claim>> ClaimsOf(const BoardDefinition& board,
                                      const package::AppCapabilities& app, bool skip_missing) {
  std::vector<Claim> claims;
  for (const auto& [capability, values] : app.peripherals) {
    for (const auto& value : values) {
      auto pins = board.Pins(capability, value);
      if (!pins && skip_missing) continue;
      if (!pins) return std::unexpected(pins.error());
      std::string what = fmt::format("{} {}", capability, value);
      if (std::none_of(claims.begin(), claims.end(),
                       [&](const Claim& c) { return c.what == what; })) {
        claims.push_back({std::move(what), std::move(*pins)});
      }
    }
  }
  return claims;
}

std::optional<int> Shared(const std::set<int>& a, const std::set<int>& b) {
  for (const int pin : a) {
    if (b.contains(pin)) return pin;
  }
  return std::nullopt;
}

}  // namespace

Expected<BoardDefinition> BoardDefinition::Load(const std::filesystem::path& path) {
  auto text = file::Read(path, file::kSmallFileLimit);
  if (!text) return std::unexpected(std::move(text.error()).WithContext("board definition"));
  return Parse(AsString(*text), path.string());
}

Expected<BoardDefinition> BoardDefinition::Parse(std::string_view text, const std::string& origin) {
  auto doc = json::Parse(text);
  if (!doc || !doc->is_object()) return std::unexpected(Malformed(origin, "is not a JSON object"));
  for (const auto& item : doc->items()) {
    static constexpr std::string_view kKeys[] = {"Metadata", "Description", "Backend",
                                                 "Gpio",     "Blocks",      "Leds",
                                                 "Buttons",  "Sensors",     "Linux"};
    if (std::find(std::begin(kKeys), std::end(kKeys), item.key()) == std::end(kKeys)) {
      return std::unexpected(Malformed(origin, "has an unknown key " + item.key()));
    }
  }
  const Json metadata = doc->value("Metadata", Json());
  if (!metadata.is_object() || metadata.value("Type", Json()) != Json("Aspis Board Definition") ||
      metadata.value("Version", Json()) != Json(1)) {
    return std::unexpected(
        Malformed(origin, "is not one (Metadata: Type \"Aspis Board Definition\", Version 1)"));
  }
  BoardDefinition board;
  const Json description = doc->value("Description", Json());
  board.name_ = description.is_object() && description.value("Name", Json()).is_string()
                    ? description.value("Name", "")
                    : "";
  if (!text::IsToken(board.name_, "-_.", 64)) {
    return std::unexpected(Malformed(origin, "names no board (Description.Name)"));
  }
  board.backend_ = doc->value("Backend", Json()).is_string() ? doc->value("Backend", "") : "";
  if (board.backend_ != "sim" && board.backend_ != "linux") {
    return std::unexpected(Malformed(origin, "has no Backend \"sim\" or \"linux\""));
  }
  auto gpios = PinList(doc->value("Gpio", Json::array()), origin, "Gpio");
  if (!gpios) return std::unexpected(gpios.error());
  board.gpios_ = std::move(*gpios);
  const Json blocks = doc->value("Blocks", Json::array());
  if (!blocks.is_array()) return std::unexpected(Malformed(origin, "Blocks is not an array"));
  for (const auto& entry : blocks) {
    const Json name = entry.is_object() ? entry.value("Name", Json()) : Json();
    if (!name.is_string() || !text::IsToken(name.get<std::string>(), "-_", 64)) {
      return std::unexpected(Malformed(origin, "has a block without a Name like \"ISU0\""));
    }
    const std::string block_name = name.get<std::string>();
    Block block;
    const Json functions = entry.value("Functions", Json());
    if (!functions.is_array() || functions.empty()) {
      return std::unexpected(Malformed(origin, "block " + block_name + " has no Functions"));
    }
    for (const auto& function : functions) {
      if (!function.is_string() ||
          std::find(kBlockFunctions.begin(), kBlockFunctions.end(), function.get<std::string>()) ==
              kBlockFunctions.end()) {
        return std::unexpected(
            Malformed(origin, "block " + block_name +
                                  " lists a function other than Uart, I2cMaster, "
                                  "SpiMaster, Pwm and Adc"));
      }
      const Json ids = entry.value("Ids", Json::object());
      const auto id =
          ids.is_object() ? SmallInt(ids.value(function, Json()), 0, 255) : std::nullopt;
      if (!id || board.BlockFor(function.get<std::string>(), *id)) {
        return std::unexpected(Malformed(
            origin, "block " + block_name + " has no Ids entry of its own for each function"));
      }
      block.ids[function.get<std::string>()] = *id;
    }
    const Json ids = entry.value("Ids", Json::object());
    if (!ids.is_object() || ids.size() != block.ids.size()) {
      return std::unexpected(
          Malformed(origin, "block " + block_name + " has Ids for functions it does not list"));
    }
    const bool channelled = block.ids.contains("Pwm") || block.ids.contains("Adc");
    if (channelled != entry.contains("Channels")) {
      return std::unexpected(Malformed(
          origin, "block " + block_name + " must give Channels if, and only if, it is Pwm or Adc"));
    }
    if (channelled) {
      const auto channels = SmallInt(entry["Channels"], 1, 32);
      if (!channels) {
        return std::unexpected(Malformed(origin, "block " + block_name + " has 1 to 32 Channels"));
      }
      block.channels = *channels;
    }
    auto pins = PinList(entry.value("Pins", Json()), origin, "block " + block_name + "'s Pins");
    if (!pins) return std::unexpected(pins.error());
    block.pins = std::move(*pins);
    if (!board.blocks_.emplace(block_name, std::move(block)).second) {
      return std::unexpected(Malformed(origin, "defines block " + block_name + " twice"));
    }
  }
  auto devices = ParseLinuxDevices(*doc, board, origin);
  if (!devices) return std::unexpected(devices.error());
  board.linux_ = std::move(*devices);
  auto wiring = ParseWiring(*doc, board, origin);
  if (!wiring) return std::unexpected(wiring.error());
  board.leds_ = std::move(wiring->leds);
  board.buttons_ = std::move(wiring->buttons);
  board.sensors_ = std::move(wiring->sensors);
  return board;
}

std::optional<std::string> BoardDefinition::BlockFor(std::string_view function, int id) const {
  for (const auto& [name, block] : blocks_) {
    const auto found = block.ids.find(function);
    if (found != block.ids.end() && found->second == id) return name;
  }
  return std::nullopt;
}

bool BoardDefinition::HasBlock(std::string_view block) const { return blocks_.contains(block); }

int BoardDefinition::Channels(std::string_view block) const {
  const auto found = blocks_.find(block);
  return found == blocks_.end() ? 0 : found->second.channels;
}

Expected<std::set<int>> BoardDefinition::Pins(std::string_view capability,
                                              std::string_view value) const {
  const std::string shown = fmt::format("{} {}", capability, text::Printable(value));
  if (value.starts_with('$')) {
    return std::unexpected(
        Refused(shown + " was not given its value when the app was packed (aspis image-package "
                        "pack-application --hardware-definitions --target-definition-filename)"));
  }
  if (capability == "Gpio") {
    const bool digits =
        !value.empty() && value.size() <= 5 &&
        std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
    const int pin = digits ? std::stoi(std::string(value)) : -1;
    if (!gpios_.contains(pin)) {
      return std::unexpected(Refused(shown + ": the board " + name_ + " has no such GPIO"));
    }
    return std::set<int>{pin};
  }
  const auto block = blocks_.find(value);
  if (block == blocks_.end() || !block->second.ids.contains(capability)) {
    return std::unexpected(Refused(shown + ": the board " + name_ + " has no such peripheral"));
  }
  return block->second.pins;
}

Expected<void> BoardDefinition::CheckPeripherals(
    const package::AppCapabilities& app,
    const std::map<std::string, package::AppCapabilities>& others) const {
  auto mine = ClaimsOf(*this, app, false);
  if (!mine) return std::unexpected(mine.error());
  for (auto a = mine->begin(); a != mine->end(); ++a) {
    for (auto b = std::next(a); b != mine->end(); ++b) {
      if (const auto pin = Shared(a->pins, b->pins)) {
        return std::unexpected(Refused(
            fmt::format("{} and {} share pin {} of the board {}", a->what, b->what, *pin, name_)));
      }
    }
  }
  for (const auto& [component, capabilities] : others) {
    const auto theirs = ClaimsOf(*this, capabilities, true);  // never an error: none is missing
    for (const auto& held : *theirs) {
      for (const auto& claim : *mine) {
        if (const auto pin = Shared(claim.pins, held.pins)) {
          return std::unexpected(Refused(fmt::format("{} uses pin {}, which the app {} holds ({})",
                                                     claim.what, *pin, component, held.what)));
        }
      }
    }
  }
  return {};
}

}  // namespace aspis::device::board
