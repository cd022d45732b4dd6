// A board whose OS slots are partitions behind U-Boot or GRUB, end to end in this process: OS
// images made with mke2fs and packed with `aspis image-package pack-os --image`, slot A written
// by `aspisd flash --partition`, the bootloader's environment read and written by its own tools
// (fw_printenv/fw_setenv, grub-editenv) as its boot script does at each power-on, and aspisd
// (RunDaemon) checking in with a scripted service. An update is installed into the other
// partition, tried and committed; a bad one is reverted, by aspisd when it does not come up
// healthy and by the bootloader when it never comes up at all.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "cli/cli.hpp"
#include "core/file.hpp"
#include "crypto/sha256.hpp"
#include "device/cli/aspisd_cli.hpp"
#include "device/daemon/daemon.hpp"
#include "device/update/os_agent.hpp"
#include "package/measure.hpp"
#include "support/board.hpp"
#include "support/firmware.hpp"
#include "support/process.hpp"
#include "support/scripted_service.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device {
namespace {

namespace fs = std::filesystem;

constexpr char kBoard[] = "mt3620-board";
constexpr char kComponent[] = "6b1f0c2e-3d4a-4b5c-8d6e-7f8091a2b3c4";
constexpr std::size_t kPartitionSize = std::size_t{16} << 20;

void WriteText(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

class PartitionBoard : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    WriteText(dir_ / "board.json", testing::BoardJson(kBoard));
    WriteText(dir_ / "aspisd", "aspisd");
    std::ostringstream out, err;
    ASSERT_EQ(cli::Main({"key", "generate", "--destination", (dir_ / "os.key").string()}, out, err),
              0)
        << err.str();
    // The running root's trust bundle: the platform root and the OS publisher.
    WriteText(dir_ / "trust-bundle.pem",
              *root_.cert.ToPem() + std::string(AsString(*file::Read(dir_ / "os.key.pub"))));
    for (const char* name : {"part-a", "part-b"}) {
      std::ofstream(dir_ / name, std::ios::binary) << std::string(kPartitionSize, '\0');
    }
    if (GetParam() == "u-boot") firmware_ = std::make_unique<testing::UBootFirmware>(dir_.path());
    if (GetParam() == "grub") firmware_ = std::make_unique<testing::GrubFirmware>(dir_.path());
    ASSERT_TRUE(firmware_);

    config_.state_dir = dir_ / "state";
    config_.service_url = "https://127.0.0.1:9";
    config_.rot = "software";
    config_.boot_id_file = dir_ / "boot_id";
    config_.bootloader = GetParam();
    config_.slot_a = dir_ / "part-a";
    config_.slot_b = dir_ / "part-b";
    config_.boot_environment = GetParam() == "u-boot" ? dir_ / "fw_env.config" : dir_ / "grubenv";
    config_.kernel_cmdline = dir_ / "cmdline";
    config_.trust_bundle = dir_ / "trust-bundle.pem";
    config_.board = dir_ / "board.json";
    config_.aspisd_binary = dir_ / "aspisd";
    config_.admin_socket = dir_ / "admin.sock";
    config_.retry_base = std::chrono::milliseconds(10);
    config_.retry_cap = std::chrono::milliseconds(100);

    os_1_0_ = Pack("1.0", 1);
    std::ostringstream flashed, failed;
    ASSERT_EQ(device::Main({"flash", "--partition", config_.slot_a.string(), "--state",
                            config_.state_dir.string(), "--image", os_1_0_.path.string(),
                            "--os-publisher-keys", (dir_ / "os.key.pub").string(), "--board",
                            config_.board.string()},
                           flashed, failed),
              0)
        << failed.str();

    WriteText(config_.boot_id_file, "factory");
    auto rot = rot::Initialize({.backend = "software",
                                .state_dir = config_.state_dir,
                                .boot_id_file = config_.boot_id_file});
    ASSERT_TRUE(rot) << rot.error().message();
    service_.emplace(SystemClock::Instance(), (*rot)->GetIdentity()->device_id,
                     std::chrono::system_clock::now(), root_);
  }

  struct Os {
    fs::path path;
    std::string image_id;
    crypto::Digest image_sha256{};
  };

