#include "device/board/linux_board.hpp"

#include <fcntl.h>
#include <gpiod.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <linux/rtc.h>
#include <linux/spi/spidev.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

#include "core/file.hpp"
#include "core/log.hpp"
#include "device/board/sysfs.hpp"
#include "device/board/terminal.hpp"

namespace aspis::device::board {

namespace fs = std::filesystem;

namespace {

std::unexpected<Error> Errno(std::errc code, std::string message) {
  return Fail(std::make_error_code(code), std::move(message));
}

std::unexpected<Error> FromErrno(std::string message) {
  const int error = errno;
  // A target that did not acknowledge, however the adapter says it.
  const int seen = error == EREMOTEIO ? ENXIO : error;
  return Fail(std::error_code(seen, std::generic_category()),
              std::move(message) + ": " + std::generic_category().message(error));
}

// The whole number in the sysfs attribute `path`.
Expected<long long> ReadNumber(const fs::path& path) {
  const auto read = ReadAttribute(path);
  if (!read) return Errno(std::errc::io_error, "cannot read " + path.string());
  const std::string& text = *read;
  long long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    return Errno(std::errc::io_error, path.string() + " holds no number");
  }
  return value;
}

struct ChipCloser {
  void operator()(gpiod_chip* chip) const { ::gpiod_chip_close(chip); }
};

class GpiodChip final : public GpioChip {
 public:
  explicit GpiodChip(gpiod_chip* chip) : chip_(chip) {}

  Expected<void> Request(int line, GpioMode mode, bool value) override {
    gpiod_line* handle = ::gpiod_chip_get_line(chip_.get(), static_cast<unsigned>(line));
    if (handle == nullptr) return FromErrno("GPIO line " + std::to_string(line));
    int result = 0;
    if (mode == GpioMode::kInput) {
      result = ::gpiod_line_request_input(handle, "aspisd");
    } else {
      const int flags = mode == GpioMode::kOpenDrain    ? GPIOD_LINE_REQUEST_FLAG_OPEN_DRAIN
                        : mode == GpioMode::kOpenSource ? GPIOD_LINE_REQUEST_FLAG_OPEN_SOURCE
                                                        : 0;
      result = ::gpiod_line_request_output_flags(handle, "aspisd", flags, value ? 1 : 0);
    }
    if (result != 0) return FromErrno("requesting GPIO line " + std::to_string(line));
    return {};
  }
  void Release(int line) override {
    if (gpiod_line* handle = ::gpiod_chip_get_line(chip_.get(), static_cast<unsigned>(line))) {
      ::gpiod_line_release(handle);
    }
  }
  Expected<bool> Get(int line) override {
    gpiod_line* handle = ::gpiod_chip_get_line(chip_.get(), static_cast<unsigned>(line));
    const int value = handle == nullptr ? -1 : ::gpiod_line_get_value(handle);
    if (value < 0) return FromErrno("reading GPIO line " + std::to_string(line));
    return value == 1;
  }
  Expected<void> Set(int line, bool value) override {
    gpiod_line* handle = ::gpiod_chip_get_line(chip_.get(), static_cast<unsigned>(line));
    if (handle == nullptr || ::gpiod_line_set_value(handle, value ? 1 : 0) != 0) {
      return FromErrno("setting GPIO line " + std::to_string(line));
    }
    return {};
  }

