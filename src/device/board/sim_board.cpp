#include "device/board/sim_board.hpp"

#include <fcntl.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "device/board/terminal.hpp"

namespace aspis::device::board {

namespace {

std::unexpected<Error> Errno(std::errc code, std::string message) {
  return Fail(std::make_error_code(code), std::move(message));
}

}  // namespace

SimBoard::SimBoard(const BoardDefinition& board) : board_(board) {
  for (const Sensor& sensor : board_.sensors()) {
    sensors_.emplace_back(sensor, std::make_unique<Lsm6ds3>());
  }
}

SimBoard::~SimBoard() = default;

bool SimBoard::Level(int gpio) const {
  const auto button = std::find_if(board_.buttons().begin(), board_.buttons().end(),
                                   [&](const Button& b) { return b.gpio == gpio; });
  const bool floating = button != board_.buttons().end() && !pressed_.contains(gpio);
  const auto pin = open_gpios_.find(gpio);
  if (pin == open_gpios_.end()) return floating;
  switch (pin->second.mode) {
    case GpioMode::kInput:
      return floating;
    case GpioMode::kPushPull:
      return pin->second.value;
    case GpioMode::kOpenDrain:  // drives low, lets the line float high
      return pin->second.value && floating;
    case GpioMode::kOpenSource:  // drives high, lets the line float low
      return pin->second.value || floating;
  }
  return floating;
}

Expected<void> SimBoard::OpenGpio(int gpio, GpioMode mode, bool value) {
  const std::lock_guard lock(mutex_);
  if (!board_.gpios().contains(gpio)) return Errno(std::errc::no_such_device, "no such GPIO");
  open_gpios_[gpio] = {mode, value};
  return {};
}

void SimBoard::CloseGpio(int gpio) {
  const std::lock_guard lock(mutex_);
  open_gpios_.erase(gpio);
}

Expected<bool> SimBoard::GetGpio(int gpio) {
  const std::lock_guard lock(mutex_);
  return Level(gpio);
}

Expected<void> SimBoard::SetGpio(int gpio, bool value) {
  const std::lock_guard lock(mutex_);
  const auto pin = open_gpios_.find(gpio);
  if (pin != open_gpios_.end() && pin->second.mode != GpioMode::kInput) pin->second.value = value;
  return {};
}

Expected<void> SimBoard::CheckChannel(const std::string& block, int channel) const {
  if (channel < 0 || channel >= board_.Channels(block)) {
    return Errno(std::errc::invalid_argument, "no such channel");
  }
  return {};
}

Expected<int> SimBoard::AdcBits(const std::string& block, int channel) {
  if (auto ok = CheckChannel(block, channel); !ok) return std::unexpected(ok.error());
  return kAdcBits;
}

Expected<void> SimBoard::SetAdcReference(const std::string& block, int channel,
                                         std::uint32_t microvolts) {
  if (auto ok = CheckChannel(block, channel); !ok) return ok;
  // The MT3620 takes an external reference between 1.8 V and 2.5 V.
  if (microvolts < 1'800'000 || microvolts > 2'500'000) {
    return Errno(std::errc::invalid_argument, "the reference must be 1.8 V to 2.5 V");
  }
  return {};
}

Expected<std::uint32_t> SimBoard::PollAdc(const std::string& block, int channel) {
  if (auto ok = CheckChannel(block, channel); !ok) return std::unexpected(ok.error());
  const std::lock_guard lock(mutex_);
  const auto value = adc_.find({block, channel});
  return value == adc_.end() ? 0 : value->second;
}

Expected<void> SimBoard::ApplyPwm(const std::string& block, int channel, const PwmState& state) {
  if (auto ok = CheckChannel(block, channel); !ok) return ok;
  if (state.period_ns == 0 || state.duty_ns > state.period_ns) {
    return Errno(std::errc::invalid_argument, "the duty cycle must be within a nonzero period");
  }
  const std::lock_guard lock(mutex_);
  pwm_[{block, channel}] = state;
  return {};
}

void SimBoard::ClosePwm(const std::string& block) {
  const std::lock_guard lock(mutex_);
  std::erase_if(pwm_, [&](const auto& entry) { return entry.first.first == block; });
}

Lsm6ds3* SimBoard::SensorAt(const std::string& block, std::optional<int> address,
                            std::optional<int> chip_select) {
  for (auto& [sensor, model] : sensors_) {
    if (sensor.block == block && sensor.address == address && sensor.chip_select == chip_select) {
      return model.get();
    }
  }
  return nullptr;
}

// The model answers at once: no transfer waits for its timeout.
Expected<void> SimBoard::I2cTransfer(const std::string& block, int address,
                                     std::span<const std::uint8_t> write,
                                     std::span<std::uint8_t> read,
                                     std::chrono::milliseconds /*timeout*/) {
  if (address < 0 || address > 0x7f) return Errno(std::errc::invalid_argument, "bad address");
  const std::lock_guard lock(mutex_);
  Lsm6ds3* sensor = SensorAt(block, address, std::nullopt);
  if (sensor == nullptr) return Errno(std::errc::no_such_device_or_address, "no target answered");
  if (!write.empty()) sensor->I2cWrite(write);
  if (!read.empty()) sensor->I2cRead(read);
  return {};
}

Expected<void> SimBoard::SpiTransfers(const std::string& block, const SpiSettings& settings,
                                      std::span<const SpiTransfer> transfers) {
  const std::lock_guard lock(mutex_);
  Lsm6ds3* sensor = SensorAt(block, std::nullopt, settings.chip_select);
  // Nothing selected answers: MISO floats, and reads as zeros.
  std::vector<std::uint8_t> mosi;
  for (const SpiTransfer& t : transfers) {
    if (t.write.empty()) {
      mosi.resize(mosi.size() + t.read.size(), 0);
    } else {
      mosi.insert(mosi.end(), t.write.begin(), t.write.end());
    }
  }
  std::vector<std::uint8_t> miso(mosi.size(), 0);
  // The LSM6DS3 speaks SPI modes 0 and 3, most significant bit first.
  if (sensor != nullptr && settings.msb_first && (settings.mode == 1 || settings.mode == 4)) {
    sensor->SpiTransaction(mosi, miso);
  }
  std::size_t at = 0;
  for (const SpiTransfer& t : transfers) {
    const std::size_t length = t.write.empty() ? t.read.size() : t.write.size();
    std::copy_n(miso.begin() + static_cast<std::ptrdiff_t>(at), t.read.size(), t.read.begin());
    at += length;
  }
  return {};
}

Expected<Fd> SimBoard::OpenUart(const std::string& block, const UartSettings& settings) {
  Fd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (master.get() < 0 || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) {
    return Errno(std::errc::io_error, "cannot make a pseudo-terminal");
  }
  std::array<char, 64> name{};
  if (::ptsname_r(master.get(), name.data(), name.size()) != 0) {
    return Errno(std::errc::io_error, "cannot name the pseudo-terminal");
  }
  Fd slave(::open(name.data(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (slave.get() < 0) return Errno(std::errc::io_error, "cannot open the pseudo-terminal");
  // A wire, not a terminal: bytes pass unchanged, framed as the app asked.
  if (auto set = ConfigureTerminal(slave.get(), settings); !set)
    return std::unexpected(set.error());
  Fd app(::fcntl(master.get(), F_DUPFD_CLOEXEC, 0));
  if (app.get() < 0) return Errno(std::errc::io_error, "cannot share the pseudo-terminal");
  const std::lock_guard lock(mutex_);
  uarts_.insert_or_assign(block, Uart{std::move(master), std::move(slave), name.data()});
  return app;
}

void SimBoard::CloseUart(const std::string& block) {
  const std::lock_guard lock(mutex_);
  uarts_.erase(block);
}

Expected<void> SimBoard::Press(const std::string& button, bool pressed) {
  const auto found = std::find_if(
      board_.buttons().begin(), board_.buttons().end(),
      [&](const Button& b) { return b.name == button || std::to_string(b.gpio) == button; });
  if (found == board_.buttons().end()) {
    return Fail(CoreErrc::kNotFound, "the board " + board_.name() + " has no button " + button);
  }
  const std::lock_guard lock(mutex_);
  if (pressed) {
    pressed_.insert(found->gpio);
  } else {
    pressed_.erase(found->gpio);
  }
  return {};
}

std::vector<LedState> SimBoard::Leds() const {
  const std::lock_guard lock(mutex_);
  std::vector<LedState> leds;
  for (const Led& led : board_.leds()) {
    const auto pin = open_gpios_.find(led.gpio);
    const bool driven = pin != open_gpios_.end() && pin->second.mode != GpioMode::kInput;
    leds.push_back({led.name, led.gpio, driven && Level(led.gpio) != led.active_low});
  }
  return leds;
}

Expected<void> SimBoard::SetAdc(const std::string& block, int channel, std::uint32_t value) {
  if (CheckChannel(block, channel) && board_.Pins("Adc", block) && value < (1U << kAdcBits)) {
    const std::lock_guard lock(mutex_);
    adc_[{block, channel}] = value;
    return {};
  }
  return Fail(CoreErrc::kInvalidArgument,
              "an ADC sample is 0 to 4095 on a channel of one of the board's ADC controllers");
}

std::vector<PwmChannelState> SimBoard::Pwm() const {
  const std::lock_guard lock(mutex_);
  std::vector<PwmChannelState> channels;
  channels.reserve(pwm_.size());
  for (const auto& [where, state] : pwm_) channels.push_back({where.first, where.second, state});
  return channels;
}

Expected<std::string> SimBoard::UartPath(const std::string& uart_name) const {
  const bool id =
      !uart_name.empty() && uart_name.size() <= 4 &&
      std::all_of(uart_name.begin(), uart_name.end(), [](char c) { return c >= '0' && c <= '9'; });
  const std::string block =
      id ? board_.BlockFor("Uart", std::stoi(uart_name)).value_or(uart_name) : uart_name;
  const std::lock_guard lock(mutex_);
  const auto uart = uarts_.find(block);
  if (uart == uarts_.end()) return Fail(CoreErrc::kNotFound, "no app has UART " + block + " open");
  return uart->second.path;
}

}  // namespace aspis::device::board