  // An OS release: a root file system, its ext4 image (or the image of `same_as`, re-signed),
  // and the package of that image.
  Os Pack(const std::string& version, std::uint64_t security_version,
          const std::string& same_as = "") {
    const fs::path rootfs = dir_ / ("rootfs-" + version);
    WriteText(rootfs / "usr/sbin/aspisd", "aspisd");
    WriteText(rootfs / "etc/os-release", "VERSION_ID=" + version + "\n");
    fs::create_directories(rootfs / "etc/aspis");
    fs::copy_file(dir_ / "trust-bundle.pem", rootfs / std::string(package::kTrustBundleInRootfs),
                  fs::copy_options::overwrite_existing);
    const fs::path image = dir_ / ("os-" + (same_as.empty() ? version : same_as) + ".ext4");
    if (same_as.empty()) {
      auto made = testing::RunProcess(
          {"mke2fs", "-q", "-F", "-t", "ext4", "-d", rootfs.string(), image.string(), "4M"});
      EXPECT_EQ(made.exit_code, 0) << made.output;
    }
    const fs::path package =
        dir_ / ("os-" + version + "-" + std::to_string(security_version) + ".aspkg");
    std::ostringstream out, err;
    EXPECT_EQ(cli::Main({"image-package",
                         "pack-os",
                         "--rootfs",
                         rootfs.string(),
                         "--image",
                         image.string(),
                         "--key",
                         (dir_ / "os.key").string(),
                         "--version",
                         version,
                         "--security-version",
                         std::to_string(security_version),
                         "--target-board",
                         kBoard,
                         "--component-id",
                         kComponent,
                         "--destination",
                         package.string(),
                         "--output",
                         "json"},
                        out, err),
              0)
        << err.str();
    auto printed = json::Parse(out.str());
    EXPECT_TRUE(printed) << out.str();
    return {package, printed ? printed->value("image_id", "") : "", *package::MeasurePath(image)};
  }

  void Offer(const Os& os, const std::string& version, std::uint64_t security_version) {
    const std::string bytes(AsString(*file::Read(os.path, std::size_t{64} << 20)));
    service_->Offer({.image_id = os.image_id,
                     .component_id = kComponent,
                     .kind = "os",
                     .version = version,
                     .security_version = security_version,
                     .sha256 = crypto::ToHex(*crypto::Sha256Of(AsBytes(bytes))),
                     .size = bytes.size(),
                     .url = "/v1/device/images/" + os.image_id},
                    bytes);
  }

  // The board's power comes on: its boot script picks a slot. Returns it.
  update::Slot PowerOn() {
    WriteText(config_.boot_id_file, "boot-" + std::to_string(++boots_));
    return firmware_->PowerOn();
  }

  // aspisd runs on the booted OS until it exits (a reboot asked, or a failure to start) or `done`.
  Expected<DaemonExit> Run(const std::function<bool()>& done) {
    std::stop_source stop;
    std::atomic<bool> exited = false;
    std::optional<Expected<DaemonExit>> result;
    std::jthread daemon([&] {
      result = RunDaemon(config_, env_, stop.get_token(), &*service_);
      exited = true;
      service_->Nudge();
    });
    service_->Await([&] { return exited || done(); });
    stop.request_stop();
    daemon.join();
    return *result;
  }
  // ... or until it reports `image` installed, reverted or failed.
  Expected<DaemonExit> Run(const std::string& image) {
    return Run([&] { return !Reported(image, true).empty(); });
  }
  // ... or until it checked in.
  Expected<DaemonExit> RunUntilCheckedIn() {
    const auto check_ins = [&] {
      const auto calls = service_->calls();
      return std::count_if(calls.begin(), calls.end(),
                           [](const auto& c) { return c.what == "check-in"; });
    };
    const auto before = check_ins();
    return Run([&] { return check_ins() > before; });
  }

  // The state the board last reported for `image`; with `settled`, only installed, reverted or
  // failed.
  std::string Reported(const std::string& image, bool settled = false) {
    for (const auto& t : service_->reported()) {
      if (t.image_id != image) continue;
      if (!settled || t.state == wire::kInstalled || t.state == wire::kReverted ||
          t.state == wire::kFailed) {
        return t.state;
      }
    }
    return "";
  }

  std::string ReportedReason(const std::string& image) {
    for (const auto& t : service_->reported()) {
      if (t.image_id == image) return t.reason;
    }
    return "";
  }

  // The OS digest aspisd measured at its last attestation.
  crypto::Digest MeasuredOs() {
    for (const auto& e : service_->attested()) {
      if (e.component == "os") return e.digest;
    }
    return {};
  }

  std::uint64_t OsCounter() {
    auto rot = rot::Open(config_.state_dir, config_.boot_id_file);
    return rot ? (*rot)->ReadCounter(update::kOsSecurityVersionCounter).value_or(0) : 0;
  }

