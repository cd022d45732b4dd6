// The board definition decides which peripherals an app may list and which conflict: the
// simulator's board is the MT3620's, and an app's manifest is refused at install when a peripheral
// is missing, shares a pin with another it lists, or uses a pin another app holds.
#include "device/board/board_definition.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "device/update/app_health.hpp"
#include "package/hardware_definition.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::board {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = ASPIS_SOURCE_DIR;

BoardDefinition Sim() { return *BoardDefinition::Load(kSource / "boards" / "mt3620-sim.json"); }

package::AppCapabilities Listing(std::map<std::string, std::vector<std::string>, std::less<>> p) {
  package::AppCapabilities capabilities;
  capabilities.peripherals = std::move(p);
  return capabilities;
}

std::string Refusal(const package::AppCapabilities& app,
                    const std::map<std::string, package::AppCapabilities>& others = {}) {
  auto checked = Sim().CheckPeripherals(app, others);
  return checked ? "fits" : checked.error().message();
}

TEST(BoardDefinition, TheSimulatorsBoardHasTheMt3620sPeripheralsAndPins) {
  const BoardDefinition sim = Sim();
  EXPECT_EQ(sim.name(), "mt3620-sim");
  EXPECT_EQ(sim.backend(), "sim");
  EXPECT_EQ(sim.Pins("Gpio", "8").value_or(std::set<int>{}), std::set<int>{8});
  EXPECT_EQ(sim.Pins("Uart", "ISU0").value_or(std::set<int>{}),
            (std::set<int>{26, 27, 28, 29, 30}));
  EXPECT_EQ(sim.Pins("Adc", "ADC-CONTROLLER-0").value_or(std::set<int>{}).size(), 8U);
  EXPECT_FALSE(sim.Pins("Gpio", "24"));
  EXPECT_FALSE(sim.Pins("Gpio", "-1"));
  EXPECT_FALSE(sim.Pins("Pwm", "ISU0"));
  EXPECT_FALSE(sim.Pins("Uart", "ISU5"));
}

TEST(BoardDefinition, AppsOpenTheSimulatorsBlocksByTheMt3620sIds) {
  const BoardDefinition sim = Sim();
  EXPECT_EQ(sim.BlockFor("Uart", 4), "ISU0");
  EXPECT_EQ(sim.BlockFor("Uart", 8), "ISU4");
  EXPECT_EQ(sim.BlockFor("I2cMaster", 2), "ISU2");
  EXPECT_EQ(sim.BlockFor("Pwm", 2), "PWM-CONTROLLER-2");
  EXPECT_EQ(sim.BlockFor("Adc", 0), "ADC-CONTROLLER-0");
  EXPECT_EQ(sim.BlockFor("Uart", 0), std::nullopt);
  EXPECT_EQ(sim.BlockFor("Adc", 1), std::nullopt);
  EXPECT_EQ(sim.Channels("PWM-CONTROLLER-2"), 4);
  EXPECT_EQ(sim.Channels("ADC-CONTROLLER-0"), 8);
  EXPECT_EQ(sim.Channels("ISU0"), 0);
}

TEST(BoardDefinition, TheSimulatorsBoardHasTheReferenceBoardsLedsButtonsAndSensor) {
  const BoardDefinition sim = Sim();
  ASSERT_EQ(sim.leds().size(), 18U);
  EXPECT_EQ(sim.leds()[0].name, "LED1_RED");
  EXPECT_EQ(sim.leds()[0].gpio, 8);
  EXPECT_TRUE(sim.leds()[0].active_low);
  ASSERT_EQ(sim.buttons().size(), 2U);
  EXPECT_EQ(sim.buttons()[0].gpio, 12);
  EXPECT_EQ(sim.buttons()[1].gpio, 13);
  ASSERT_EQ(sim.sensors().size(), 2U);
  EXPECT_EQ(sim.sensors()[0].block, "ISU2");
  EXPECT_EQ(sim.sensors()[0].address, 0x6a);
  EXPECT_EQ(sim.sensors()[1].chip_select, -1);
}

