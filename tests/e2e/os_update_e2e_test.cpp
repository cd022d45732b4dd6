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
    WriteText(dir_ / "board.json", testing::SimBoardJson());
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
    auto written =
        writer.Write(device::update::Slot::kA, package, device::update::AcceptAnyPackage);
    ASSERT_TRUE(written) << written.error().message();
  }

  // Starts the board; with `kill_at`, aspisd dies by SIGKILL once, at that kill point.
  void Start(const std::string& kill_at = {}) {
    std::vector<std::string> argv;
    if (!kill_at.empty()) {
      fs::create_directories(dir_ / "marks");
      argv = {"env", "ASPIS_KILL_AT=" + kill_at, "ASPIS_KILL_MARKS=" + (dir_ / "marks").string()};
    }
    const std::vector<std::string> board = {ASPISD_BINARY,
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
                                            std::to_string(trial_seconds_)};
    argv.insert(argv.end(), board.begin(), board.end());
    process_ = std::make_unique<testing::BackgroundProcess>(argv, std::nullopt, SIGTERM,
                                                            (dir_ / "aspisd.log").string());
  }
  // Whether aspisd was killed at its kill point.
  bool Killed(const std::string& point) const { return fs::exists(dir_ / "marks" / point); }
  void set_trial_seconds(int seconds) { trial_seconds_ = seconds; }
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
  int trial_seconds_ = 60;
  std::unique_ptr<testing::BackgroundProcess> process_;
};

class OsUpdateEndToEnd : public e2e::PlatformEndToEnd {
 protected:
  // A new board flashed with `package`, claimed and put in the Retail Evaluation group.
  std::unique_ptr<SimulatedBoard> NewBoard(const std::string& name, const std::string& package) {
    auto board = std::make_unique<SimulatedBoard>(dir_ / name, *service_);
    board->Flash(Path(package), Path("os.key.pub"));
    EXPECT_EQ(Run({"device", "claim", "--tenant", tenant_, "--device", board->id()}), 0);
    EXPECT_EQ(Run({"device", "update", "--tenant", tenant_, "--device", board->id(),
                   "--device-group", "Coffee/Field Test OS Evaluation"}),
              0);
    return board;
  }
};

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

TEST_F(OsUpdateEndToEnd, ADamagedUpdateRecordTurnsUpdatesOffButTheDeviceStillAttests) {
  BuildRootfs("rootfs-25.01", "aspis os 25.01");
  PublishOs("rootfs-25.01", "25.01", 1);
  ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  auto board = NewBoard("board", "rootfs-25.01.aspkg");
  fs::create_directories(dir_ / "board/state/update");
  WriteText(dir_ / "board/state/update/os.json", "{}");
  board->Start();
  Json status;
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
    std::ostringstream out, err;
    if (cli::Main(
            {"dev", "status", "--socket", (dir_ / "board/admin.sock").string(), "--output", "json"},
            out, err) == 0) {
      status = json::Parse(out.str()).value_or(Json());
      if (status["attestation"].value("verdict", "") == "trusted") break;
    }
  }
  EXPECT_EQ(status["attestation"].value("verdict", ""), "trusted");
  EXPECT_NE(status.value("update_error", "").find("OS updates are off"), std::string::npos)
      << status.dump();
  EXPECT_EQ(board->Stop(), 0);
}

// Whether the board's aspisd serves its status with a trusted attestation within `wait`.
bool Trusted(const fs::path& board, std::chrono::seconds wait) {
  for (const auto deadline = std::chrono::steady_clock::now() + wait;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
    std::ostringstream out, err;
    if (cli::Main(
            {"dev", "status", "--socket", (board / "admin.sock").string(), "--output", "json"}, out,
            err) != 0) {
      continue;
    }
    const Json status = json::Parse(out.str()).value_or(Json());
    if (status.is_object() && status.contains("attestation") &&
        status["attestation"].value("verdict", "") == "trusted") {
      return true;
    }
  }
  return false;
}