  // With 1.1 running from partition B, `os` (offered instead of 1.1) is installed into A, and the
  // board asks to reboot into it.
  void InstallFromB(const Os& os, const std::string& version, std::uint64_t security_version) {
    service_->Withdraw(os_1_1_.image_id);
    Offer(os, version, security_version);
    ASSERT_EQ(PowerOn(), update::Slot::kB);
    auto install = Run(os.image_id);
    ASSERT_TRUE(install) << install.error().message();
    ASSERT_EQ(*install, DaemonExit::kReboot)
        << Reported(os.image_id) << ": " << ReportedReason(os.image_id);
  }

  // Powers on until the bootloader gives up on partition A (its kernel never starts aspisd).
  void PowerOnUntilFallbackToB() {
    for (int tries = 0; PowerOn() == update::Slot::kA; ++tries) {
      ASSERT_LT(tries, 5) << "the bootloader never fell back";
    }
  }

  // Installs OS 1.1 from 1.0 and commits it: the board then runs 1.1 from partition B.
  void UpdateTo1_1() {
    Offer(os_1_1_ = Pack("1.1", 2), "1.1", 2);
    ASSERT_EQ(PowerOn(), update::Slot::kA);
    auto first = Run(os_1_1_.image_id);
    ASSERT_TRUE(first) << first.error().message();
    ASSERT_EQ(*first, DaemonExit::kReboot) << "1.1 was not installed into partition B";
    ASSERT_EQ(PowerOn(), update::Slot::kB) << "the bootloader does not try the new slot";
    auto second = Run(os_1_1_.image_id);
    ASSERT_TRUE(second) << second.error().message();
    ASSERT_EQ(Reported(os_1_1_.image_id), wire::kInstalled) << ReportedReason(os_1_1_.image_id);
  }

  testing::TempDir dir_;
  testing::Issuer root_ =
      testing::MakeRoot(std::chrono::system_clock::now(), std::chrono::hours(24 * 365));
  Env env_{file::RealFileSystem(), SystemClock::Instance(), [] { return 0.5; }};
  DaemonConfig config_;
  std::unique_ptr<testing::Firmware> firmware_;
  std::optional<testing::ScriptedService> service_;
  Os os_1_0_;
  Os os_1_1_;
  int boots_ = 0;
};

TEST_P(PartitionBoard, AnOsImageIsInstalledIntoTheOtherPartitionTriedAndCommitted) {
  UpdateTo1_1();
  EXPECT_EQ(MeasuredOs(), os_1_1_.image_sha256) << "aspisd measured the image it booted";
  EXPECT_EQ(OsCounter(), 2U);
  for (int boot = 0; boot < 4; ++boot) {
    EXPECT_EQ(PowerOn(), update::Slot::kB) << "the committed slot keeps booting";
    auto again = RunUntilCheckedIn();
    ASSERT_TRUE(again) << again.error().message();
  }
}

TEST_P(PartitionBoard, ABadOsThatDoesNotComeUpHealthyIsRevertedByAspisd) {
  UpdateTo1_1();
  const Os os_1_2 = Pack("1.2", 3);
  InstallFromB(os_1_2, "1.2", 3);
  ASSERT_EQ(PowerOn(), update::Slot::kA) << "1.2 is tried from partition A";
  // The service does not trust 1.2 (say its release was never registered).
  service_->Script(testing::ScriptedService::Answer::kRefuse,
                   testing::ScriptedService::Answer::kYes);
  auto trial = Run(os_1_2.image_id);
  ASSERT_TRUE(trial) << trial.error().message();
  ASSERT_EQ(*trial, DaemonExit::kReboot) << "the unhealthy OS did not ask to go back";
  service_->Script(testing::ScriptedService::Answer::kYes, testing::ScriptedService::Answer::kYes);
  ASSERT_EQ(PowerOn(), update::Slot::kB) << "the bootloader does not boot 1.1 again";
  auto back = Run(os_1_2.image_id);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(Reported(os_1_2.image_id), wire::kReverted);
  EXPECT_NE(ReportedReason(os_1_2.image_id).find("attestation refused"), std::string::npos)
      << ReportedReason(os_1_2.image_id);
  EXPECT_EQ(MeasuredOs(), os_1_1_.image_sha256);
  EXPECT_EQ(OsCounter(), 2U) << "the counter moves only at commit";
}

TEST_P(PartitionBoard, AnOsThatNeverComesUpIsRevertedByTheBootloadersCounter) {
  UpdateTo1_1();
  const Os os_1_2 = Pack("1.2", 3);
  InstallFromB(os_1_2, "1.2", 3);
  // 1.2's kernel never starts aspisd: the board is powered on again and again.
  PowerOnUntilFallbackToB();
  auto back = Run(os_1_2.image_id);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(Reported(os_1_2.image_id), wire::kReverted) << ReportedReason(os_1_2.image_id);
  EXPECT_EQ(MeasuredOs(), os_1_1_.image_sha256);
}

