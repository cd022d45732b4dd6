#pragma once

#include <array>
#include <cstdint>
#include <span>

// A model of the STMicroelectronics LSM6DS3 accelerometer and gyroscope, as much of it as the
// simulator's apps read: its registers (WHO_AM_I 0x0F reads 0x69), a software reset (CTRL3_C bit
// 0, which clears itself), the output data rate and full scale of the accelerometer (CTRL1_XL) and
// gyroscope (CTRL2_G), STATUS_REG's data-ready bits, and the outputs of a board lying still and
// level at 25 degrees Celsius: 1 g on Z, no rotation, temperature 0 (25 degrees). Reads and writes
// of several bytes move through the registers while CTRL3_C's IF_INC is set, as the chip does.
namespace aspis::device::board {

class Lsm6ds3 {
 public:
  static constexpr std::uint8_t kWhoAmI = 0x0f;
  static constexpr std::uint8_t kWhoAmIValue = 0x69;
  static constexpr std::uint8_t kCtrl1Xl = 0x10;
  static constexpr std::uint8_t kCtrl2G = 0x11;
  static constexpr std::uint8_t kCtrl3C = 0x12;
  static constexpr std::uint8_t kStatus = 0x1e;
  static constexpr std::uint8_t kOutTempL = 0x20;
  static constexpr std::uint8_t kOutXlG = 0x22;
  static constexpr std::uint8_t kOutXlXl = 0x28;

  Lsm6ds3() { Reset(); }

  // An I2C write: the register to start at, then what is written from there on.
  void I2cWrite(std::span<const std::uint8_t> bytes);
  // An I2C read, from the register the last write named.
  void I2cRead(std::span<std::uint8_t> out);
  // One SPI transaction (chip select active throughout): the first byte sent is the register,
  // bit 7 set to read; then `mosi` is written from it, or `miso` read from it (the first byte of
  // `miso` is what the chip clocked out while the register byte went in: 0).
  void SpiTransaction(std::span<const std::uint8_t> mosi, std::span<std::uint8_t> miso);

  // Acceleration in milli-g the model reports (X, Y, Z): a board lying level is {0, 0, 1000}.
  void SetAcceleration(std::array<int, 3> milli_g) { acceleration_ = milli_g; }

 private:
  void Reset();
  std::uint8_t Read(std::uint8_t address) const;
  void Write(std::uint8_t address, std::uint8_t value);
  void Advance() {
    if ((registers_[kCtrl3C] & 0x04) != 0) pointer_ = (pointer_ + 1) & 0x7f;
  }

  std::array<std::uint8_t, 128> registers_{};
  std::uint8_t pointer_ = 0;
  std::array<int, 3> acceleration_{0, 0, 1000};
};

}  // namespace aspis::device::board
