#include "device/board/terminal.hpp"

#include <termios.h>

#include <algorithm>
#include <array>
#include <system_error>
#include <utility>

namespace aspis::device::board {

namespace {

speed_t BaudConstant(std::uint32_t baud) {
  static constexpr std::array<std::pair<std::uint32_t, speed_t>, 18> kRates = {{
      {1200, B1200},
      {2400, B2400},
      {4800, B4800},
      {9600, B9600},
      {19200, B19200},
      {38400, B38400},
      {57600, B57600},
      {115200, B115200},
      {230400, B230400},
      {460800, B460800},
      {500000, B500000},
      {576000, B576000},
      {921600, B921600},
      {1000000, B1000000},
      {1152000, B1152000},
      {1500000, B1500000},
      {2000000, B2000000},
      {3000000, B3000000},
  }};
  for (const auto& [rate, constant] : kRates) {
    if (rate == baud) return constant;
  }
  return B0;
}

}  // namespace

Expected<void> ConfigureTerminal(int fd, const UartSettings& settings) {
  const speed_t speed = BaudConstant(settings.baud_rate);
  if (speed == B0) {
    return Fail(std::make_error_code(std::errc::invalid_argument), "unsupported baud rate");
  }
  termios mode{};
  if (::tcgetattr(fd, &mode) != 0) {
    return Fail(std::make_error_code(std::errc::io_error), "not a terminal");
  }
  ::cfmakeraw(&mode);
  ::cfsetspeed(&mode, speed);
  mode.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
  mode.c_cflag |= CLOCAL | CREAD;
  static constexpr std::array<tcflag_t, 4> kSizes = {CS5, CS6, CS7, CS8};
  mode.c_cflag |= kSizes[static_cast<std::size_t>(std::clamp(settings.data_bits, 5, 8) - 5)];
  if (settings.parity != 'N') mode.c_cflag |= PARENB | (settings.parity == 'O' ? PARODD : 0);
  if (settings.stop_bits == 2) mode.c_cflag |= CSTOPB;
  if (settings.flow_control == 1) mode.c_cflag |= CRTSCTS;
  if (settings.flow_control == 2) mode.c_iflag |= IXON | IXOFF;
  if (::tcsetattr(fd, TCSANOW, &mode) != 0) {
    return Fail(std::make_error_code(std::errc::io_error), "cannot set the terminal up");
  }
  return {};
}

}  // namespace aspis::device::board
