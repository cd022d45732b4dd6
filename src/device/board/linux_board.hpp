#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "core/fd.hpp"
#include "device/board/board_definition.hpp"
#include "device/board/peripherals.hpp"

// A Linux board's peripherals (Backend "linux"), where its definition's Linux section says they
// are: GPIOs through the GPIO character device (libgpiod), UARTs through termios, I2C through
// i2c-dev, SPI through spidev, ADC channels through IIO (in_voltageN_raw), PWM through sysfs
// (/sys/class/pwm). The GPIO chip and the I2C and SPI transfers go through the small interfaces
// below, which a board without such devices (a test machine) replaces with fakes; the sysfs files
// and terminals are opened where the definition names them.
namespace aspis::device::board {

// One GPIO chip: line N is the board's GPIO N.
class GpioChip {
 public:
  virtual ~GpioChip() = default;
  virtual Expected<void> Request(int line, GpioMode mode, bool value) = 0;
  virtual void Release(int line) = 0;
  virtual Expected<bool> Get(int line) = 0;
  virtual Expected<void> Set(int line, bool value) = 0;
};

// The chip at `path`, through libgpiod. Errors: ENODEV when it cannot be opened.
Expected<std::unique_ptr<GpioChip>> OpenGpiodChip(const std::string& path);

// I2C and SPI transfers on a device node (i2c-dev's I2C_RDWR, spidev's SPI_IOC_MESSAGE).
class BusDevices {
 public:
  virtual ~BusDevices() = default;
  virtual Expected<void> I2cTransfer(const std::string& device, int address,
                                     std::span<const std::uint8_t> write,
                                     std::span<std::uint8_t> read,
                                     std::chrono::milliseconds timeout) = 0;
  virtual Expected<void> SpiTransfers(const std::string& device, const SpiSettings& settings,
                                      std::span<const SpiTransfer> transfers) = 0;
};

// The kernel's: each node opened on first use and kept open.
std::unique_ptr<BusDevices> KernelBusDevices();

// Writes the system time (UTC) to the real-time clock `device` (/dev/rtc0), as clock_systohc
// does. Errors: as the kernel answers.
Expected<void> SaveSystemTimeToRtc(const std::string& device);

class LinuxBoard final : public Peripherals {
 public:
  // `chip` null: the board has no GPIOs.
  LinuxBoard(const BoardDefinition& board, std::unique_ptr<GpioChip> chip,
             std::unique_ptr<BusDevices> buses);

  Expected<void> OpenGpio(int gpio, GpioMode mode, bool value) override;
  void CloseGpio(int gpio) override;
  Expected<bool> GetGpio(int gpio) override;
  Expected<void> SetGpio(int gpio, bool value) override;
  Expected<int> AdcBits(const std::string& block, int channel) override;
  Expected<void> SetAdcReference(const std::string& block, int channel,
                                 std::uint32_t microvolts) override;
  Expected<std::uint32_t> PollAdc(const std::string& block, int channel) override;
  Expected<void> ApplyPwm(const std::string& block, int channel, const PwmState& state) override;
  void ClosePwm(const std::string& block) override;
  Expected<void> I2cTransfer(const std::string& block, int address,
                             std::span<const std::uint8_t> write, std::span<std::uint8_t> read,
                             std::chrono::milliseconds timeout) override;
  Expected<void> SpiTransfers(const std::string& block, const SpiSettings& settings,
                              std::span<const SpiTransfer> transfers) override;
  Expected<Fd> OpenUart(const std::string& block, const UartSettings& settings) override;
  // The descriptor is the app's channel's; it closes with it.
  void CloseUart(const std::string& /*block*/) override {}

 private:
  // The block's device, or ENODEV.
  Expected<std::string> Device(const std::string& block) const;
  Expected<void> CheckChannel(const std::string& block, int channel) const;

  const BoardDefinition board_;
  std::unique_ptr<GpioChip> chip_;
  std::unique_ptr<BusDevices> buses_;
  std::mutex mutex_;
  std::map<int, GpioMode> open_gpios_;                 // guarded by mutex_
  std::map<std::string, std::set<int>> exported_pwm_;  // guarded by mutex_
};

}  // namespace aspis::device::board
