// Real-time apps on a coprocessor through remoteproc, against a sysfs tree whose kernel the test
// plays (support/fake_remoteproc.hpp).
#include "device/apps/coprocessor.hpp"

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <string>
#include <thread>

#include "support/fake_remoteproc.hpp"
#include "support/firmware_image.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::apps {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr char kComponent[] = "5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f";
class CoprocessorTest : public ::testing::Test {
 protected:
  // Firmware that asks for what a publisher's may: memory, a trace buffer and an RPMsg device.
  void SetUp() override {
    fs::create_directories(firmware_dir_);
    elf_ = aspis::testing::FirmwareImage(
        dir_ / "app.elf",
        aspis::testing::ResourceTable(
            {aspis::testing::Carveout(0x40000), aspis::testing::Trace(), aspis::testing::Vdev()}));
  }

  CoprocessorConfig Config(aspis::testing::FakeRemoteproc& core) {
    return {.name = "M4",
            .remoteproc = core.remoteproc(),
            .firmware_dir = core.firmware_dir(),
            .dev_dir = core.dev_dir(),
            .open_endpoint = [&core](const fs::path& path,
                                     const fs::path& /*sysfs*/) { return core.Open(path); },
            .settle_timeout = milliseconds(1000),
            .endpoint_timeout = milliseconds(300),
            .poll_interval = milliseconds(10)};
  }

  // Starts the test image on `core`; the endpoint, once the run found it, lands in endpoint_.
  std::unique_ptr<sandbox::AppRun> Start(aspis::testing::FakeRemoteproc& core,
                                         bool needs_endpoint = false) {
    auto started = StartOnCoprocessor(Config(core), dir_ / "app.elf", kComponent, needs_endpoint,
                                      [this](Fd endpoint) { endpoint_ = std::move(endpoint); });
    EXPECT_TRUE(started) << started.error().message();
    return started ? std::move(*started) : nullptr;
  }

  // Waits up to 2 s for the run to end; how, or nullopt.
  static std::optional<sandbox::AppExit> Ended(sandbox::AppRun& run) {
    return run.Wait(milliseconds(2000));
  }

  aspis::testing::TempDir dir_;
  const fs::path firmware_dir_ = dir_ / "lib/firmware";
  std::string elf_;
  Fd endpoint_{-1};
};

TEST_F(CoprocessorTest, AnAppsImageIsLoadedAndStartedAndItsEndpointHandedOver) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_);
  auto run = Start(core, true);
  ASSERT_TRUE(run);
  EXPECT_EQ(core.State(), "running");
  EXPECT_EQ(core.loaded(), elf_);
  EXPECT_TRUE(fs::exists(firmware_dir_ / (std::string("aspis-") + kComponent + ".elf")));
  EXPECT_EQ(run->pid(), 0);
  for (int i = 0; i < 200 && endpoint_.get() < 0; ++i) {
    EXPECT_EQ(run->Wait(milliseconds(10)), std::nullopt);
  }
  ASSERT_GE(endpoint_.get(), 0);
  const Fd firmware = core.firmware();
  ASSERT_EQ(::send(endpoint_.get(), "hi", 2, 0), 2);
  std::array<char, 8> got{};
  EXPECT_EQ(::recv(firmware.get(), got.data(), got.size(), 0), 2);
}

TEST_F(CoprocessorTest, ACrashEndsTheRunForTheKernelsOwnRecoveryIsTurnedOff) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_);
  auto run = Start(core);
  ASSERT_TRUE(run);
  EXPECT_EQ(core.Recovery(), "disabled");
  core.Crash();
  const auto exit = Ended(*run);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->Describe(), "ended on coprocessor M4, that crashed");
  EXPECT_EQ(core.starts(), 1);  // not restarted behind aspisd's back
  run.reset();                  // a crashed core is stopped too
  EXPECT_EQ(core.State(), "offline");
  EXPECT_TRUE(fs::is_empty(firmware_dir_));
}