 private:
  std::unique_ptr<gpiod_chip, ChipCloser> chip_;
};

class KernelBuses final : public BusDevices {
 public:
  Expected<void> I2cTransfer(const std::string& device, int address,
                             std::span<const std::uint8_t> write, std::span<std::uint8_t> read,
                             std::chrono::milliseconds timeout) override {
    auto fd = Open(device);
    if (!fd) return std::unexpected(fd.error());
    // i2c-dev counts the adapter's timeout in tens of milliseconds.
    if (::ioctl(*fd, I2C_TIMEOUT, static_cast<unsigned long>(timeout.count() / 10)) < 0) {
      return FromErrno("setting the timeout of " + device);
    }
    std::array<i2c_msg, 2> messages{};
    std::uint32_t count = 0;
    if (!write.empty()) {
      messages[count++] = {static_cast<__u16>(address), 0, static_cast<__u16>(write.size()),
                           const_cast<__u8*>(write.data())};
    }
    if (!read.empty()) {
      messages[count++] = {static_cast<__u16>(address), I2C_M_RD, static_cast<__u16>(read.size()),
                           read.data()};
    }
    i2c_rdwr_ioctl_data transfer{messages.data(), count};
    if (::ioctl(*fd, I2C_RDWR, &transfer) < 0) return FromErrno("I2C transfer on " + device);
    return {};
  }

  Expected<void> SpiTransfers(const std::string& device, const SpiSettings& settings,
                              std::span<const SpiTransfer> transfers) override {
    // Chip select A is the bus's device .0, B its .1.
    auto fd = Open(device + (settings.chip_select == -1 ? ".0" : ".1"));
    if (!fd) return std::unexpected(fd.error());
    const std::uint8_t mode = static_cast<std::uint8_t>(settings.mode - 1);  // SPI_MODE_0..3
    const std::uint8_t lsb_first = settings.msb_first ? 0 : 1;
    if (::ioctl(*fd, SPI_IOC_WR_MODE, &mode) < 0 ||
        ::ioctl(*fd, SPI_IOC_WR_LSB_FIRST, &lsb_first) < 0 ||
        (settings.speed_hz != 0 && ::ioctl(*fd, SPI_IOC_WR_MAX_SPEED_HZ, &settings.speed_hz) < 0)) {
      return FromErrno("configuring " + device);
    }
    std::vector<spi_ioc_transfer> messages(transfers.size());
    for (std::size_t i = 0; i < transfers.size(); ++i) {
      const SpiTransfer& t = transfers[i];
      messages[i].tx_buf = reinterpret_cast<std::uintptr_t>(t.write.data());
      messages[i].rx_buf = reinterpret_cast<std::uintptr_t>(t.read.data());
      messages[i].len =
          static_cast<std::uint32_t>(t.write.empty() ? t.read.size() : t.write.size());
      messages[i].speed_hz = settings.speed_hz;
    }
    // SPI_IOC_MESSAGE(n) for a count known only at run time.
    const unsigned long request = _IOC(_IOC_WRITE, SPI_IOC_MAGIC, 0, SPI_MSGSIZE(messages.size()));
    if (messages.empty() || ::ioctl(*fd, request, messages.data()) < 0) {
      return FromErrno("SPI transfer on " + device);
    }
    return {};
  }

 private:
  Expected<int> Open(const std::string& device) {
    auto found = open_.find(device);
    if (found == open_.end()) {
      Fd fd(::open(device.c_str(), O_RDWR | O_CLOEXEC));
      if (fd.get() < 0) return FromErrno("opening " + device);
      found = open_.emplace(device, std::move(fd)).first;
    }
    return found->second.get();
  }

  std::map<std::string, Fd> open_;
};

}  // namespace

Expected<std::unique_ptr<GpioChip>> OpenGpiodChip(const std::string& path) {
  gpiod_chip* chip = ::gpiod_chip_open(path.c_str());
  if (chip == nullptr) return Errno(std::errc::no_such_device, "cannot open " + path);
  return std::unique_ptr<GpioChip>(std::make_unique<GpiodChip>(chip));
}

std::unique_ptr<BusDevices> KernelBusDevices() { return std::make_unique<KernelBuses>(); }

