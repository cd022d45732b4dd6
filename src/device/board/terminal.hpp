#pragma once

#include "core/error.hpp"
#include "device/board/peripherals.hpp"

namespace aspis::device::board {

// Sets the terminal `fd` up as a UART wire: raw (bytes pass unchanged), at the baud rate, data
// bits, parity, stop bits and flow control `settings` give. Errors: EINVAL for a baud rate
// termios has no constant for; EIO when the terminal refuses.
Expected<void> ConfigureTerminal(int fd, const UartSettings& settings);

}  // namespace aspis::device::board