TEST_F(CoprocessorTest, StoppingTheRunStopsTheCoreAndRemovesTheFirmware) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_);
  auto run = Start(core);
  ASSERT_TRUE(run);
  run->Signal(SIGTERM);
  const auto exit = Ended(*run);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->Describe(), "ended on coprocessor M4, that is offline");
  run.reset();
  EXPECT_EQ(core.State(), "offline");
  EXPECT_TRUE(fs::is_empty(firmware_dir_));
}

TEST_F(CoprocessorTest, AKilledRunEndsEvenWhenTheCoreDoesNotStop) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "offline", true);
  auto run = Start(core);
  ASSERT_TRUE(run);
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(100)), std::nullopt);
  run->Signal(SIGKILL);
  const auto exit = Ended(*run);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->Describe(), "ended on coprocessor M4, which does not stop");
}

TEST_F(CoprocessorTest, ACoreLeftRunningIsStoppedBeforeTheAppIsLoaded) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "running");
  auto run = Start(core);
  ASSERT_TRUE(run);
  EXPECT_EQ(core.starts(), 1);
  EXPECT_EQ(core.loaded(), elf_);
  run.reset();  // destroying a run that has not ended stops the core
  EXPECT_EQ(core.State(), "offline");
}

TEST_F(CoprocessorTest, ACrashedCoreIsRecoveredAndStoppedBeforeTheAppIsLoaded) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "crashed");
  std::ofstream(firmware_dir_ / "rproc-m4-fw") << "\x7f"
                                                  "ELF, the crashed one";
  auto run = Start(core);
  ASSERT_TRUE(run);
  EXPECT_EQ(core.loaded(), elf_);
  EXPECT_EQ(core.State(), "running");
}

TEST_F(CoprocessorTest,
       AnImageThatIsNotARegularElfFileOfBoundedSizeIsRefusedBeforeTheCoreIsTouched) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "running");
  std::ofstream(dir_ / "script", std::ios::binary) << "#!/bin/sh\n";
  fs::create_symlink(dir_ / "app.elf", dir_ / "link");
  auto config = Config(core);
  const auto refusal = [&](const fs::path& image) {
    const auto started = StartOnCoprocessor(config, image, kComponent, false, nullptr);
    return started ? std::string("started") : started.error().message();
  };
  EXPECT_EQ(refusal(dir_ / "script"), "script: the firmware is not an ELF image");
  EXPECT_EQ(refusal(dir_ / "link"), "link is not an ELF image");
  EXPECT_EQ(refusal(dir_.path()), dir_.path().filename().string() + " is not an ELF image");
  config.max_image_bytes = elf_.size() - 1;
  EXPECT_EQ(refusal(dir_ / "app.elf"),
            "app.elf is larger than " + std::to_string(elf_.size() - 1) + " bytes");
  EXPECT_EQ(core.starts(), 0);
  EXPECT_TRUE(fs::is_empty(firmware_dir_));
  config.max_image_bytes = elf_.size();
  EXPECT_EQ(refusal(dir_ / "app.elf"), "started");
}

TEST_F(CoprocessorTest, FirmwareThatAnnouncesNoEndpointEndsTheRunWhenTheAppNeedsOne) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, false);
  auto run = Start(core, true);
  ASSERT_TRUE(run);
  const auto exit = Ended(*run);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->Describe(),
            "ended on coprocessor M4, whose firmware announced no rpmsg-raw endpoint");
  run.reset();
  EXPECT_EQ(core.State(), "offline");
  // An app that lists no connections needs none.
  auto quiet = Start(core, false);
  ASSERT_TRUE(quiet);
  EXPECT_EQ(quiet->Wait(milliseconds(500)), std::nullopt);
}

TEST_F(CoprocessorTest, AnImageTheKernelCannotFindLeavesTheCoreOfflineAndNoCopy) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", dir_ / "elsewhere");
  auto config = Config(core);
  config.firmware_dir = firmware_dir_;  // not where the kernel looks
  const auto refused = StartOnCoprocessor(config, dir_ / "app.elf", kComponent, false, nullptr);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(), "coprocessor M4: does not run its firmware");
  EXPECT_EQ(core.starts(), 0);
  EXPECT_TRUE(fs::is_empty(firmware_dir_));
}

