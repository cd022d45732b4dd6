#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"

// What drives a board's peripherals (DESIGN section 1): the simulator (sim_board.hpp) or a Linux
// board's devices. The peripheral server (peripheral_server.hpp) calls it once an app's manifest
// and the board definition allowed the call, naming GPIOs by number and blocks by their board
// name ("ISU2"); channels, addresses and chip selects are the app's and must be checked here.
// Errors carry the errno the app sees (std::errc codes): EINVAL for an argument out of range,
// ENXIO for no device answering on a bus, EIO for a device that failed.
namespace aspis::device::board {

enum class GpioMode { kInput, kPushPull, kOpenDrain, kOpenSource };

struct PwmState {
  std::uint32_t period_ns = 0;
  std::uint32_t duty_ns = 0;
  bool inverted = false;  // PWM_Polarity_Inversed
  bool enabled = false;
};

// SPI_Mode 1 to 4 are clock polarity and phase 0/0, 0/1, 1/0, 1/1, as Azure Sphere numbers them.
struct SpiSettings {
  int chip_select = -1;  // -1: A, -2: B
  std::uint32_t speed_hz = 0;
  int mode = 1;
  bool msb_first = true;
};

// One SPI transfer of a sequence: `write` is sent (zeros when empty and reading) while `read`
// fills (when reading); the two are as long as each other when both are given.
struct SpiTransfer {
  std::span<const std::uint8_t> write;
  std::span<std::uint8_t> read;
};

struct UartSettings {
  std::uint32_t baud_rate = 115200;
  int data_bits = 8;     // 5 to 8
  char parity = 'N';     // 'N', 'E', 'O'
  int stop_bits = 1;     // 1 or 2
  int flow_control = 0;  // 0 none, 1 RTS/CTS, 2 XON/XOFF (UART_FlowControl)
};

// Called from the peripheral server's thread only.
class Peripherals {
 public:
  virtual ~Peripherals() = default;

  virtual Expected<void> OpenGpio(int gpio, GpioMode mode, bool value) = 0;
  // The GPIO is no one's any more: it floats, as it was before it was opened.
  virtual void CloseGpio(int gpio) = 0;
  virtual Expected<bool> GetGpio(int gpio) = 0;
  // Ignored on a GPIO opened as an input, as Azure Sphere ignores it.
  virtual Expected<void> SetGpio(int gpio, bool value) = 0;

  virtual Expected<int> AdcBits(const std::string& block, int channel) = 0;
  virtual Expected<void> SetAdcReference(const std::string& block, int channel,
                                         std::uint32_t microvolts) = 0;
  virtual Expected<std::uint32_t> PollAdc(const std::string& block, int channel) = 0;

  virtual Expected<void> ApplyPwm(const std::string& block, int channel, const PwmState& state) = 0;
  // Every channel of the controller off: its app let it go.
  virtual void ClosePwm(const std::string& block) = 0;

  // Writes `write` to the target at `address`, then (with a repeated start) reads `read`, giving
  // up after `timeout` (a target stretching the clock) where the bus can.
  virtual Expected<void> I2cTransfer(const std::string& block, int address,
                                     std::span<const std::uint8_t> write,
                                     std::span<std::uint8_t> read,
                                     std::chrono::milliseconds timeout) = 0;
  // One sequence with the chip select held active throughout.
  virtual Expected<void> SpiTransfers(const std::string& block, const SpiSettings& settings,
                                      std::span<const SpiTransfer> transfers) = 0;

  // The descriptor an app reads and writes the UART through, set up as `settings` say.
  virtual Expected<Fd> OpenUart(const std::string& block, const UartSettings& settings) = 0;
  virtual void CloseUart(const std::string& block) = 0;
};

}  // namespace aspis::device::board