TEST(BoardDefinition, WiringThatNamesNoPartOfTheBoardIsRefused) {
  const auto refusal = [](const std::string& rest) {
    auto board = BoardDefinition::Parse(
        R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
            "Description": {"Name": "b"}, "Backend": "sim", "Gpio": [1, 2],
            "Blocks": [{"Name": "ISU0", "Functions": ["I2cMaster"], "Ids": {"I2cMaster": 0},
                        "Pins": [5]},
                       {"Name": "PWM0", "Functions": ["Pwm"], "Ids": {"Pwm": 0}, "Channels": 2,
                        "Pins": [6]}])" +
            rest + "}",
        "b.json");
    return board ? "loaded" : board.error().message();
  };
  EXPECT_EQ(refusal(R"(, "Leds": [{"Name": "L", "Gpio": 1, "ActiveLow": true}],
                      "Buttons": [{"Name": "A", "Gpio": 2}],
                      "Sensors": [{"Model": "LSM6DS3", "Block": "ISU0", "Address": 106}])"),
            "loaded");
  EXPECT_NE(refusal(R"(, "Leds": [{"Name": "L", "Gpio": 3}])").find("board GPIO"),
            std::string::npos);
  EXPECT_NE(
      refusal(R"(, "Leds": [{"Name": "L", "Gpio": 1}], "Buttons": [{"Name": "L", "Gpio": 2}])")
          .find("Name of its own"),
      std::string::npos);
  EXPECT_NE(refusal(R"(, "Sensors": [{"Model": "LSM6DS3", "Block": "PWM0", "Address": 106}])")
                .find("sensor"),
            std::string::npos);
  EXPECT_NE(refusal(R"(, "Sensors": [{"Model": "LSM6DS3", "Block": "ISU0", "Address": 128}])")
                .find("sensor"),
            std::string::npos);
  EXPECT_NE(refusal(R"(, "Sensors": [{"Model": "BME280", "Block": "ISU0", "Address": 118}])")
                .find("sensor"),
            std::string::npos);
}

TEST(BoardDefinition, ALinuxBoardSaysWhereItsDevicesAreAndOnlyALinuxBoard) {
  const auto refusal = [](const std::string& backend, const std::string& linux_section) {
    auto board = BoardDefinition::Parse(
        R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
            "Description": {"Name": "b"}, "Backend": ")" +
            backend + R"(", "Gpio": [4],
            "Blocks": [{"Name": "UART0", "Functions": ["Uart"], "Ids": {"Uart": 0},
                        "Pins": [14, 15]}])" +
            linux_section + "}",
        "b.json");
    return board ? "loaded" : board.error().message();
  };
  const std::string good =
      R"(, "Linux": {"GpioChip": "/dev/gpiochip0", "Devices": {"UART0": "/dev/ttyAMA0"}})";
  EXPECT_EQ(refusal("linux", good), "loaded");
  auto board = BoardDefinition::Parse(
      R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
          "Description": {"Name": "b"}, "Backend": "linux", "Linux": {"Devices": {}}})",
      "b.json");
  ASSERT_TRUE(board) << board.error().message();
  EXPECT_TRUE(board->linux_devices().gpio_chip.empty());
  EXPECT_NE(refusal("sim", good).find("Linux section"), std::string::npos);
  EXPECT_NE(refusal("linux", "").find("Linux section"), std::string::npos);
  EXPECT_NE(refusal("linux", R"(, "Linux": {"Devices": {}})").find("GpioChip"), std::string::npos);
  EXPECT_NE(refusal("linux", R"(, "Linux": {"GpioChip": "/dev/gpiochip0",
                                            "Devices": {"UART1": "/dev/ttyAMA1"}})")
                .find("block the board has"),
            std::string::npos);
  EXPECT_NE(refusal("linux", R"(, "Linux": {"GpioChip": "/dev/gpiochip0",
                                            "Devices": {"UART0": "/dev/../etc/shadow"}})")
                .find("absolute path"),
            std::string::npos);
  EXPECT_NE(refusal("linux", R"(, "Linux": {"GpioChip": "dev/gpiochip0", "Devices": {}})")
                .find("GpioChip"),
            std::string::npos);
}