TEST_F(CoprocessorTest, AResetStopsTheCoreAndRemovesWhatEarlierRunsLeft) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "running");
  fs::create_directories(firmware_dir_);
  for (const char* name : {"aspis-old.elf", ".aspis-old.elf.partial", "vendor.elf"}) {
    std::ofstream(firmware_dir_ / name) << "x";
  }
  ResetCoprocessor(Config(core));
  EXPECT_EQ(core.State(), "offline");
  EXPECT_TRUE(fs::exists(firmware_dir_ / "vendor.elf"));
  EXPECT_FALSE(fs::exists(firmware_dir_ / "aspis-old.elf"));
  EXPECT_FALSE(fs::exists(firmware_dir_ / ".aspis-old.elf.partial"));
}

TEST_F(CoprocessorTest, FirmwareAskingLinuxForMoreThanMemoryAndAnRpmsgDeviceIsNeverLoaded) {
  using namespace aspis::testing;
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "running");
  auto config = Config(core);
  const auto refusal = [&](const std::optional<Bytes>& table) {
    FirmwareImage(dir_ / "hostile.elf", table);
    const auto started =
        StartOnCoprocessor(config, dir_ / "hostile.elf", kComponent, false, nullptr);
    return started ? std::string("started") : started.error().message();
  };
  const std::string prefix = "hostile.elf: the firmware ";
  EXPECT_EQ(refusal(ResourceTable({Vdev(), Devmem()})),
            prefix + "asks for device memory to be mapped for the core");
  EXPECT_EQ(refusal(ResourceTable({Vdev(1)})),
            prefix + "offers Linux a virtio device of type 1: only an RPMsg device is allowed");
  EXPECT_EQ(refusal(ResourceTable({Vdev(), Vdev()})),
            prefix + "offers Linux more than one virtio device");
  EXPECT_EQ(refusal(ResourceTable({Carveout(0x800000), Carveout(0x800001)})),
            prefix + "asks for 16777217 bytes of memory, more than the 16777216 allowed");
  EXPECT_EQ(refusal(ResourceTable({Vdev(7, 4096)})),
            prefix + "asks for 4096 RPMsg buffers, more than the 512 allowed");
  EXPECT_EQ(refusal(ResourceTable({Resource(128, {0, 0})})),
            prefix + "asks for a resource of type 128");
  Bytes truncated = ResourceTable({Vdev()});
  truncated.resize(truncated.size() - 8);
  EXPECT_EQ(refusal(truncated), prefix + "has a malformed virtio device entry");
  Bytes out_of_bounds = ResourceTable({Trace()});
  out_of_bounds[16] = 0xff;
  EXPECT_EQ(refusal(out_of_bounds), prefix + "has a resource table entry out of bounds");
  // The core was neither stopped nor given anything.
  EXPECT_EQ(core.State(), "running");
  EXPECT_EQ(core.starts(), 0);
  EXPECT_TRUE(fs::is_empty(firmware_dir_));
  // Its twins: firmware within bounds, and firmware asking for nothing, run.
  EXPECT_EQ(refusal(ResourceTable({Carveout(0x800000), Carveout(0x7f0000), Trace(), Vdev()})),
            "started");
  EXPECT_EQ(refusal(std::nullopt), "started");
}

// Little-endian fields of an ELF64 image (the test's firmware is x86-64's /bin/true).
struct Elf64 {
  std::string bytes;
  std::uint64_t Get(std::uint64_t at, int size) const {
    std::uint64_t value = 0;
    for (int i = size - 1; i >= 0; --i) {
      value = (value << 8) | static_cast<std::uint8_t>(bytes[at + static_cast<std::uint64_t>(i)]);
    }
    return value;
  }
  void Put(std::uint64_t at, int size, std::uint64_t value) {
    for (int i = 0; i < size; ++i)
      bytes[at + static_cast<std::uint64_t>(i)] = static_cast<char>(value >> (8 * i));
  }
  std::uint64_t Section(std::uint64_t i) const { return Get(0x28, 8) + 64 * i; }
  std::uint64_t Count() const { return Get(0x3c, 2); }
  std::uint64_t NameTable() const { return Section(Get(0x3e, 2)); }
  // The index of the section named `name`.
  std::uint64_t Find(const std::string& name) const {
    for (std::uint64_t i = 0; i < Count(); ++i) {
      if (bytes.compare(Get(NameTable() + 0x18, 8) + Get(Section(i), 4), name.size() + 1,
                        name.c_str(), name.size() + 1) == 0) {
        return i;
      }
    }
    return 0;
  }
};

