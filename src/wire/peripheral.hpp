#pragma once

#include <cstddef>
#include <cstdint>

// A peripheral channel: what an app's GPIO, ADC, PWM, I2C or SPI descriptor is. aspisd's broker
// hands the app one end of a SOCK_SEQPACKET socket pair per opened peripheral (device/board/
// peripheral_server.hpp) and serves the other; libaspis-applibs speaks this on it. Each request
// is one message, a Request and then `Request::length` bytes, answered by one message, a Reply and
// then `Reply::length` bytes. Numbers are in the host's byte order (both ends run on the device).
// An app that breaks the protocol gets EINVAL; one that closes its end frees the peripheral.
namespace aspis::wire::peripheral {

enum class Op : std::uint32_t {
  kGpioGet = 1,   // value = 0 or 1
  kGpioSet,       // arg[0]: 0 or 1
  kAdcBits,       // arg[0]: channel; value = bits per sample
  kAdcReference,  // arg[0]: channel, arg[1]: microvolts
  kAdcPoll,       // arg[0]: channel; value = the sample
  kPwmApply,      // arg[0]: channel, arg[1]: period ns, arg[2]: duty ns, arg[3]: polarity |
                  //   (enabled << 1)
  kI2cBusSpeed,   // arg[0]: Hz
  kI2cTimeout,    // arg[0]: milliseconds
  kI2cTransfer,   // arg[0]: address, arg[1]: bytes to read; the data is what is written
                  //   first; value = bytes written + bytes read, the data what was read
  kSpiBusSpeed,   // arg[0]: Hz
  kSpiMode,       // arg[0]: SPI_Mode (1 to 4, Azure Sphere's numbering)
  kSpiBitOrder,   // arg[0]: 0 LSB first, 1 MSB first
  kSpiTransfer,   // the data: Transfer headers, then what the writing ones write, in order;
                  //   value = bytes moved, the data what the reading ones read, in order
};

struct Request {
  Op op;
  std::uint32_t arg[4];
  std::uint32_t length;  // of the data that follows
};

struct Reply {
  std::int32_t error;  // 0, or the errno the call fails with
  std::uint32_t value;
  std::uint32_t length;  // of the data that follows
};

// One piece of an SPI transfer sequence (SPIMaster_TransferSequential).
struct Transfer {
  std::uint32_t flags;  // 1 read, 2 write, 3 both (full duplex)
  std::uint32_t length;
};

inline constexpr std::uint32_t kTransferRead = 1;
inline constexpr std::uint32_t kTransferWrite = 2;

// The most data one message carries either way; Azure Sphere's largest I2C and SPI transfers
// (4 KiB on the MT3620) fit.
inline constexpr std::size_t kMaxData = 4096;
inline constexpr std::size_t kMaxMessage = sizeof(Request) + kMaxData;

}  // namespace aspis::wire::peripheral