TEST(BoardDefinition, ALinuxBoardNamesItsCoprocessorsWifiControlSocketAndManagedInterfaces) {
  const auto parse = [](const std::string& cores) {
    return BoardDefinition::Parse(
        R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
            "Description": {"Name": "b"}, "Backend": "linux",
            "Linux": {"Devices": {}, "Coprocessors": )" +
            cores + "}}",
        "b.json");
  };
  auto board = parse(R"({"M4": "/sys/class/remoteproc/remoteproc0"})");
  ASSERT_TRUE(board) << board.error().message();
  EXPECT_EQ(board->linux_devices().coprocessors.at("M4"), "/sys/class/remoteproc/remoteproc0");
  for (const std::string bad : {R"({"M4": "sys/class/remoteproc/remoteproc0"})",
                                R"({"M4": "/sys/class/remoteproc/../../etc"})",
                                R"({"M 4": "/sys/class/remoteproc/remoteproc0"})", R"({"M4": 0})",
                                R"(["/sys/class/remoteproc/remoteproc0"])"}) {
    const auto refused = parse(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message().find("oprocessor"), std::string::npos) << bad;
  }
  auto wifi = BoardDefinition::Parse(
      R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
          "Description": {"Name": "b"}, "Backend": "linux",
          "Linux": {"Devices": {}, "Wifi": "/run/wpa_supplicant/wlan0"}})",
      "b.json");
  ASSERT_TRUE(wifi) << wifi.error().message();
  EXPECT_EQ(wifi->linux_devices().wifi, "/run/wpa_supplicant/wlan0");
  auto network = BoardDefinition::Parse(
      R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
          "Description": {"Name": "b"}, "Backend": "linux",
          "Linux": {"Devices": {}, "Network": ["eth0", "wlan0"]}})",
      "b.json");
  ASSERT_TRUE(network) << network.error().message();
  EXPECT_EQ(network->linux_devices().network, (std::set<std::string>{"eth0", "wlan0"}));
  EXPECT_FALSE(BoardDefinition::Parse(
      R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
          "Description": {"Name": "b"}, "Backend": "linux",
          "Linux": {"Devices": {}, "Network": ["eth0 up"]}})",
      "b.json"));
  EXPECT_FALSE(BoardDefinition::Parse(
      R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
          "Description": {"Name": "b"}, "Backend": "linux",
          "Linux": {"Devices": {}, "Wifi": "wlan0"}})",
      "b.json"));
  auto unknown = BoardDefinition::Parse(
      R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
          "Description": {"Name": "b"}, "Backend": "linux",
          "Linux": {"Devices": {}, "Coprocessor": {}}})",
      "b.json");
  EXPECT_FALSE(unknown);
}

TEST(BoardDefinition, ALinuxBoardGivesAspisdItsNtpServersOnlyAsHostNamesOrAddresses) {
  const auto parse = [](const std::string& servers) {
    return BoardDefinition::Parse(
        R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
            "Description": {"Name": "b"}, "Backend": "linux",
            "Linux": {"Devices": {}, "TimeSync": )" +
            servers + "}}",
        "b.json");
  };
  auto board = parse(R"(["time.example.com", "192.0.2.123"])");
  ASSERT_TRUE(board) << board.error().message();
  EXPECT_EQ(board->linux_devices().time_servers,
            (std::vector<std::string>{"time.example.com", "192.0.2.123"}));
  // A newline or a space would add to chronyd's configuration; a leading '-' reads as an option.
  for (const std::string bad : {R"(["a\nallow all"])", R"(["a iburst key 1"])", R"(["-x"])",
                                R"("time.example.com")", R"([1])", R"(["a","b","c","d","e"])"}) {
    const auto refused = parse(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message().find("TimeSync"), std::string::npos) << bad;
  }
  EXPECT_TRUE(parse("[]")->linux_devices().time_servers.empty());
}