// Images whose resource table the kernel would find where a checker resolving names by the book
// would not: each hides a table asking for device memory (found by a review).
TEST_F(CoprocessorTest, FirmwareHidingATableWhereOnlyTheKernelLooksIsNeverLoaded) {
  using namespace aspis::testing;
  aspis::testing::FakeRemoteproc core(dir_ / "sys", firmware_dir_, true, "running");
  const auto config = Config(core);
  const Bytes hostile = ResourceTable({Vdev(), Devmem()});
  const Elf64 benign{FirmwareImage(dir_ / "benign.elf", ResourceTable({Vdev()}))};
  const auto refusal = [&](const Elf64& elf) {
    std::ofstream(dir_ / "hostile.elf", std::ios::binary | std::ios::trunc) << elf.bytes;
    const auto started =
        StartOnCoprocessor(config, dir_ / "hostile.elf", kComponent, false, nullptr);
    return started ? std::string("started") : started.error().message();
  };
  const std::uint64_t table = benign.Find(".resource_table");
  ASSERT_NE(table, 0U);
  // Section 0, which the kernel reads and libelf's iteration skips, named .resource_table and
  // pointing at a second table appended to the image.
  Elf64 zeroth = benign;
  zeroth.Put(zeroth.Section(0), 4, benign.Get(benign.Section(table), 4));
  zeroth.Put(zeroth.Section(0) + 0x18, 8, zeroth.bytes.size());
  zeroth.Put(zeroth.Section(0) + 0x20, 8, hostile.size());
  zeroth.bytes.append(reinterpret_cast<const char*>(hostile.data()), hostile.size());
  EXPECT_EQ(refusal(zeroth), "hostile.elf: the firmware has a malformed resource table");
  // The section names in a table libelf will not read (not SHT_STRTAB, or cut short): the kernel
  // reads them anyway, and so does the check, which finds the hostile table.
  Elf64 untyped{FirmwareImage(dir_ / "untyped.elf", hostile)};
  untyped.Put(untyped.NameTable() + 4, 4, 1 /* SHT_PROGBITS */);
  EXPECT_EQ(refusal(untyped),
            "hostile.elf: the firmware asks for device memory to be mapped for the core");
  Elf64 cut{FirmwareImage(dir_ / "cut.elf", hostile)};
  cut.Put(cut.NameTable() + 0x20, 8, cut.Get(cut.NameTable() + 0x20, 8) - 1);
  EXPECT_EQ(refusal(cut),
            "hostile.elf: the firmware asks for device memory to be mapped for the core");
  // Section headers past the image: the kernel's bounds check wraps and reads outside it.
  Elf64 wrapped = benign;
  wrapped.Put(0x28, 8, 0xfffffffffffffff0);
  EXPECT_EQ(refusal(wrapped), "hostile.elf: the firmware has section headers outside the image");
  // A virtqueue whose alignment would have Linux allocate 2 GiB.
  Bytes aligned = ResourceTable({Vdev()});
  aligned[16 + 4 + 4 + 24 + 4] = 0;  // the first vring's align: 0x80000000
  aligned[16 + 4 + 4 + 24 + 7] = 0x80;
  EXPECT_EQ(refusal(Elf64{FirmwareImage(dir_ / "aligned.elf", aligned)}),
            "hostile.elf: the firmware has a malformed virtqueue");
  EXPECT_EQ(core.starts(), 0);
  EXPECT_EQ(refusal(benign), "started");
}

}  // namespace
}  // namespace aspis::device::apps
