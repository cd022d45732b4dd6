#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/fd.hpp"
#include "device/board/board_definition.hpp"
#include "device/board/lsm6ds3.hpp"
#include "device/board/peripherals.hpp"

// The virtual board's peripherals (Backend "sim"): GPIOs with the definition's LEDs and buttons,
// ADC channels a person or test sets (12 bits, 2.5 V reference), PWM channels whose state they
// read, an LSM6DS3 model at each of the definition's Sensors, and each UART a pseudo-terminal a
// real program opens at uart-path to play the device at the other end. What `aspis dev board`
// shows and does goes through the methods after the Peripherals ones. Thread-safe.
namespace aspis::device::board {

struct LedState {
  std::string name;
  int gpio = 0;
  bool lit = false;
};

struct PwmChannelState {
  std::string block;
  int channel = 0;
  PwmState state;
};

class SimBoard final : public Peripherals {
 public:
  static constexpr int kAdcBits = 12;

  explicit SimBoard(const BoardDefinition& board);
  ~SimBoard() override;
  SimBoard(const SimBoard&) = delete;
  SimBoard& operator=(const SimBoard&) = delete;

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
  void CloseUart(const std::string& block) override;

  // A button (by name, "A", or GPIO number, "12") held down or let go. Errors: kNotFound.
  Expected<void> Press(const std::string& button, bool pressed);
  std::vector<LedState> Leds() const;
  // What ADC channel `channel` of `block` reads from now on (0 to 4095). Errors: kInvalidArgument.
  Expected<void> SetAdc(const std::string& block, int channel, std::uint32_t value);
  std::vector<PwmChannelState> Pwm() const;
  // The pseudo-terminal a program opens to be the far end of a UART (its block, "ISU0", or its
  // ID, "4") while an app has it open. Errors: kNotFound when no app has it open.
  Expected<std::string> UartPath(const std::string& uart) const;

 private:
  struct Pin {
    GpioMode mode = GpioMode::kInput;
    bool value = false;  // what an output drives
  };
  struct Uart {
    Fd master;  // aspisd's copy, so the terminal lives while the app has it
    Fd slave;   // held open so the app reads nothing, rather than EIO, while no one is there
    std::string path;
  };
  // The level on `gpio`: what drives it, else its button (high until pressed), else low.
  bool Level(int gpio) const;
  Expected<void> CheckChannel(const std::string& block, int channel) const;
  Lsm6ds3* SensorAt(const std::string& block, std::optional<int> address,
                    std::optional<int> chip_select);

  const BoardDefinition board_;
  mutable std::mutex mutex_;
  std::map<int, Pin> open_gpios_;
  std::set<int> pressed_;
  std::map<std::pair<std::string, int>, std::uint32_t> adc_;
  std::map<std::pair<std::string, int>, PwmState> pwm_;
  std::map<std::string, Uart> uarts_;
  std::vector<std::pair<Sensor, std::unique_ptr<Lsm6ds3>>> sensors_;
};

}  // namespace aspis::device::board