TEST(BoardDefinition, BlocksWithoutAnIdForEachFunctionOrWithASharedIdAreRefused) {
  const auto refusal = [](const std::string& blocks) {
    auto board = BoardDefinition::Parse(
        R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
            "Description": {"Name": "b"}, "Backend": "sim", "Blocks": )" +
            blocks + "}",
        "b.json");
    return board ? "loaded" : board.error().message();
  };
  EXPECT_NE(refusal(R"([{"Name": "ISU0", "Functions": ["Uart", "I2cMaster"], "Ids": {"Uart": 4},
                         "Pins": [1]}])")
                .find("Ids entry of its own"),
            std::string::npos);
  EXPECT_NE(refusal(R"([{"Name": "ISU0", "Functions": ["Uart"], "Ids": {"Uart": 4}, "Pins": [1]},
                        {"Name": "ISU1", "Functions": ["Uart"], "Ids": {"Uart": 4}, "Pins": [2]}])")
                .find("Ids entry of its own"),
            std::string::npos);
  EXPECT_NE(refusal(R"([{"Name": "ISU0", "Functions": ["Uart"], "Ids": {"Uart": 4, "Pwm": 1},
                         "Pins": [1]}])")
                .find("does not list"),
            std::string::npos);
  EXPECT_NE(refusal(R"([{"Name": "P", "Functions": ["Pwm"], "Ids": {"Pwm": 0}, "Pins": [1]}])")
                .find("Channels"),
            std::string::npos);
  EXPECT_NE(refusal(R"([{"Name": "ISU0", "Functions": ["Uart"], "Ids": [4], "Pins": [1]}])")
                .find("Ids entry of its own"),
            std::string::npos);
}

TEST(BoardDefinition, EveryPeripheralOfTheMt3620DefinitionIsOnTheSimulatorsBoard) {
  auto chip = package::HardwareDefinition::Load(kSource / "hardware-definitions" / "mt3620.json");
  ASSERT_TRUE(chip) << chip.error().message();
  const BoardDefinition sim = Sim();
  int listed = 0;
  for (const auto& p : chip->top().peripherals) {
    if (p.type == "int") continue;
    auto value = chip->ManifestValue(p.name, p.type);
    ASSERT_TRUE(value) << value.error().message();
    EXPECT_TRUE(sim.Pins(p.type, *value)) << p.name;
    ++listed;
  }
  EXPECT_EQ(listed, 68 + 3 + 1 + 15);
}

TEST(BoardDefinition, AnAppsPeripheralsFitWhenTheyShareNoPin) {
  EXPECT_EQ(Refusal(Listing(
                {{"Gpio", {"8", "12", "8"}}, {"Uart", {"ISU1"}}, {"Pwm", {"PWM-CONTROLLER-0"}}})),
            "fits");
}

TEST(BoardDefinition, APeripheralTheBoardDoesNotHaveIsRefused) {
  EXPECT_EQ(Refusal(Listing({{"Gpio", {"24"}}})), "Gpio 24: the board mt3620-sim has no such GPIO");
  EXPECT_EQ(Refusal(Listing({{"I2cMaster", {"PWM-CONTROLLER-0"}}})),
            "I2cMaster PWM-CONTROLLER-0: the board mt3620-sim has no such peripheral");
  EXPECT_NE(Refusal(Listing({{"Gpio", {"$SAMPLE_LED"}}})).find("was not given its value"),
            std::string::npos);
}