Expected<void> SaveSystemTimeToRtc(const std::string& device) {
  const Fd rtc(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
  if (rtc.get() < 0) return FromErrno("opening " + device);
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  if (::gmtime_r(&now, &utc) == nullptr) return Errno(std::errc::io_error, "no time");
  rtc_time time{};
  time.tm_sec = utc.tm_sec;
  time.tm_min = utc.tm_min;
  time.tm_hour = utc.tm_hour;
  time.tm_mday = utc.tm_mday;
  time.tm_mon = utc.tm_mon;
  time.tm_year = utc.tm_year;
  if (::ioctl(rtc.get(), RTC_SET_TIME, &time) != 0) return FromErrno("setting " + device);
  return {};
}

LinuxBoard::LinuxBoard(const BoardDefinition& board, std::unique_ptr<GpioChip> chip,
                       std::unique_ptr<BusDevices> buses)
    : board_(board), chip_(std::move(chip)), buses_(std::move(buses)) {}

Expected<std::string> LinuxBoard::Device(const std::string& block) const {
  const auto& devices = board_.linux_devices().devices;
  const auto found = devices.find(block);
  if (found == devices.end()) {
    return Errno(std::errc::no_such_device, "the board names no device for " + block);
  }
  return found->second;
}

Expected<void> LinuxBoard::CheckChannel(const std::string& block, int channel) const {
  if (channel < 0 || channel >= board_.Channels(block)) {
    return Errno(std::errc::invalid_argument, "no such channel");
  }
  return {};
}

Expected<void> LinuxBoard::OpenGpio(int gpio, GpioMode mode, bool value) {
  if (chip_ == nullptr || !board_.gpios().contains(gpio)) {
    return Errno(std::errc::no_such_device, "no such GPIO");
  }
  const std::lock_guard lock(mutex_);
  if (auto requested = chip_->Request(gpio, mode, value); !requested) return requested;
  open_gpios_[gpio] = mode;
  return {};
}

void LinuxBoard::CloseGpio(int gpio) {
  const std::lock_guard lock(mutex_);
  if (open_gpios_.erase(gpio) > 0) chip_->Release(gpio);
}

Expected<bool> LinuxBoard::GetGpio(int gpio) {
  const std::lock_guard lock(mutex_);
  if (!open_gpios_.contains(gpio)) return Errno(std::errc::bad_file_descriptor, "not open");
  return chip_->Get(gpio);
}

Expected<void> LinuxBoard::SetGpio(int gpio, bool value) {
  const std::lock_guard lock(mutex_);
  const auto found = open_gpios_.find(gpio);
  if (found == open_gpios_.end()) return Errno(std::errc::bad_file_descriptor, "not open");
  if (found->second == GpioMode::kInput) return {};  // ignored, as on Azure Sphere
  return chip_->Set(gpio, value);
}

Expected<int> LinuxBoard::AdcBits(const std::string& block, int channel) {
  if (auto ok = CheckChannel(block, channel); !ok) return std::unexpected(ok.error());
  auto device = Device(block);
  if (!device) return std::unexpected(device.error());
  // IIO says a channel's sample format as "le:u12/16>>0": the 12.
  std::ifstream type(fs::path(*device) / "scan_elements" /
                     ("in_voltage" + std::to_string(channel) + "_type"));
  std::string format;
  if (type >> format) {
    const auto sign = format.find_first_of("us", format.find(':'));
    int bits = 0;
    if (sign != std::string::npos &&
        std::from_chars(format.data() + sign + 1, format.data() + format.size(), bits).ec ==
            std::errc() &&
        bits > 0 && bits <= 32) {
      return bits;
    }
  }
  return 12;
}

Expected<void> LinuxBoard::SetAdcReference(const std::string& block, int channel,
                                           std::uint32_t microvolts) {
  if (auto ok = CheckChannel(block, channel); !ok) return ok;
  // The reference is the board's wiring; the value is taken as the app's to scale samples with.
  if (microvolts == 0) return Errno(std::errc::invalid_argument, "no reference");
  return {};
}

Expected<std::uint32_t> LinuxBoard::PollAdc(const std::string& block, int channel) {
  if (auto ok = CheckChannel(block, channel); !ok) return std::unexpected(ok.error());
  auto device = Device(block);
  if (!device) return std::unexpected(device.error());
  auto raw = ReadNumber(fs::path(*device) / ("in_voltage" + std::to_string(channel) + "_raw"));
  if (!raw) return std::unexpected(raw.error());
  if (*raw < 0 || *raw > UINT32_MAX) return Errno(std::errc::io_error, "sample out of range");
  return static_cast<std::uint32_t>(*raw);
}

Expected<void> LinuxBoard::ApplyPwm(const std::string& block, int channel, const PwmState& state) {
  if (auto ok = CheckChannel(block, channel); !ok) return ok;
  if (state.period_ns == 0 || state.duty_ns > state.period_ns) {
    return Errno(std::errc::invalid_argument, "the duty cycle must be within a nonzero period");
  }
  auto device = Device(block);
  if (!device) return std::unexpected(device.error());
  const fs::path chip(*device);
  const fs::path pwm = chip / ("pwm" + std::to_string(channel));
  const std::lock_guard lock(mutex_);
  std::error_code ec;
  if (!fs::exists(pwm, ec)) {
    if (auto exported = WriteAttribute(chip / "export", std::to_string(channel)); !exported) {
      return exported;
    }
  }
  exported_pwm_[block].insert(channel);
  // Polarity changes only while disabled; a period shorter than the duty cycle is refused, so
  // the duty cycle goes to 0 first.
  for (const auto& [attribute, value] : {std::pair<const char*, std::string>{"enable", "0"},
                                         {"duty_cycle", "0"},
                                         {"period", std::to_string(state.period_ns)},
                                         {"duty_cycle", std::to_string(state.duty_ns)},
                                         {"polarity", state.inverted ? "inversed" : "normal"},
                                         {"enable", state.enabled ? "1" : "0"}}) {
    if (auto written = WriteAttribute(pwm / attribute, value); !written) return written;
  }
  return {};
}

void LinuxBoard::ClosePwm(const std::string& block) {
  auto device = Device(block);
  const std::lock_guard lock(mutex_);
  const auto exported = exported_pwm_.find(block);
  if (!device || exported == exported_pwm_.end()) return;
  const fs::path chip(*device);
  for (const int channel : exported->second) {
    for (const auto& written :
         {WriteAttribute(chip / ("pwm" + std::to_string(channel)) / "enable", "0"),
          WriteAttribute(chip / "unexport", std::to_string(channel))}) {
      if (!written) log::Warning("letting PWM {} go: {}", block, written.error().message());
    }
  }
  exported_pwm_.erase(exported);
}

Expected<void> LinuxBoard::I2cTransfer(const std::string& block, int address,
                                       std::span<const std::uint8_t> write,
                                       std::span<std::uint8_t> read,
                                       std::chrono::milliseconds timeout) {
  if (address < 0 || address > 0x7f) return Errno(std::errc::invalid_argument, "bad address");
  auto device = Device(block);
  if (!device) return std::unexpected(device.error());
  return buses_->I2cTransfer(*device, address, write, read, timeout);
}

Expected<void> LinuxBoard::SpiTransfers(const std::string& block, const SpiSettings& settings,
                                        std::span<const SpiTransfer> transfers) {
  auto device = Device(block);
  if (!device) return std::unexpected(device.error());
  return buses_->SpiTransfers(*device, settings, transfers);
}

Expected<Fd> LinuxBoard::OpenUart(const std::string& block, const UartSettings& settings) {
  auto device = Device(block);
  if (!device) return std::unexpected(device.error());
  Fd tty(::open(device->c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (tty.get() < 0) return FromErrno("opening " + *device);
  // No other process opens it while an app has it.
  if (::ioctl(tty.get(), TIOCEXCL) != 0) return FromErrno("taking " + *device);
  if (auto set = ConfigureTerminal(tty.get(), settings); !set) return std::unexpected(set.error());
  return tty;
}

}  // namespace aspis::device::board
