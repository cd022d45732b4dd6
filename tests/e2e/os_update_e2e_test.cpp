// OS updates end to end on the simulated board: `aspisd simulate` boots A/B slot directories and
// runs each slot's own aspisd; the platform publishes OS releases to Retail Evaluation, and the
// device installs each into its other slot, reboots into it, and commits it once it attested and
// checked in, or goes back to the old slot when the new one never comes up.
#include <gtest/gtest.h>

#include <filesystem>

#include "device/update/boot/simulated_bootloader.hpp"
#include "device/update/slot_writer.hpp"
#include "e2e/platform.hpp"
#include "package/measure.hpp"

namespace aspis {
namespace {

namespace fs = std::filesystem;
using e2e::ReadText;
using e2e::WriteText;
using json::Json;
using namespace std::chrono_literals;

// A simulated board: its slots (A flashed at the factory), its state, and `aspisd simulate`.
class SimulatedBoard {
 public:
  SimulatedBoard(const fs::path& dir, const e2e::ServiceProcess& service)
      : dir_(dir), service_(service) {
    fs::create_directories(dir_ / "slots");
    WriteText(dir_ / "board.json", R"({"Description": {"Name": "mt3620-sim"}})");
    auto init = testing::RunProcess({ASPISD_BINARY, "identity", "init", "--state", State(),
                                     "--output", "json", "--rot", "software"});
    EXPECT_EQ(init.exit_code, 0) << init.output;
    const auto start = init.output.find('{');
    id_ = json::Parse(init.output.substr(start == std::string::npos ? 0 : start))
              .value_or(Json::object())
              .value("device_id", "");
  }

  // Writes `package` into slot A, as the factory does, with the device's own slot writer.
  void Flash(const fs::path& package, const fs::path& os_publisher_key) {
    crypto::dsse::TrustedKeys keys;
    keys.Add(*crypto::PublicKey::FromPem(ReadText(os_publisher_key)));
    device::update::DirectorySlotWriter writer(
        [this](device::update::Slot slot) {
          return dir_ / "slots" / (slot == device::update::Slot::kA ? "a" : "b");
        },
        {.os = &keys}, "mt3620-sim");
    auto written = writer.Write(device::update::Slot::kA, package);
    ASSERT_TRUE(written) << written.error().message();
  }

  void Start() {
    process_ = std::make_unique<testing::BackgroundProcess>(
        std::vector<std::string>{ASPISD_BINARY,
                                 "simulate",
                                 "--slots",
                                 (dir_ / "slots").string(),
                                 "--boot-id-file",
                                 (dir_ / "boot_id").string(),
                                 "--",
                                 "--state",
                                 State(),
                                 "--service",
                                 service_.url(),
                                 "--board",
                                 (dir_ / "board.json").string(),
                                 "--admin-socket",
                                 (dir_ / "admin.sock").string(),
                                 "--retry-max-seconds",
                                 "2",
                                 "--check-in-interval",
                                 "2",
                                 "--trial-seconds",
                                 "60"},
        std::nullopt, SIGTERM, (dir_ / "aspisd.log").string());
  }
  int Stop() { return process_->Stop(); }

  // Waits (bounded) until the device reports `image` in `state`; the status seen last.
  Json WaitForTarget(const std::string& image, const std::string& state) const {
    Json status;
    for (const auto deadline = std::chrono::steady_clock::now() + 180s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
      std::ostringstream out, err;
      if (cli::Main(
              {"dev", "status", "--socket", (dir_ / "admin.sock").string(), "--output", "json"},
              out, err) != 0) {
        continue;  // rebooting
      }
      status = json::Parse(out.str()).value_or(Json());
      for (const auto& t : status.value("targets", Json::array())) {
        if (t.value("image_id", "") == image && t.value("state", "") == state) return status;
      }
    }
    ADD_FAILURE() << "the device never reported " << image << " " << state << "; last status "
                  << status.dump() << "\nlog:\n"
                  << ReadText(dir_ / "aspisd.log");
    return status;
  }

