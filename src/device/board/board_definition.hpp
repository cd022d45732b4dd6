#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
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
// Apps open a block by the number its hardware definition gives C code for that function
// (UART_Open(4) on the MT3620 is ISU0's UART): a block's `Ids`. PWM and ADC controllers say how
// many `Channels` they have. `Leds` and `Buttons` say what is wired to GPIOs (active-low LEDs are
// lit while their GPIO is low; a button pulls its GPIO low while pressed), and `Sensors` what sits
// on a bus (the simulator models an LSM6DS3 accelerometer at an I2C address or a chip select).
//
//   {"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
//    "Description": {"Name": "mt3620-sim", "Summary": "..."},
//    "Backend": "sim",
//    "Gpio": [0, 1, 2, ...],
//    "Blocks": [{"Name": "ISU0", "Functions": ["Uart", "I2cMaster", "SpiMaster"],
//                "Ids": {"Uart": 4, "I2cMaster": 0, "SpiMaster": 0},
//                "Pins": [26, 27, 28, 29, 30]},
//               {"Name": "ADC-CONTROLLER-0", "Functions": ["Adc"], "Ids": {"Adc": 0},
//                "Channels": 8, "Pins": [41, ...]}, ...],
//    "Leds": [{"Name": "LED1_RED", "Gpio": 8, "ActiveLow": true}, ...],
//    "Buttons": [{"Name": "A", "Gpio": 12}, ...],
//    "Sensors": [{"Model": "LSM6DS3", "Block": "ISU2", "Address": 106},
//                {"Model": "LSM6DS3", "Block": "ISU1", "ChipSelect": -1}]}
namespace aspis::device::board {

struct Led {
  std::string name;
  int gpio = 0;
  bool active_low = false;
};

struct Button {
  std::string name;
  int gpio = 0;
};

// A device on a block's bus: at an I2C address (0-127) or an SPI chip select (negative), the other
// being nullopt.
struct Sensor {
  std::string model;  // "LSM6DS3"
  std::string block;
  std::optional<int> address;
  std::optional<int> chip_select;
};

// Where a Linux board's peripherals are (Backend "linux"): its GPIO chip, whose line N is the
// board's GPIO N, and a device for each block: a UART's terminal (/dev/ttyAMA0), an I2C bus's
// i2c-dev node (/dev/i2c-1), an SPI bus's spidev prefix (/dev/spidev0, chip select A is .0 and B
// .1), an ADC's IIO device directory, a PWM chip's sysfs directory; the coprocessors that run
// real-time capable apps, by name, each its remoteproc's sysfs directory; on a board with
// Wi-Fi, wpa_supplicant's control socket for it; and the network interfaces aspisd configures
// for apps granted NetworkConfig.
//
//   "Linux": {"GpioChip": "/dev/gpiochip0",
//             "Devices": {"UART0": "/dev/ttyAMA0", "I2C1": "/dev/i2c-1", ...},
//             "Coprocessors": {"M4": "/sys/class/remoteproc/remoteproc0"},
//             "Wifi": "/run/wpa_supplicant/wlan0", "Network": ["eth0"]}
struct LinuxDevices {
  std::string gpio_chip;
  std::map<std::string, std::string, std::less<>> devices;
  std::map<std::string, std::string, std::less<>> coprocessors;
  std::string wifi;  // empty: no Wi-Fi
  std::set<std::string> network;
  std::vector<std::string> time_servers;  // empty: the system keeps the clock, not aspisd
};

class BoardDefinition {
 public:
  // Errors: kParse naming the rule the file breaks; kIo.
  static Expected<BoardDefinition> Load(const std::filesystem::path& path);
  static Expected<BoardDefinition> Parse(std::string_view json, const std::string& origin);

  const std::string& name() const { return name_; }
  const std::string& backend() const { return backend_; }  // "sim" or "linux"
  const std::set<int>& gpios() const { return gpios_; }
  const std::vector<Led>& leds() const { return leds_; }
  const std::vector<Button>& buttons() const { return buttons_; }
  const std::vector<Sensor>& sensors() const { return sensors_; }

  // The block an app opens as `function` ("Uart") with `id` (4), if the board has one.
  std::optional<std::string> BlockFor(std::string_view function, int id) const;
  bool HasBlock(std::string_view block) const;
  const LinuxDevices& linux_devices() const { return linux_; }
  // How many channels a PWM or ADC controller has (0 for other blocks and unknown names).
  int Channels(std::string_view block) const;

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
    std::map<std::string, int, std::less<>> ids;  // by function; every function has one
    std::set<int> pins;
    int channels = 0;
  };
  std::string name_;
  std::string backend_;
  std::set<int> gpios_;
  std::map<std::string, Block, std::less<>> blocks_;
  std::vector<Led> leds_;
  std::vector<Button> buttons_;
  std::vector<Sensor> sensors_;
  LinuxDevices linux_;
};

}  // namespace aspis::device::board