TEST_P(PartitionBoard, AfterTheBootloaderFallsBackTheBoardReportsTheOsItRuns) {
  UpdateTo1_1();
  // 1.2 keeps 1.1's security version, so 1.1 stays a fallback once 1.2 is committed.
  const Os os_1_2 = Pack("1.2", 2);
  InstallFromB(os_1_2, "1.2", 2);
  ASSERT_EQ(PowerOn(), update::Slot::kA);
  auto trial = Run(os_1_2.image_id);
  ASSERT_TRUE(trial) << trial.error().message();
  ASSERT_EQ(Reported(os_1_2.image_id), wire::kInstalled);
  // Partition A stops booting (its kernel panics) until the bootloader falls back to 1.1.
  PowerOnUntilFallbackToB();
  auto fallen_back = RunUntilCheckedIn();
  ASSERT_TRUE(fallen_back) << fallen_back.error().message();
  const auto report = service_->last_report();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->os_version, "1.1") << "the board reports the OS it runs, not the record's";
  ASSERT_FALSE(report->images.empty());
  EXPECT_EQ(report->images.front().image_id, os_1_1_.image_id);
}

TEST_P(PartitionBoard, PartitionsNamedByStableLinksAreUpdated) {
  fs::create_directories(dir_ / "by-partlabel");
  fs::create_symlink(config_.slot_a, dir_ / "by-partlabel/rootfs-a");
  fs::create_symlink(config_.slot_b, dir_ / "by-partlabel/rootfs-b");
  config_.slot_a = dir_ / "by-partlabel/rootfs-a";
  config_.slot_b = dir_ / "by-partlabel/rootfs-b";
  UpdateTo1_1();
  EXPECT_EQ(MeasuredOs(), os_1_1_.image_sha256);
}

TEST_P(PartitionBoard, TheRunningImageSignedAtAHigherSecurityVersionIsInstalledNotAdopted) {
  // A release of the very image the factory flashed, signed again at a higher security version:
  // adopting it would raise the counter above the partition's header, which then fails at boot.
  // It is installed into the other partition like any new OS instead.
  const Os release = Pack("1.0", 2, "1.0");
  Offer(release, "1.0", 2);
  ASSERT_EQ(PowerOn(), update::Slot::kA);
  auto first = Run(release.image_id);
  ASSERT_TRUE(first) << first.error().message();
  ASSERT_EQ(*first, DaemonExit::kReboot)
      << Reported(release.image_id) << ": " << ReportedReason(release.image_id);
  ASSERT_EQ(PowerOn(), update::Slot::kB);
  auto trial = Run(release.image_id);
  ASSERT_TRUE(trial) << trial.error().message();
  EXPECT_EQ(Reported(release.image_id), wire::kInstalled) << ReportedReason(release.image_id);
  EXPECT_EQ(OsCounter(), 2U);
  ASSERT_EQ(PowerOn(), update::Slot::kB);
  auto again = RunUntilCheckedIn();
  EXPECT_TRUE(again) << "the board no longer starts: " << again.error().message();
}

TEST_P(PartitionBoard, RollbackAttackAnOldImageWrittenBackIntoTheBootedPartitionDoesNotRun) {
  UpdateTo1_1();
  // The owner writes OS 1.0's image over partition B and 1.0's header in place of 1.1's.
  const std::string old(AsString(*file::Read(dir_ / "os-1.0.ext4", kPartitionSize)));
  {
    std::fstream part(config_.slot_b, std::ios::in | std::ios::out | std::ios::binary);
    part.write(old.data(), static_cast<std::streamsize>(old.size()));
  }
  fs::copy_file(config_.state_dir / "slots" / "A.header", config_.state_dir / "slots" / "B.header",
                fs::copy_options::overwrite_existing);
  ASSERT_EQ(PowerOn(), update::Slot::kB);
  auto refused = RunUntilCheckedIn();
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("anti-rollback counter"), std::string::npos)
      << refused.error().message();
}

std::string TestName(const ::testing::TestParamInfo<std::string>& param) {
  return param.param == "u-boot" ? "UBoot" : "Grub";
}

INSTANTIATE_TEST_SUITE_P(Bootloaders, PartitionBoard, ::testing::Values("u-boot", "grub"),
                         TestName);

}  // namespace
}  // namespace aspis::device