  // The slot the simulated bootloader boots first, and the tries each slot has left.
  device::update::SimulatedBootloader Bootloader() const {
    return *device::update::SimulatedBootloader::Open(file::RealFileSystem(), dir_ / "slots");
  }
  fs::path Slot(std::string_view name) const { return dir_ / "slots" / name; }
  const std::string& id() const { return id_; }

 private:
  std::string State() const { return (dir_ / "state").string(); }

  fs::path dir_;
  const e2e::ServiceProcess& service_;
  std::string id_;
  std::unique_ptr<testing::BackgroundProcess> process_;
};

class OsUpdateEndToEnd : public e2e::PlatformEndToEnd {};

TEST_F(OsUpdateEndToEnd,
       ANewOsIsInstalledRebootedIntoAndCommittedAndOneThatNeverComesUpIsReverted) {
  BuildRootfs("rootfs-25.01", "aspis os 25.01");
  const auto first = PublishOs("rootfs-25.01", "25.01", 1);
  ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  SimulatedBoard board(dir_ / "board", *service_);
  board.Flash(Path("rootfs-25.01.aspkg"), Path("os.key.pub"));
  ASSERT_EQ(Run({"device", "claim", "--tenant", tenant_, "--device", board.id()}), 0);
  ASSERT_EQ(Run({"device", "update", "--tenant", tenant_, "--device", board.id(), "--device-group",
                 "Coffee/Field Test OS Evaluation"}),
            0);
  board.Start();
  // The factory OS is the feed's: recognised by its measurement, not installed again.
  board.WaitForTarget(first.os_image, "installed");
  EXPECT_FALSE(fs::exists(board.Slot("b")));

  // 25.02: downloaded, written to slot B, rebooted into, attested, committed.
  BuildRootfs("rootfs-25.02", "aspis os 25.02");
  const auto second = PublishOs("rootfs-25.02", "25.02", 2);
  const Json committed = board.WaitForTarget(second.os_image, "installed");
  EXPECT_EQ(committed["attestation"].value("verdict", ""), "trusted");
  EXPECT_EQ(ReadText(board.Slot("b") / "bin/init"), "aspis os 25.02");
  auto after = board.Bootloader();
  EXPECT_EQ(*after.Booted(), device::update::Slot::kB);
  EXPECT_EQ(after.TriesLeft(device::update::Slot::kA), 0)
      << "25.01 is below the anti-rollback counter now: no fallback to it";
  const Json shown = Cli({"device", "show", "--tenant", tenant_, "--device", board.id()});
  EXPECT_EQ(shown.value("os_version", ""), "25.02");

  // 25.03 never comes up (its aspisd dies at start): the boot counter runs out, the bootloader
  // goes back to slot B, and the device reports the revert with its reason.
  WriteText(dir_ / "broken-aspisd", "#!/bin/sh\nexit 1\n");
  fs::permissions(dir_ / "broken-aspisd", fs::perms::owner_all);
  BuildRootfs("rootfs-25.03", "aspis os 25.03", dir_ / "broken-aspisd");
  const auto third = PublishOs("rootfs-25.03", "25.03", 3);
  const Json reverted = board.WaitForTarget(third.os_image, "reverted");
  std::string reason;
  for (const auto& t : reverted["targets"]) {
    if (t.value("image_id", "") == third.os_image) reason = t.value("reason", "");
  }
  EXPECT_NE(reason.find("went back to slot B"), std::string::npos) << reason;
  EXPECT_EQ(*board.Bootloader().Booted(), device::update::Slot::kB);
  EXPECT_EQ(ReadText(board.Slot("b") / "bin/init"), "aspis os 25.02");
  // The operator sees where each device stands.
  const auto seen = [&] {
    for (const auto deadline = std::chrono::steady_clock::now() + 30s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
      const Json device = Cli({"device", "show", "--tenant", tenant_, "--device", board.id()});
      for (const auto& i : device.value("images", Json::array())) {
        if (i.value("image_id", "") == third.os_image && i.value("state", "") == "reverted") {
          return i.value("reason", "");
        }
      }
    }
    return std::string();
  }();
  EXPECT_NE(seen.find("went back to slot B"), std::string::npos) << seen;
  EXPECT_EQ(board.Stop(), 0);
}

}  // namespace
}  // namespace aspis
