// I2C, SPI and UART: opened through the broker; I2C and SPI then driven over their channels, a
// UART read and written directly.
#define SPI_STRUCTS_VERSION 1
#define UART_STRUCTS_VERSION 1
#include <applibs/i2c.h>
#include <applibs/spi.h>
#include <applibs/uart.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "broker_client.hpp"

namespace {

namespace wp = aspis::wire::peripheral;
using aspis::applibs::BrokerOpen;
using aspis::applibs::ChannelCall;

constexpr std::uint32_t kSpiConfigMagic = 0x41530000U;
constexpr std::uint32_t kSpiTransferMagic = 0x41540000U;
constexpr std::uint32_t kUartConfigMagic = 0x41550000U;

int Fail(int error) {
  errno = error;
  return -1;
}

int Set(int fd, wp::Op op, std::uint32_t value) {
  return ChannelCall(fd, op, value, 0, 0, 0, {}, {}) < 0 ? -1 : 0;
}

ssize_t I2cTransfer(int fd, I2C_DeviceAddress address, const std::uint8_t* write,
                    std::size_t write_length, std::uint8_t* read, std::size_t read_length) {
  if ((write == nullptr && write_length > 0) || (read == nullptr && read_length > 0)) {
    return Fail(EFAULT);
  }
  if (address > 0x7f || write_length + read_length == 0 ||
      write_length + read_length > wp::kMaxData) {
    return Fail(EINVAL);
  }
  std::uint32_t moved = 0;
  const int result =
      ChannelCall(fd, wp::Op::kI2cTransfer, address, static_cast<std::uint32_t>(read_length), 0, 0,
                  {write, write_length}, {read, read_length}, &moved);
  return result < 0 ? -1 : static_cast<ssize_t>(moved);
}

}  // namespace

