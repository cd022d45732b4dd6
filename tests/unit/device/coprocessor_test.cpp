// Real-time apps on a coprocessor through remoteproc, against a sysfs tree whose kernel the test
// plays (support/fake_remoteproc.hpp).
#include "device/apps/coprocessor.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>

#include "support/fake_remoteproc.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::apps {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr char kComponent[] = "5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f";
const std::string kElf = std::string(
                             "\x7f"
                             "ELF",
                             4) +
                         "firmware for the M4";

class CoprocessorTest : public ::testing::Test {
 protected:
  void SetUp() override { std::ofstream(dir_ / "app.elf", std::ios::binary) << kElf; }

  CoprocessorConfig Config(aspis::testing::FakeRemoteproc& core) {
    return {.name = "M4",
            .remoteproc = core.remoteproc(),
            .firmware_dir = core.firmware_dir(),
            .dev_dir = core.dev_dir(),
            .open_endpoint = [&core](const fs::path& path) { return core.Open(path); },
            .start_timeout = milliseconds(2000),
            .poll_interval = milliseconds(10)};
  }

  aspis::testing::TempDir dir_;
  const fs::path firmware_dir_ = dir_ / "lib/firmware";
};

TEST_F(CoprocessorTest, AnAppsImageIsLoadedAndStartedAndItsEndpointOpened) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_);
  auto started = StartOnCoprocessor(Config(core), dir_ / "app.elf", kComponent, true);
  ASSERT_TRUE(started) << started.error().message();
  EXPECT_EQ(core.State(), "running");
  EXPECT_EQ(core.loaded(), kElf);
  EXPECT_TRUE(fs::exists(firmware_dir_ / (std::string("aspis-") + kComponent + ".elf")));
  EXPECT_EQ(started->run->Wait(milliseconds(0)), std::nullopt);
  ASSERT_TRUE(started->endpoint);
  const Fd firmware = core.firmware();
  ASSERT_EQ(::send(started->endpoint->get(), "hi", 2, 0), 2);
  std::array<char, 8> got{};
  EXPECT_EQ(::recv(firmware.get(), got.data(), got.size(), 0), 2);
}

TEST_F(CoprocessorTest, ARunEndsWhenTheCoreCrashes) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_);
  auto started = StartOnCoprocessor(Config(core), dir_ / "app.elf", kComponent, false);
  ASSERT_TRUE(started) << started.error().message();
  EXPECT_EQ(started->run->pid(), 0);
  core.Crash();
  pollfd tick{started->run->exit_descriptor(), POLLIN, 0};
  EXPECT_EQ(::poll(&tick, 1, 2000), 1);
  const auto exit = started->run->Wait(milliseconds(2000));
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->Describe(), "ended on coprocessor M4, that crashed");
}

TEST_F(CoprocessorTest, StoppingTheRunStopsTheCoreAndRemovesTheFirmware) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_);
  auto started = StartOnCoprocessor(Config(core), dir_ / "app.elf", kComponent, false);
  ASSERT_TRUE(started) << started.error().message();
  started->run->Signal(SIGTERM);
  const auto exit = started->run->Wait(milliseconds(2000));
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->Describe(), "ended on coprocessor M4, that is offline");
  started->run.reset();
  EXPECT_EQ(core.State(), "offline");
  EXPECT_TRUE(fs::is_empty(firmware_dir_));
}

TEST_F(CoprocessorTest, ACoreLeftRunningIsStoppedBeforeTheAppIsLoaded) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "running");
  auto started = StartOnCoprocessor(Config(core), dir_ / "app.elf", kComponent, false);
  ASSERT_TRUE(started) << started.error().message();
  EXPECT_EQ(core.starts(), 1);
  EXPECT_EQ(core.loaded(), kElf);
  started->run.reset();  // destroying a run that has not ended stops the core
  EXPECT_EQ(core.State(), "offline");
}

TEST_F(CoprocessorTest, AnImageThatIsNotElfIsRefusedBeforeTheCoreIsTouched) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "running");
  std::ofstream(dir_ / "script", std::ios::binary) << "#!/bin/sh\n";
  const auto started = StartOnCoprocessor(Config(core), dir_ / "script", kComponent, false);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().message(), "script is not an ELF image");
  EXPECT_EQ(core.State(), "running");
  EXPECT_FALSE(fs::exists(firmware_dir_));
}

TEST_F(CoprocessorTest, FirmwareThatAnnouncesNoEndpointIsStoppedWhenTheAppNeedsOne) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, false);
  auto config = Config(core);
  config.start_timeout = milliseconds(300);
  const auto refused = StartOnCoprocessor(config, dir_ / "app.elf", kComponent, true);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(),
            "coprocessor M4: its firmware announced no rpmsg-raw endpoint");
  EXPECT_EQ(core.State(), "offline");
  EXPECT_TRUE(fs::is_empty(firmware_dir_));
  // An app that lists no connections needs none.
  EXPECT_TRUE(StartOnCoprocessor(config, dir_ / "app.elf", kComponent, false));
}

TEST_F(CoprocessorTest, AnImageTheKernelCannotFindLeavesTheCoreOffline) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", dir_ / "elsewhere");
  auto config = Config(core);
  config.firmware_dir = firmware_dir_;  // not where the kernel looks
  config.start_timeout = milliseconds(300);
  const auto refused = StartOnCoprocessor(config, dir_ / "app.elf", kComponent, false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(), "coprocessor M4: does not run its firmware");
  EXPECT_EQ(core.starts(), 0);
}

}  // namespace
}  // namespace aspis::device::apps
