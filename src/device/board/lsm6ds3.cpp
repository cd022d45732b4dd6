#include "device/board/lsm6ds3.hpp"

#include <cmath>

namespace aspis::device::board {

namespace {

// Micro-g per least significant bit for CTRL1_XL's FS_XL (bits 3:2): 2 g, 16 g, 4 g, 8 g.
constexpr std::array<int, 4> kMicroGPerBit = {61, 488, 122, 244};

bool Writable(std::uint8_t address) {
  return (address >= 0x01 && address <= 0x0e) || (address >= 0x10 && address <= 0x19) ||
         (address >= 0x58 && address <= 0x5f);
}

}  // namespace

void Lsm6ds3::Reset() {
  registers_.fill(0);
  registers_[kWhoAmI] = kWhoAmIValue;
  registers_[kCtrl3C] = 0x04;  // IF_INC
}

std::uint8_t Lsm6ds3::Read(std::uint8_t address) const {
  const bool accelerometer_on = (registers_[kCtrl1Xl] & 0xf0) != 0;
  const bool gyroscope_on = (registers_[kCtrl2G] & 0xf0) != 0;
  if (address == kStatus) {
    return static_cast<std::uint8_t>((accelerometer_on ? 0x01 : 0) | (gyroscope_on ? 0x02 : 0) |
                                     (accelerometer_on || gyroscope_on ? 0x04 : 0));
  }
  if (address >= kOutXlXl && address < kOutXlXl + 6) {
    if (!accelerometer_on) return 0;
    const int axis = (address - kOutXlXl) / 2;
    const int per_bit = kMicroGPerBit[(registers_[kCtrl1Xl] >> 2) & 0x03];
    const auto raw = static_cast<std::int16_t>(
        std::lround(static_cast<double>(acceleration_[axis]) * 1000.0 / per_bit));
    const auto bits = static_cast<std::uint16_t>(raw);
    return static_cast<std::uint8_t>((address - kOutXlXl) % 2 == 0 ? bits & 0xff : bits >> 8);
  }
  if (address >= kOutTempL && address < kOutXlXl) return 0;  // 25 degrees, no rotation
  return registers_[address & 0x7f];
}

void Lsm6ds3::Write(std::uint8_t address, std::uint8_t value) {
  if (address == kCtrl3C && (value & 0x81) != 0) {  // SW_RESET or BOOT: done at once
    Reset();
    return;
  }
  if (Writable(address)) registers_[address] = value;
}

void Lsm6ds3::I2cWrite(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return;
  pointer_ = bytes[0] & 0x7f;
  for (const std::uint8_t value : bytes.subspan(1)) {
    Write(pointer_, value);
    Advance();
  }
}

void Lsm6ds3::I2cRead(std::span<std::uint8_t> out) {
  for (std::uint8_t& value : out) {
    value = Read(pointer_);
    Advance();
  }
}

void Lsm6ds3::SpiTransaction(std::span<const std::uint8_t> mosi, std::span<std::uint8_t> miso) {
  if (mosi.empty()) return;
  const bool reading = (mosi[0] & 0x80) != 0;
  pointer_ = mosi[0] & 0x7f;
  if (!miso.empty()) miso[0] = 0;
  for (std::size_t i = 1; i < std::max(mosi.size(), miso.size()); ++i) {
    if (reading && i < miso.size()) miso[i] = Read(pointer_);
    if (!reading && i < mosi.size()) Write(pointer_, mosi[i]);
    Advance();
  }
}

}  // namespace aspis::device::board