extern "C" {

int I2CMaster_Open(I2C_InterfaceId id) {
  return BrokerOpen(R"({"call":"i2c.open","id":)" + std::to_string(id) + "}");
}

int I2CMaster_SetBusSpeed(int fd, uint32_t speedInHz) {
  return Set(fd, wp::Op::kI2cBusSpeed, speedInHz);
}

int I2CMaster_SetTimeout(int fd, uint32_t timeoutInMs) {
  return Set(fd, wp::Op::kI2cTimeout, timeoutInMs);
}

int I2CMaster_SetDefaultTargetAddress(int fd, I2C_DeviceAddress address) {
  // Kept by no one: plain read() and write() are not supported on these descriptors.
  if (fd < 0) return Fail(EBADF);
  return address > 0x7f ? Fail(EINVAL) : 0;
}

ssize_t I2CMaster_Write(int fd, I2C_DeviceAddress address, const uint8_t* data, size_t length) {
  return I2cTransfer(fd, address, data, length, nullptr, 0);
}

ssize_t I2CMaster_WriteThenRead(int fd, I2C_DeviceAddress address, const uint8_t* writeData,
                                size_t lenWriteData, uint8_t* readData, size_t lenReadData) {
  return I2cTransfer(fd, address, writeData, lenWriteData, readData, lenReadData);
}

ssize_t I2CMaster_Read(int fd, I2C_DeviceAddress address, uint8_t* buffer, size_t maxLength) {
  return I2cTransfer(fd, address, nullptr, 0, buffer, maxLength);
}

int Aspis_SPIMaster_InitConfig(SPIMaster_Config* config, uint32_t structVersion) {
  if (config == nullptr) return Fail(EFAULT);
  if (structVersion != 1) return Fail(EINVAL);
  *config = {kSpiConfigMagic | structVersion, SPI_ChipSelectPolarity_ActiveLow};
  return 0;
}

int Aspis_SPIMaster_InitTransfers(SPIMaster_Transfer* transfers, size_t transferCount,
                                  uint32_t structVersion) {
  if (transfers == nullptr) return Fail(EFAULT);
  if (structVersion != 1) return Fail(EINVAL);
  for (std::size_t i = 0; i < transferCount; ++i) {
    transfers[i] = {kSpiTransferMagic | structVersion, SPI_TransferFlags_None, nullptr, nullptr, 0};
  }
  return 0;
}

int SPIMaster_Open(SPI_InterfaceId interfaceId, SPI_ChipSelectId chipSelectId,
                   const SPIMaster_Config* config) {
  if (config == nullptr) return Fail(EFAULT);
  if (config->magicAndVersion != (kSpiConfigMagic | 1) ||
      (config->csPolarity != SPI_ChipSelectPolarity_ActiveLow &&
       config->csPolarity != SPI_ChipSelectPolarity_ActiveHigh) ||
      interfaceId < 0) {
    return Fail(EINVAL);
  }
  return BrokerOpen(R"({"call":"spi.open","id":)" + std::to_string(interfaceId) +
                    R"(,"chip_select":)" + std::to_string(chipSelectId) + "}");
}

int SPIMaster_SetBusSpeed(int fd, uint32_t speedInHz) {
  return Set(fd, wp::Op::kSpiBusSpeed, speedInHz);
}

int SPIMaster_SetMode(int fd, SPI_Mode mode) {
  if (mode < SPI_Mode_0 || mode > SPI_Mode_3) return Fail(EINVAL);
  return Set(fd, wp::Op::kSpiMode, static_cast<std::uint32_t>(mode));
}

int SPIMaster_SetBitOrder(int fd, SPI_BitOrder order) {
  if (order != SPI_BitOrder_LsbFirst && order != SPI_BitOrder_MsbFirst) return Fail(EINVAL);
  return Set(fd, wp::Op::kSpiBitOrder, order == SPI_BitOrder_MsbFirst ? 1 : 0);
}

ssize_t SPIMaster_TransferSequential(int fd, const SPIMaster_Transfer* transfers,
                                     size_t transferCount) {
  if (transfers == nullptr) return Fail(EFAULT);
  if (transferCount == 0 || transferCount > 16) return Fail(EINVAL);
  std::vector<std::uint8_t> request(transferCount * sizeof(wp::Transfer));
  std::size_t read_length = 0;
  for (std::size_t i = 0; i < transferCount; ++i) {
    const SPIMaster_Transfer& t = transfers[i];
    const bool reads = (t.flags & SPI_TransferFlags_Read) != 0;
    const bool writes = (t.flags & SPI_TransferFlags_Write) != 0;
    if (t.magicAndVersion != (kSpiTransferMagic | 1) || (!reads && !writes) ||
        (t.flags & ~3) != 0 || t.length == 0 || t.length > wp::kMaxData) {
      return Fail(EINVAL);
    }
    if ((reads && t.readData == nullptr) || (writes && t.writeData == nullptr)) return Fail(EFAULT);
    const wp::Transfer header{static_cast<std::uint32_t>(t.flags),
                              static_cast<std::uint32_t>(t.length)};
    std::memcpy(request.data() + i * sizeof header, &header, sizeof header);
    if (writes) request.insert(request.end(), t.writeData, t.writeData + t.length);
    if (reads) read_length += t.length;
  }
  if (request.size() > wp::kMaxData || read_length > wp::kMaxData) return Fail(EINVAL);
  std::vector<std::uint8_t> read(read_length);
  std::uint32_t moved = 0;
  if (ChannelCall(fd, wp::Op::kSpiTransfer, static_cast<std::uint32_t>(transferCount), 0, 0, 0,
                  request, read, &moved) < 0) {
    return -1;
  }
  std::size_t at = 0;
  for (std::size_t i = 0; i < transferCount; ++i) {
    if ((transfers[i].flags & SPI_TransferFlags_Read) == 0) continue;
    std::memcpy(transfers[i].readData, read.data() + at, transfers[i].length);
    at += transfers[i].length;
  }
  return static_cast<ssize_t>(moved);
}

ssize_t SPIMaster_WriteThenRead(int fd, const uint8_t* writeData, size_t lenWriteData,
                                uint8_t* readData, size_t lenReadData) {
  SPIMaster_Transfer transfers[2];
  SPIMaster_InitTransfers(transfers, 2);
  transfers[0].flags = SPI_TransferFlags_Write;
  transfers[0].writeData = writeData;
  transfers[0].length = lenWriteData;
  transfers[1].flags = SPI_TransferFlags_Read;
  transfers[1].readData = readData;
  transfers[1].length = lenReadData;
  return SPIMaster_TransferSequential(fd, transfers, 2);
}

void Aspis_UART_InitConfig(UART_Config* config, uint32_t structVersion) {
  if (config == nullptr) return;
  *config = {kUartConfigMagic | structVersion,
             115200,
             UART_BlockingMode_NonBlocking,
             UART_DataBits_Eight,
             UART_Parity_None,
             UART_StopBits_One,
             UART_FlowControl_None};
}

int UART_Open(UART_Id uartId, const UART_Config* config) {
  if (config == nullptr) return Fail(EFAULT);
  if (config->magicAndVersion != (kUartConfigMagic | 1) || uartId < 0 ||
      config->blockingMode != UART_BlockingMode_NonBlocking || config->dataBits < 5 ||
      config->dataBits > 8 || config->parity > UART_Parity_Odd || config->stopBits < 1 ||
      config->stopBits > 2 || config->flowControl > UART_FlowControl_XONXOFF) {
    return Fail(EINVAL);
  }
  static constexpr const char* kParity[] = {"N", "E", "O"};
  const int fd =
      BrokerOpen(R"({"call":"uart.open","id":)" + std::to_string(uartId) + R"(,"baud":)" +
                 std::to_string(config->baudRate) + R"(,"data_bits":)" +
                 std::to_string(config->dataBits) + R"(,"parity":")" + kParity[config->parity] +
                 R"(","stop_bits":)" + std::to_string(config->stopBits) + R"(,"flow_control":)" +
                 std::to_string(config->flowControl) + "}");
  if (fd < 0) return -1;
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    const int error = errno;
    ::close(fd);
    return Fail(error);
  }
  return fd;
}

}  // extern "C"
