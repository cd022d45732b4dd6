// Every bootloader backend keeps the A/B contract the update agent relies on, tested against the
// real environment each bootloader reads: the simulator's file, a file-backed U-Boot environment
// that fw_printenv/fw_setenv read too, and a GRUB environment block that grub-editenv reads. The
// test plays each bootloader's boot script at power-on, as RAUC's scripts do.
#include <gtest/gtest.h>

#include <fstream>

#include "core/file.hpp"
#include "device/update/boot/platform/environment_bootloaders.hpp"
#include "device/update/boot/simulated_bootloader.hpp"
#include "support/firmware.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::update {
namespace {

namespace fs = std::filesystem;

using testing::BootInto;
using testing::Firmware;
using testing::GrubFirmware;
using testing::SimulatorFirmware;
using testing::UBootFirmware;

class BootloaderConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "simulator") firmware_ = std::make_unique<SimulatorFirmware>(dir_.path());
    if (GetParam() == "u-boot") firmware_ = std::make_unique<UBootFirmware>(dir_.path());
    if (GetParam() == "grub") firmware_ = std::make_unique<GrubFirmware>(dir_.path());
    ASSERT_FALSE(HasFailure());
    ASSERT_EQ(firmware_->boot().Backend(), GetParam());
  }
  // Powers on and checks the agent sees the slot the firmware booted.
  Slot PowerOn() {
    const Slot slot = firmware_->PowerOn();
    EXPECT_EQ(*firmware_->boot().Booted(), slot);
    return slot;
  }
  Bootloader& boot() { return firmware_->boot(); }

  testing::TempDir dir_;
  std::unique_ptr<Firmware> firmware_;
};

TEST_P(BootloaderConformance, ANewBoardBootsSlotAAndKeepsItOnceMarkedGood) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(PowerOn(), Slot::kA);
    ASSERT_TRUE(boot().MarkGood(Slot::kA));
  }
}

TEST_P(BootloaderConformance, ATriedSlotBootsNextAndStaysOnceMarkedGood) {
  ASSERT_EQ(PowerOn(), Slot::kA);
  ASSERT_TRUE(boot().TryNext(Slot::kB));
  ASSERT_EQ(PowerOn(), Slot::kB);
  ASSERT_TRUE(boot().MarkGood(Slot::kB));
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(PowerOn(), Slot::kB);
    ASSERT_TRUE(boot().MarkGood(Slot::kB));
  }
}

TEST_P(BootloaderConformance, ATriedSlotThatNeverComesUpFallsBackToTheOther) {
  ASSERT_EQ(PowerOn(), Slot::kA);
  ASSERT_TRUE(boot().MarkGood(Slot::kA));
  ASSERT_TRUE(boot().TryNext(Slot::kB));
  int tries = 0;
  while (PowerOn() == Slot::kB) {
    ASSERT_LE(++tries, kBootTries) << "the new slot kept booting without being marked good";
  }
  EXPECT_GE(tries, 1);
  // The old slot is healthy again, and the agent marks it good at each boot.
  ASSERT_TRUE(boot().MarkGood(Slot::kA));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(PowerOn(), Slot::kA) << "fell back for good";
    ASSERT_TRUE(boot().MarkGood(Slot::kA));
  }
}

TEST_P(BootloaderConformance, ASlotMarkedBadDoesNotBootAgainUntilTriedAnew) {
  ASSERT_EQ(PowerOn(), Slot::kA);
  ASSERT_TRUE(boot().TryNext(Slot::kB));
  ASSERT_EQ(PowerOn(), Slot::kB);
  ASSERT_TRUE(boot().MarkBad(Slot::kB));
  ASSERT_EQ(PowerOn(), Slot::kA);
  ASSERT_TRUE(boot().MarkGood(Slot::kA));
  ASSERT_EQ(PowerOn(), Slot::kA);
  ASSERT_TRUE(boot().TryNext(Slot::kB));
  EXPECT_EQ(PowerOn(), Slot::kB);
}

std::string BackendName(const ::testing::TestParamInfo<std::string>& backend) {
  std::string name = backend.param;
  std::erase(name, '-');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Backends, BootloaderConformance,
                         ::testing::Values("simulator", "u-boot", "grub"), BackendName);

TEST(KernelCommandLine, NamesTheBootedSlotOrIsAnError) {
  testing::TempDir dir;
  BootInto(dir / "cmdline", Slot::kB);
  EXPECT_EQ(*SlotFromCommandLine(dir / "cmdline"), Slot::kB);
  std::ofstream(dir / "none") << "console=ttyS0 root=/dev/sda2\n";
  EXPECT_FALSE(SlotFromCommandLine(dir / "none"));
  std::ofstream(dir / "bad") << "aspis.slot=C\n";
  EXPECT_FALSE(SlotFromCommandLine(dir / "bad"));
}

}  // namespace
}  // namespace aspis::device::update