TEST_F(OsUpdateEndToEnd, ACommittedOsKeepsItsBootTriesAcrossEveryReboot) {
  BuildRootfs("rootfs-25.01", "aspis os 25.01");
  PublishOs("rootfs-25.01", "25.01", 1);
  ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  auto board = NewBoard("board", "rootfs-25.01.aspkg");
  // More power cycles than the boot counter has tries: each start of the committed OS gives its
  // tries back, so ordinary reboots never fall back to the other (empty) slot.
  for (int boot = 0; boot <= device::update::kBootTries; ++boot) {
    board->Start();
    ASSERT_TRUE(Trusted(dir_ / "board", 60s)) << "boot " << boot << "\n"
                                              << ReadText(dir_ / "board/aspisd.log");
    EXPECT_EQ(board->Bootloader().TriesLeft(device::update::Slot::kA), device::update::kBootTries);
    EXPECT_EQ(*board->Bootloader().Booted(), device::update::Slot::kA);
    board->Stop();
  }
}

TEST_F(OsUpdateEndToEnd, RollbackAttackAnOldTreePutBackInTheBootedSlotIsNeverRun) {
  BuildRootfs("rootfs-25.01", "aspis os 25.01");
  PublishOs("rootfs-25.01", "25.01", 1);
  ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  auto board = NewBoard("board", "rootfs-25.01.aspkg");
  board->Start();
  ASSERT_TRUE(Trusted(dir_ / "board", 60s)) << ReadText(dir_ / "board/aspisd.log");
  board->Stop();
  // The owner (root on the device) puts another tree in the slot, its signed header left as it
  // was: aspisd measures the tree, finds it is not the OS the header signs, and does not run.
  WriteText(board->Slot("a") / "bin/init", "an older init");
  fs::remove(dir_ / "board/aspisd.log");
  board->Start();
  EXPECT_FALSE(Trusted(dir_ / "board", 15s)) << "the device ran a tree its header does not sign";
  EXPECT_NE(ReadText(dir_ / "board/aspisd.log")
                .find("the booted slot does not hold the OS its header signs"),
            std::string::npos);
  board->Stop();
  // Its twin: the signed tree back in place runs again.
  WriteText(board->Slot("a") / "bin/init", "aspis os 25.01");
  board->Start();
  EXPECT_TRUE(Trusted(dir_ / "board", 60s)) << ReadText(dir_ / "board/aspisd.log");
  board->Stop();
}

// aspisd is killed (SIGKILL) once at each step boundary of an OS install, of a download, of a
// factory OS's adoption, of a revert and of a fall-back (24 points); the simulated board restarts
// it, and each time the device ends running a checked OS, the new one or the old one as the path
// says, never neither.
class KillPoints : public OsUpdateEndToEnd {
 protected:
  void SetUp() override {
    OsUpdateEndToEnd::SetUp();
    ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  }

  // Boards for `points` run at once, each flashed with `flashed` and killed at its point, and each
  // must end with `image` in `state`, running the OS whose init says `runs`.
  void KillAt(const std::vector<std::string>& points, const std::string& flashed,
              const std::string& image, const std::string& state, const std::string& runs,
              int trial_seconds = 60) {
    std::vector<std::unique_ptr<SimulatedBoard>> boards;
    for (const auto& point : points) {
      boards.push_back(NewBoard("board-" + point, flashed));
      boards.back()->set_trial_seconds(trial_seconds);
      boards.back()->Start(point);
    }
    for (std::size_t i = 0; i < points.size(); ++i) {
      SCOPED_TRACE(points[i]);
      SimulatedBoard& board = *boards[i];
      board.WaitForTarget(image, state);
      EXPECT_TRUE(board.Killed(points[i])) << "aspisd never reached " << points[i];
      auto boot = board.Bootloader();
      EXPECT_EQ(
          ReadText(board.Slot(*boot.Booted() == device::update::Slot::kA ? "a" : "b") / "bin/init"),
          runs);
      EXPECT_EQ(board.Stop(), 0);
    }
  }

