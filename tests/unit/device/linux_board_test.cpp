// The Linux board backend against fakes of what this machine lacks: a GPIO chip, I2C and SPI
// buses (an LSM6DS3 model behind them), sysfs PWM and IIO trees in a temporary directory; the
// UART on a real pseudo-terminal.
#include "device/board/linux_board.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <map>

#include "device/board/lsm6ds3.hpp"
#include "device/board/peripheral_server.hpp"
#include "support/peripheral_channel.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::board {
namespace {

namespace fs = std::filesystem;

class FakeChip final : public GpioChip {
 public:
  Expected<void> Request(int line, GpioMode mode, bool value) override {
    modes[line] = mode;
    values[line] = value;
    return {};
  }
  void Release(int line) override { modes.erase(line); }
  Expected<bool> Get(int line) override { return values[line]; }
  Expected<void> Set(int line, bool value) override {
    values[line] = value;
    return {};
  }
  std::map<int, GpioMode> modes;
  std::map<int, bool> values;
};

class FakeBuses final : public BusDevices {
 public:
  Expected<void> I2cTransfer(const std::string& device, int address,
                             std::span<const std::uint8_t> write, std::span<std::uint8_t> read,
                             std::chrono::milliseconds timeout) override {
    last_device = device;
    last_timeout = timeout;
    if (address != 0x6a)
      return Fail(std::make_error_code(std::errc::no_such_device_or_address), "");
    if (!write.empty()) sensor.I2cWrite(write);
    if (!read.empty()) sensor.I2cRead(read);
    return {};
  }
  Expected<void> SpiTransfers(const std::string& device, const SpiSettings& settings,
                              std::span<const SpiTransfer> /*transfers*/) override {
    last_device = device;
    last_chip_select = settings.chip_select;
    return {};
  }
  Lsm6ds3 sensor;
  std::string last_device;
  std::chrono::milliseconds last_timeout{0};
  int last_chip_select = 0;
};

class LinuxBoardTest : public ::testing::Test {
 protected:
  // The Raspberry Pi 4's definition, with its devices moved into the test's directory.
  void Load(const std::string& uart) {
    std::ifstream in(std::string(ASPIS_SOURCE_DIR) + "/boards/raspberry-pi-4.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto replace = [&](const std::string& from, const std::string& to) {
      text.replace(text.find(from), from.size(), to);
    };
    replace("/dev/ttyAMA0", uart);
    replace("/sys/class/pwm/pwmchip0", (dir_.path() / "pwmchip0").string());
    auto board = BoardDefinition::Parse(text, "raspberry-pi-4.json");
    ASSERT_TRUE(board) << board.error().message();
    board_.emplace(std::move(*board));
    auto chip = std::make_unique<FakeChip>();
    chip_ = chip.get();
    auto buses = std::make_unique<FakeBuses>();
    buses_ = buses.get();
    linux_.emplace(*board_, std::move(chip), std::move(buses));
  }

  static std::string Read(const fs::path& path) {
    std::ifstream in(path);
    std::string text;
    in >> text;
    return text;
  }