TEST(BoardDefinition, TwoPeripheralsOnOnePinAreRefused) {
  EXPECT_EQ(Refusal(Listing({{"Gpio", {"8"}}, {"Pwm", {"PWM-CONTROLLER-2"}}})),
            "Gpio 8 and Pwm PWM-CONTROLLER-2 share pin 8 of the board mt3620-sim");
  EXPECT_EQ(Refusal(Listing({{"I2cMaster", {"ISU0"}}, {"Uart", {"ISU0"}}})),
            "I2cMaster ISU0 and Uart ISU0 share pin 26 of the board mt3620-sim");
  EXPECT_EQ(Refusal(Listing({{"Gpio", {"28"}}, {"SpiMaster", {"ISU0"}}})),
            "Gpio 28 and SpiMaster ISU0 share pin 28 of the board mt3620-sim");
}

TEST(BoardDefinition, APeripheralAnotherAppHoldsIsRefused) {
  const std::map<std::string, package::AppCapabilities> others = {
      {"blink", Listing({{"Pwm", {"PWM-CONTROLLER-2"}}})}};
  EXPECT_EQ(Refusal(Listing({{"Gpio", {"9"}}}), others),
            "Gpio 9 uses pin 9, which the app blink holds (Pwm PWM-CONTROLLER-2)");
  EXPECT_EQ(Refusal(Listing({{"Gpio", {"12"}}}), others), "fits");
}

TEST(BoardDefinition, AFileThatIsNotABoardDefinitionIsRefused) {
  const auto refusal = [](const std::string& json) {
    auto board = BoardDefinition::Parse(json, "b.json");
    return board ? "loaded" : board.error().message();
  };
  const std::string head = R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
      "Description": {"Name": "b"}, "Backend": "sim")";
  EXPECT_EQ(refusal(head + "}"), "loaded");
  EXPECT_NE(refusal(R"({"Description": {"Name": "b"}, "Backend": "sim"})").find("is not one"),
            std::string::npos);
  EXPECT_NE(refusal(head + R"(, "Lamps": 3})").find("unknown key Lamps"), std::string::npos);
  EXPECT_NE(refusal(head + R"(, "Gpio": [1, 1]})").find("distinct pins"), std::string::npos);
  EXPECT_NE(refusal(head + R"(, "Blocks": [{"Name": "ISU0", "Functions": ["I2s"], "Ids": {"I2s": 0},
                                            "Pins": [1]}]})")
                .find("a function other than"),
            std::string::npos);
  EXPECT_NE(refusal(R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1},
      "Description": {"Name": "b"}, "Backend": "fpga"})")
                .find("Backend"),
            std::string::npos);
}

// An installed app in <apps>/<component>/<image>, `current` naming it.
void Install(const fs::path& apps, const std::string& component, const std::string& capabilities,
             bool current = true) {
  const fs::path version = apps / component / "v1";
  fs::create_directories(version);
  std::ofstream(version / "app_manifest.json")
      << R"({"SchemaVersion": 1, "Name": ")" << component
      << R"(", "ComponentId": "6f1c2b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b", "EntryPoint": "/bin/app",
             "Capabilities": )"
      << capabilities << "}";
  if (current) fs::create_directory_symlink("v1", apps / component / "current");
}

TEST(BoardDefinition, TheUpdateAgentsCheckRefusesAVersionWhosePinsAnotherInstalledAppHolds) {
  testing::TempDir dir;
  Install(dir / "apps", "blink", R"({"Gpio": [8]})");
  Install(dir / "apps", "dimmer", R"({"Pwm": ["PWM-CONTROLLER-2"]})", false);
  auto refused = update::CheckAppFitsBoard(Sim(), dir / "apps" / "dimmer" / "v1");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(),
            "Pwm PWM-CONTROLLER-2 uses pin 8, which the app blink holds (Gpio 8)");
  Install(dir / "apps", "uart", R"({"Uart": ["ISU0"]})", false);
  EXPECT_TRUE(update::CheckAppFitsBoard(Sim(), dir / "apps" / "uart" / "v1"));
}

}  // namespace
}  // namespace aspis::device::board