  // 25.01 (flashed) and 25.02 (the update) published; returns 25.02.
  Published TwoReleases() {
    BuildRootfs("rootfs-25.01", "aspis os 25.01");
    BuildRootfs("rootfs-25.02", "aspis os 25.02");
    PublishOs("rootfs-25.01", "25.01", 1);
    return PublishOs("rootfs-25.02", "25.02", 2);
  }
};

TEST_F(KillPoints, AspisdKilledWhileDownloadingOrWritingTheNewOsFinishesTheInstall) {
  const auto good = TwoReleases();
  KillAt({"download.range", "download.verified", "os.idle-install.before", "os.idle-install.after",
          "slot.unpacked", "slot.cleared", "os.install-switch.before", "os.install-switch.after"},
         "rootfs-25.01.aspkg", good.os_image, "installed", "aspis os 25.02");
}

TEST_F(KillPoints, AspisdKilledAroundTheRebootTheTrialOrTheCommitFinishesTheInstall) {
  const auto good = TwoReleases();
  KillAt({"os.switch-reboot.before", "os.switch-reboot.after", "os.reboot-trial.before",
          "os.reboot-trial.after", "os.trial-commit.before", "os.trial-commit.after",
          "os.commit-idle.before", "os.commit-idle.after"},
         "rootfs-25.01.aspkg", good.os_image, "installed", "aspis os 25.02");
}

TEST_F(KillPoints, AspisdKilledWhileAdoptingOrRevertingKeepsTheOldOs) {
  BuildRootfs("rootfs-25.02", "aspis os 25.02");
  const auto factory = PublishOs("rootfs-25.02", "25.02", 2);
  // The factory OS is the newest: adopted.
  KillAt({"os.adopt.before", "os.adopt.after"}, "rootfs-25.02.aspkg", factory.os_image, "installed",
         "aspis os 25.02");
  // An OS that runs but never reaches the service (its trust bundle pins another root): its trial
  // runs out and it is reverted.
  BuildRootfs("rootfs-25.04", "aspis os 25.04");
  const auto stranger = testing::RunProcess({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                             "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                                             Path("stranger.key"), "-out", Path("stranger.pem"),
                                             "-subj", "/CN=Stranger Root", "-days", "30"});
  ASSERT_EQ(stranger.exit_code, 0) << stranger.output;
  fs::remove(dir_ / "rootfs-25.04/etc/aspis/trust-bundle.pem");
  WriteText(dir_ / "rootfs-25.04/etc/aspis/trust-bundle.pem",
            ReadText(dir_ / "stranger.pem") + ReadText(dir_ / "os.key.pub"));
  const auto lost = PublishOs("rootfs-25.04", "25.04", 4);
  KillAt({"os.trial-revert.before", "os.trial-revert.after", "os.revert-idle.before",
          "os.revert-idle.after"},
         "rootfs-25.02.aspkg", lost.os_image, "reverted", "aspis os 25.02", 10);
}

TEST_F(KillPoints, AspisdKilledAfterTheBootloaderFellBackReportsTheRevert) {
  BuildRootfs("rootfs-25.02", "aspis os 25.02");
  PublishOs("rootfs-25.02", "25.02", 2);
  // An OS whose aspisd dies at start: the boot counter runs out and the old slot comes back.
  WriteText(dir_ / "broken-aspisd", "#!/bin/sh\nexit 1\n");
  fs::permissions(dir_ / "broken-aspisd", fs::perms::owner_all);
  BuildRootfs("rootfs-25.05", "aspis os 25.05", dir_ / "broken-aspisd");
  const auto broken = PublishOs("rootfs-25.05", "25.05", 5);
  KillAt({"os.trial-idle.before", "os.trial-idle.after"}, "rootfs-25.02.aspkg", broken.os_image,
         "reverted", "aspis os 25.02");
}

}  // namespace
}  // namespace aspis
