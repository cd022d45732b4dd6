#include "device/board/lsm6ds3.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace aspis::device::board {
namespace {

std::vector<std::uint8_t> ReadI2c(Lsm6ds3& chip, std::uint8_t address, std::size_t length) {
  const std::uint8_t at[] = {address};
  chip.I2cWrite(at);
  std::vector<std::uint8_t> out(length);
  chip.I2cRead(out);
  return out;
}

TEST(Lsm6ds3, WhoAmIReads0x69) {
  Lsm6ds3 chip;
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kWhoAmI, 1), std::vector<std::uint8_t>{0x69});
}

TEST(Lsm6ds3, ASoftwareResetRestoresTheDefaultsAndClearsItself) {
  Lsm6ds3 chip;
  chip.I2cWrite(std::vector<std::uint8_t>{Lsm6ds3::kCtrl1Xl, 0x48});
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kCtrl1Xl, 1), std::vector<std::uint8_t>{0x48});
  chip.I2cWrite(std::vector<std::uint8_t>{Lsm6ds3::kCtrl3C, 0x01});
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kCtrl3C, 1), std::vector<std::uint8_t>{0x04});
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kCtrl1Xl, 1), std::vector<std::uint8_t>{0x00});
}

TEST(Lsm6ds3, DataIsReadyAndReadOnlyOnceTheAccelerometerIsOn) {
  Lsm6ds3 chip;
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kStatus, 1), std::vector<std::uint8_t>{0x00});
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kOutXlXl, 6), std::vector<std::uint8_t>(6, 0));
  chip.I2cWrite(std::vector<std::uint8_t>{Lsm6ds3::kCtrl1Xl, 0x40});  // 104 Hz, 2 g
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kStatus, 1), std::vector<std::uint8_t>{0x05});
  // 1 g on Z at 0.061 mg a bit: 16393 (0x4009), little-endian, after X and Y at 0.
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kOutXlXl, 6),
            (std::vector<std::uint8_t>{0, 0, 0, 0, 0x09, 0x40}));
}

TEST(Lsm6ds3, TheFullScaleSetsTheSensitivity) {
  Lsm6ds3 chip;
  chip.SetAcceleration({-500, 0, 1000});
  chip.I2cWrite(std::vector<std::uint8_t>{Lsm6ds3::kCtrl1Xl, 0x4c});  // 8 g: 0.244 mg a bit
  const auto xyz = ReadI2c(chip, Lsm6ds3::kOutXlXl, 6);
  EXPECT_EQ(static_cast<std::int16_t>(xyz[0] | (xyz[1] << 8)), -2049);
  EXPECT_EQ(static_cast<std::int16_t>(xyz[4] | (xyz[5] << 8)), 4098);
}

TEST(Lsm6ds3, ReadOnlyRegistersIgnoreWrites) {
  Lsm6ds3 chip;
  chip.I2cWrite(std::vector<std::uint8_t>{Lsm6ds3::kWhoAmI, 0x00});
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kWhoAmI, 1), std::vector<std::uint8_t>{0x69});
}

TEST(Lsm6ds3, WithoutAutoIncrementAReadRepeatsOneRegister) {
  Lsm6ds3 chip;
  chip.I2cWrite(std::vector<std::uint8_t>{Lsm6ds3::kCtrl3C, 0x00});
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kWhoAmI, 3), (std::vector<std::uint8_t>{0x69, 0x69, 0x69}));
}

TEST(Lsm6ds3, SpiReadsSetBitSevenOfTheRegisterByte) {
  Lsm6ds3 chip;
  const std::vector<std::uint8_t> mosi = {0x80 | Lsm6ds3::kWhoAmI, 0, 0};
  std::vector<std::uint8_t> miso(3, 0xff);
  chip.SpiTransaction(mosi, miso);
  EXPECT_EQ(miso, (std::vector<std::uint8_t>{0x00, 0x69, 0x00}));  // then CTRL1_XL
  const std::vector<std::uint8_t> write = {Lsm6ds3::kCtrl1Xl, 0x40};
  std::vector<std::uint8_t> ignored(2);
  chip.SpiTransaction(write, ignored);
  EXPECT_EQ(ReadI2c(chip, Lsm6ds3::kCtrl1Xl, 1), std::vector<std::uint8_t>{0x40});
}

}  // namespace
}  // namespace aspis::device::board
