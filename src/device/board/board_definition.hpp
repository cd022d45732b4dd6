#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "package/app_manifest.hpp"

// A board definition (boards/*.json, carried by `board` packages and measured at launch): the
// board's name, which backend drives its peripherals, and what an app manifest may list on it,
// with the pins each peripheral uses. Peripherals are named as manifests name them after packing
// (hardware_definition.hpp): a GPIO by its number, the rest by their chip's name ("ISU0",
// "PWM-CONTROLLER-2", "ADC-CONTROLLER-0"). A block of pins (an ISU, a PWM or ADC controller) is
// one peripheral whatever function it serves, so the pins it shares with GPIOs and the functions
// it offers are what decide conflicts.
//
//   {"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
//    "Description": {"Name": "mt3620-sim", "Summary": "..."},
//    "Backend": "sim",
//    "Gpio": [0, 1, 2, ...],
//    "Blocks": [{"Name": "ISU0", "Functions": ["Uart", "I2cMaster", "SpiMaster"],
//                "Pins": [26, 27, 28, 29, 30]}, ...]}
namespace aspis::device::board {

class BoardDefinition {
 public:
  // Errors: kParse naming the rule the file breaks; kIo.
  static Expected<BoardDefinition> Load(const std::filesystem::path& path);
  static Expected<BoardDefinition> Parse(std::string_view json, const std::string& origin);

  const std::string& name() const { return name_; }
  const std::string& backend() const { return backend_; }  // "sim" or "linux"

  // The pins the peripheral a manifest lists as `value` under `capability` uses. Errors:
  // AppsErrc::kNotPermitted when the board has no such peripheral.
  Expected<std::set<int>> Pins(std::string_view capability, std::string_view value) const;

  // Checks the peripherals `app` lists against the board and against `others` (the other
  // installed apps' capabilities, by component ID): each must be one the board has, no two may
  // share a pin, and none may use a pin another app's peripherals use. Errors:
  // AppsErrc::kNotPermitted with the reason ("Gpio 26 and Uart ISU0 share pin 26").
  Expected<void> CheckPeripherals(
      const package::AppCapabilities& app,
      const std::map<std::string, package::AppCapabilities>& others) const;

 private:
  struct Block {
    std::set<std::string> functions;
    std::set<int> pins;
  };
  std::string name_;
  std::string backend_;
  std::set<int> gpios_;
  std::map<std::string, Block, std::less<>> blocks_;
};

}  // namespace aspis::device::board