  aspis::testing::TempDir dir_;
  std::optional<BoardDefinition> board_;
  FakeChip* chip_ = nullptr;
  FakeBuses* buses_ = nullptr;
  std::optional<LinuxBoard> linux_;
};

TEST_F(LinuxBoardTest, GpiosAreTheChipsLinesRequestedAsTheAppAsks) {
  Load("/dev/null");
  ASSERT_TRUE(linux_->OpenGpio(17, GpioMode::kOpenDrain, true));
  EXPECT_EQ(chip_->modes.at(17), GpioMode::kOpenDrain);
  EXPECT_TRUE(chip_->values.at(17));
  ASSERT_TRUE(linux_->SetGpio(17, false));
  EXPECT_EQ(linux_->GetGpio(17).value_or(true), false);
  ASSERT_TRUE(linux_->OpenGpio(4, GpioMode::kInput, false));
  chip_->values[4] = true;
  ASSERT_TRUE(linux_->SetGpio(4, false));  // an input ignores it
  EXPECT_EQ(linux_->GetGpio(4).value_or(false), true);
  linux_->CloseGpio(17);
  EXPECT_FALSE(chip_->modes.contains(17));
  EXPECT_EQ(linux_->OpenGpio(28, GpioMode::kInput, false).error().code(),
            std::errc::no_such_device);
}

TEST_F(LinuxBoardTest, PwmIsWrittenToSysfsInTheOrderTheKernelAccepts) {
  Load("/dev/null");
  const fs::path chip = dir_.path() / "pwmchip0";
  fs::create_directories(chip / "pwm1");
  for (const char* f :
       {"export", "unexport", "pwm1/enable", "pwm1/period", "pwm1/duty_cycle", "pwm1/polarity"}) {
    std::ofstream(chip / f) << "";
  }
  ASSERT_TRUE(linux_->ApplyPwm(
      "PWM0", 1, {.period_ns = 1000000, .duty_ns = 250000, .inverted = true, .enabled = true}));
  EXPECT_EQ(Read(chip / "pwm1/period"), "1000000");
  EXPECT_EQ(Read(chip / "pwm1/duty_cycle"), "250000");
  EXPECT_EQ(Read(chip / "pwm1/polarity"), "inversed");
  EXPECT_EQ(Read(chip / "pwm1/enable"), "1");
  EXPECT_EQ(linux_->ApplyPwm("PWM0", 2, {.period_ns = 1, .duty_ns = 0}).error().code(),
            std::errc::invalid_argument);
  linux_->ClosePwm("PWM0");
  EXPECT_EQ(Read(chip / "pwm1/enable"), "0");
  EXPECT_EQ(Read(chip / "unexport"), "1");
}

TEST_F(LinuxBoardTest, AChannelNotYetExportedIsExportedFirst) {
  Load("/dev/null");
  const fs::path chip = dir_.path() / "pwmchip0";
  fs::create_directories(chip);
  std::ofstream(chip / "export") << "";
  // The fake kernel makes no pwm0 directory, so the first attribute write fails after the export.
  EXPECT_FALSE(linux_->ApplyPwm("PWM0", 0, {.period_ns = 10, .duty_ns = 5, .enabled = true}));
  EXPECT_EQ(Read(chip / "export"), "0");
}

TEST_F(LinuxBoardTest, I2cAndSpiGoToTheBlocksDevices) {
  Load("/dev/null");
  const std::array<std::uint8_t, 1> who_am_i = {Lsm6ds3::kWhoAmI};
  std::array<std::uint8_t, 1> value{};
  ASSERT_TRUE(linux_->I2cTransfer("I2C1", 0x6a, who_am_i, value, kMaxI2cTimeout));
  EXPECT_EQ(value[0], 0x69);
  EXPECT_EQ(buses_->last_device, "/dev/i2c-1");
  EXPECT_EQ(linux_->I2cTransfer("I2C1", 0x6b, who_am_i, value, kMaxI2cTimeout).error().code(),
            std::errc::no_such_device_or_address);
  EXPECT_EQ(linux_->I2cTransfer("I2C1", 0x80, who_am_i, value, kMaxI2cTimeout).error().code(),
            std::errc::invalid_argument);
  ASSERT_TRUE(linux_->SpiTransfers("SPI0", {.chip_select = -2}, {}));
  EXPECT_EQ(buses_->last_device, "/dev/spidev0");
  EXPECT_EQ(buses_->last_chip_select, -2);
  EXPECT_EQ(linux_->I2cTransfer("I2C0", 0x6a, who_am_i, value, kMaxI2cTimeout).error().code(),
            std::errc::no_such_device);
}

TEST_F(LinuxBoardTest, AnI2cMastersTimeoutIsWhatTheAppSetRoundedAndBounded) {
  Load("/dev/null");
  auto server = PeripheralServer::Start(*board_, *linux_);
  ASSERT_TRUE(server) << server.error().message();
  auto fd = (*server)->OpenI2c("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "I2C1");
  ASSERT_TRUE(fd) << fd.error().message();
  const auto transfer_after = [&](std::uint32_t timeout_ms) {
    EXPECT_EQ(
        aspis::testing::Exchange(fd->get(), aspis::testing::PeripheralRequest(
                                                wire::peripheral::Op::kI2cTimeout, {timeout_ms}))
            .first,
        0);
    EXPECT_EQ(aspis::testing::Exchange(
                  fd->get(), aspis::testing::PeripheralRequest(wire::peripheral::Op::kI2cTransfer,
                                                               {0x6a, 1}, {Lsm6ds3::kWhoAmI}))
                  .first,
              0);
    return buses_->last_timeout;
  };
  EXPECT_EQ(transfer_after(250), std::chrono::milliseconds(250));
  EXPECT_EQ(transfer_after(34), std::chrono::milliseconds(30));
  EXPECT_EQ(transfer_after(0), kMinI2cTimeout);
  // A clock-stretching target would hold every app's peripherals for as long as it is let.
  EXPECT_EQ(transfer_after(60000), kMaxI2cTimeout);
  EXPECT_EQ(transfer_after(0xffffffff), kMaxI2cTimeout);  // not wrapped round to 10 ms
}

TEST_F(LinuxBoardTest, TheUartIsItsTerminalSetUpAsTheAppAsks) {
  const Fd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_GE(master.get(), 0);
  ASSERT_EQ(::grantpt(master.get()), 0);
  ASSERT_EQ(::unlockpt(master.get()), 0);
  std::array<char, 64> name{};
  ASSERT_EQ(::ptsname_r(master.get(), name.data(), name.size()), 0);
  Load(name.data());
  auto uart =
      linux_->OpenUart("UART0", {.baud_rate = 9600, .data_bits = 7, .parity = 'E', .stop_bits = 2});
  ASSERT_TRUE(uart) << uart.error().message();
  termios mode{};
  ASSERT_EQ(::tcgetattr(uart->get(), &mode), 0);
  EXPECT_EQ(::cfgetospeed(&mode), static_cast<speed_t>(B9600));
  // (A pseudo-terminal keeps 8 data bits and no parity whatever it is told; a UART's driver
  // keeps them.)
  EXPECT_NE(mode.c_cflag & CSTOPB, 0U);
  EXPECT_EQ(mode.c_lflag & ICANON, 0U);  // raw
  ASSERT_EQ(::write(uart->get(), "hi", 2), 2);
  std::array<char, 2> got{};
  ASSERT_EQ(::read(master.get(), got.data(), got.size()), 2);
  EXPECT_EQ(std::string(got.data(), 2), "hi");
  EXPECT_EQ(linux_->OpenUart("UART0", {.baud_rate = 12345}).error().code(),
            std::errc::invalid_argument);
}

TEST_F(LinuxBoardTest, TheRaspberryPi4BoardHasItsHeadersPeripherals) {
  auto board = BoardDefinition::Load(std::string(ASPIS_SOURCE_DIR) + "/boards/raspberry-pi-4.json");
  ASSERT_TRUE(board) << board.error().message();
  EXPECT_EQ(board->backend(), "linux");
  EXPECT_EQ(board->gpios().size(), 28U);
  EXPECT_EQ(board->BlockFor("I2cMaster", 1), "I2C1");
  EXPECT_EQ(board->BlockFor("Uart", 0), "UART0");
  EXPECT_EQ(board->Channels("PWM0"), 2);
  EXPECT_EQ(board->linux_devices().gpio_chip, "/dev/gpiochip0");
  EXPECT_EQ(board->linux_devices().devices.at("SPI0"), "/dev/spidev0");
}

}  // namespace
}  // namespace aspis::device::board
