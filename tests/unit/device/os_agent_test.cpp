// The OS update agent: its table of transitions, each path through it on a simulated board, the
// rollback attacks it refuses, and a power cut at every durable write of an install.
#include "device/update/os_agent.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "device/update/boot/simulated_bootloader.hpp"
#include "device/update/errors.hpp"
#include "support/faulty_file_system.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::update {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kSlots = "/slots";
const fs::path kState = "/state";

// Writes a slot as two durable files, so that a power cut between them leaves it torn, as a real
// slot write can be: the slot holds an image only when both agree.
class TwoPartWriter final : public SlotWriter {
 public:
  explicit TwoPartWriter(file::FileSystem& fs) : fs_(fs) {}
  // The package path names the version ("os-1.1"); its image ID and security version are as
  // OsTarget() below gives them, unless `substitute` says otherwise.
  Expected<package::Manifest> Write(Slot slot, const fs::path& package,
                                    const AcceptPackage& accept) override {
    package::Manifest m;
    const std::string version = package.string().substr(3);
    m.image_id = "image-" + version;
    m.security_version = security_versions.contains(version) ? security_versions[version] : 0;
    if (substitute) m.security_version = 1;
    if (auto ok = accept(m); !ok) return std::unexpected(ok.error());
    ++writes;
    if (fail) return Fail(UpdateErrc::kInstall, "no space left on the slot");
    for (const char* part : {"part1", "part2"}) {
      if (auto ok = file::WriteDurably(fs_, Dir(slot) / part, AsBytes(package.string()), 0600);
          !ok) {
        return std::unexpected(ok.error());
      }
    }
    return m;
  }
  // The image the slot holds, or nothing when it is torn or empty.
  std::optional<std::string> Holds(Slot slot) const {
    auto one = fs_.Read(Dir(slot) / "part1", 1024);
    auto two = fs_.Read(Dir(slot) / "part2", 1024);
    if (!one || !two || *one != *two) return std::nullopt;
    return std::string(AsString(*one));
  }
  static fs::path Dir(Slot slot) { return kSlots / SlotName(slot); }

  int writes = 0;
  bool fail = false;
  bool substitute = false;  // the staged file now holds another package, of security version 1
  std::map<std::string, std::uint64_t> security_versions;

 private:
  file::FileSystem& fs_;
};

// A simulated board whose storage is a FaultyFileSystem: slot A holds OS 1.0 (security version
// 1), committed; each "power on" boots through the simulated bootloader and opens the agent.
class Board : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = rot::Initialize({.backend = "software", .state_dir = dir_ / "rot"});
    ASSERT_TRUE(opened) << opened.error().message();
    rot_ = std::move(*opened);
    ASSERT_TRUE(rot_->AdvanceCounter(kOsSecurityVersionCounter, 1));
    ASSERT_TRUE(writer_.Write(Slot::kA, "os-1.0", AcceptAnyPackage));
    writer_.writes = 0;
    PowerOn();
  }

  // Boots (a new boot ID) and opens the agent, as aspisd does at start.
  Expected<void> TryPowerOn() {
    agent_.reset();
    ++boots_;
    auto boot = SimulatedBootloader::Open(fs_, kSlots);
    if (!boot) return std::unexpected(boot.error());
    boot_.emplace(std::move(*boot));
    if (auto booted = boot_->Boot("boot-" + std::to_string(boots_)); !booted) {
      return std::unexpected(booted.error());
    }
    return TryOpenAgent();
  }
  void PowerOn() { ASSERT_TRUE(TryPowerOn()); }

  Expected<void> TryOpenAgent() {
    reboot_asked_ = false;
    auto agent = OsAgent::Open({.env = {fs_, clock_, [] { return 0.5; }},
                                .store = store_,
                                .boot = *boot_,
                                .writer = writer_,
                                .rot = *rot_,
                                .reboot = [this] { reboot_asked_ = true; },
                                .trial_time = 10min},
                               "boot-" + std::to_string(boots_));
    if (!agent) return std::unexpected(agent.error());
    agent_.emplace(std::move(*agent));
    return {};
  }
  void OpenAgent() { ASSERT_TRUE(TryOpenAgent()); }

  OsTarget Os(const std::string& version, std::uint64_t security_version) {
    writer_.security_versions[version] = security_version;
    return {"image-" + version, version, security_version, "os-" + version};
  }

  // Installs `target` and reboots into it, up to the trial.
  void InstallAndReboot(const OsTarget& target) {
    ASSERT_TRUE(agent_->Install(target));
    ASSERT_EQ(agent_->record().step, Step::kReboot);
    ASSERT_TRUE(reboot_asked_);
    PowerOn();
    ASSERT_TRUE(agent_->Resume());
  }

  std::uint64_t Counter() { return *rot_->ReadCounter(kOsSecurityVersionCounter); }
  Slot Booted() { return *boot_->Booted(); }

  testing::TempDir dir_;
  testing::FaultyFileSystem fs_;
  SimulatedClock clock_{Clock::TimePoint(std::chrono::seconds(1'800'000'000))};
  state::StateStore store_{fs_, kState};
  TwoPartWriter writer_{fs_};
  std::unique_ptr<rot::RootOfTrust> rot_;
  std::optional<SimulatedBootloader> boot_;
  std::optional<OsAgent> agent_;
  bool reboot_asked_ = false;
  int boots_ = 0;
};

TEST(OsAgentTable, EachStepAnswersOnlyTheEventsItsTransitionsName) {
  const Step steps[] = {Step::kIdle,  Step::kInstall, Step::kSwitch, Step::kReboot,
                        Step::kTrial, Step::kCommit,  Step::kRevert};
  const Event events[] = {Event::kStaged,  Event::kDone,      Event::kFailed,  Event::kRebooted,
                          Event::kHealthy, Event::kUnhealthy, Event::kFellBack};
  std::set<std::pair<Step, Event>> listed;
  for (const auto& t : kTransitions) {
    EXPECT_TRUE(listed.emplace(t.from, t.on).second) << "a (step, event) listed twice";
  }
  for (const Step step : steps) {
    for (const Event event : events) {
      const auto next = NextStep(step, event);
      EXPECT_EQ(next.has_value(), listed.contains({step, event}));
      if (next) {
        EXPECT_EQ(next->from, step);
      }
    }
  }
  // Every path ends at idle: each step but idle has a way forward that does not need health.
  for (const Step step : steps) {
    if (step == Step::kIdle || step == Step::kTrial) continue;
    EXPECT_TRUE(NextStep(step, Event::kDone) || NextStep(step, Event::kRebooted)) << StepName(step);
  }
  EXPECT_EQ(NextStep(Step::kTrial, Event::kUnhealthy)->outcome, Outcome::kReverted);
  EXPECT_EQ(NextStep(Step::kCommit, Event::kDone)->outcome, Outcome::kInstalled);
}

TEST_F(Board, AHealthyNewOsIsCommittedAndRaisesTheAntiRollbackCounter) {
  InstallAndReboot(Os("1.1", 2));
  EXPECT_EQ(Booted(), Slot::kB);
  EXPECT_EQ(agent_->record().step, Step::kTrial);
  EXPECT_EQ(Counter(), 1u) << "the counter moves only at commit";
  ASSERT_TRUE(agent_->Healthy());
  EXPECT_EQ(agent_->record().step, Step::kIdle);
  EXPECT_EQ(agent_->record().outcome, Outcome::kInstalled);
  EXPECT_EQ(agent_->record().installed_version, "1.1");
  EXPECT_EQ(Counter(), 2u);
  EXPECT_EQ(boot_->TriesLeft(Slot::kA), 0) << "the old OS is below the counter: no fallback";
  for (int i = 0; i < 5; ++i) {
    PowerOn();
    ASSERT_TRUE(agent_->Resume());
    ASSERT_TRUE(agent_->Healthy());
    EXPECT_EQ(Booted(), Slot::kB) << "the committed slot keeps its tries, boot after boot";
  }
}

TEST_F(Board, ANewOsThatFailsItsHealthCheckIsRevertedWithTheReason) {
  InstallAndReboot(Os("1.1", 2));
  ASSERT_TRUE(agent_->Unhealthy("attestation refused: OS release unknown"));
  EXPECT_EQ(agent_->record().step, Step::kRevert);
  EXPECT_TRUE(reboot_asked_);
  PowerOn();
  ASSERT_TRUE(agent_->Resume());
  EXPECT_EQ(Booted(), Slot::kA);
  EXPECT_EQ(agent_->record().step, Step::kIdle);
  EXPECT_EQ(agent_->record().outcome, Outcome::kReverted);
  EXPECT_EQ(agent_->record().reason, "attestation refused: OS release unknown");
  EXPECT_EQ(agent_->record().installed_version, "");
  EXPECT_EQ(Counter(), 1u);
  // Offered again, the reverted version is not tried again.
  ASSERT_TRUE(agent_->Install(Os("1.1", 2)));
  EXPECT_EQ(agent_->record().step, Step::kIdle);
  EXPECT_EQ(writer_.writes, 1);
}

TEST_F(Board, ANewOsThatNeverComesUpFallsBackWhenTheBootCounterRunsOut) {
  ASSERT_TRUE(agent_->Install(Os("1.1", 2)));
  // The new OS crashes before aspisd runs, boot after boot: only the bootloader acts.
  for (int i = 0; i < kBootTries; ++i) {
    ASSERT_TRUE(boot_->Boot("crash-" + std::to_string(i)));
    EXPECT_EQ(Booted(), Slot::kB);
  }
  PowerOn();
  EXPECT_EQ(Booted(), Slot::kA);
  ASSERT_TRUE(agent_->Resume());
  EXPECT_EQ(agent_->record().step, Step::kIdle);
  EXPECT_EQ(agent_->record().outcome, Outcome::kReverted);
  EXPECT_NE(agent_->record().reason.find("went back to slot A"), std::string::npos)
      << agent_->record().reason;
  EXPECT_EQ(Counter(), 1u);
}

TEST_F(Board, ATrialThatIsNotHealthyInTimeIsReverted) {
  InstallAndReboot(Os("1.1", 2));
  ASSERT_TRUE(agent_->Tick());
  EXPECT_EQ(agent_->record().step, Step::kTrial) << "reverted before its time";
  clock_.Advance(10min);
  ASSERT_TRUE(agent_->Tick());
  EXPECT_EQ(agent_->record().step, Step::kRevert);
  EXPECT_NE(agent_->record().reason.find("not healthy within 600 s"), std::string::npos);
}

TEST_F(Board, AFailedSlotWriteLeavesTheRunningOsAloneAndIsTriedAgain) {
  writer_.fail = true;
  ASSERT_TRUE(agent_->Install(Os("1.1", 2)));
  EXPECT_EQ(agent_->record().step, Step::kIdle);
  EXPECT_EQ(agent_->record().outcome, Outcome::kFailed);
  EXPECT_NE(agent_->record().reason.find("no space left"), std::string::npos);
  EXPECT_FALSE(reboot_asked_);
  EXPECT_EQ(boot_->TriesLeft(Slot::kB), 0) << "a slot a failed install touched must not boot";
  PowerOn();
  EXPECT_EQ(Booted(), Slot::kA) << "the bootloader was never switched";
  writer_.fail = false;
  ASSERT_TRUE(agent_->Install(Os("1.1", 2)));
  EXPECT_EQ(agent_->record().step, Step::kReboot);
}

TEST_F(Board, RollbackAttackAStagedPackageSwappedAfterTheDecisionIsNeverBooted) {
  writer_.substitute = true;
  ASSERT_TRUE(agent_->Install(Os("1.1", 2)));
  EXPECT_EQ(agent_->record().step, Step::kIdle);
  EXPECT_EQ(agent_->record().outcome, Outcome::kFailed);
  EXPECT_NE(agent_->record().reason.find("the staged package changed under the install"),
            std::string::npos)
      << agent_->record().reason;
  EXPECT_EQ(writer_.writes, 0) << "refused before the slot was touched";
  PowerOn();
  EXPECT_EQ(Booted(), Slot::kA);
  // Its twin: the package as decided is installed.
  writer_.substitute = false;
  ASSERT_TRUE(agent_->Install(Os("1.1", 2)));
  EXPECT_EQ(agent_->record().step, Step::kReboot);
}

TEST_F(Board, TheRunningOsIsAdoptedNotInstalledAgain) {
  ASSERT_TRUE(agent_->Adopt(Os("1.0", 1)));
  EXPECT_EQ(agent_->record().installed_version, "1.0");
  ASSERT_TRUE(agent_->Install(Os("1.0", 1)));
  EXPECT_EQ(agent_->record().step, Step::kIdle);
  EXPECT_EQ(writer_.writes, 0);
  // A running OS below the counter is not adopted: it is a rollback.
  ASSERT_TRUE(rot_->AdvanceCounter(kOsSecurityVersionCounter, 3));
  auto refused = agent_->Adopt(Os("1.1", 2));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kRollback);
}

TEST_F(Board, RollbackAttackAForgedInstallRecordAimedAtTheRunningSlotWritesNothing) {
  // A local attacker writes an install record naming the slot that runs.
  OsRecord forged;
  forged.step = Step::kInstall;
  forged.target = Os("1.0-old", 1);
  forged.slot = Booted();
  ASSERT_TRUE(store_.Put("os", ToJson(forged)));
  OpenAgent();
  ASSERT_TRUE(agent_->Resume());
  EXPECT_EQ(agent_->record().step, Step::kIdle);
  EXPECT_EQ(agent_->record().reason, "refusing to write the running slot");
  EXPECT_EQ(writer_.writes, 0);
  // Its twin: an install to the other slot writes it.
  ASSERT_TRUE(agent_->Install(Os("1.1", 2)));
  EXPECT_EQ(writer_.writes, 1);
}

TEST_F(Board, RollbackAttackAnOsBelowTheCounterIsRefused) {
  InstallAndReboot(Os("1.1", 2));
  ASSERT_TRUE(agent_->Healthy());
  ASSERT_EQ(Counter(), 2u);
  auto refused = agent_->Install(Os("1.0-signed-again", 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kRollback);
  EXPECT_NE(refused.error().message().find("below the device's anti-rollback counter 2"),
            std::string::npos);
  EXPECT_EQ(writer_.writes, 1) << "nothing of the old OS was written";
  // Its twin, at the counter, installs.
  ASSERT_TRUE(agent_->Install(Os("1.2", 2)));
  EXPECT_EQ(agent_->record().step, Step::kReboot);
}

TEST_F(Board, RollbackAttackRestoringTheStateRecordsDoesNotLowerTheCounter) {
  auto before = store_.Get("os");
  ASSERT_TRUE(before);
  InstallAndReboot(Os("1.1", 2));
  ASSERT_TRUE(agent_->Healthy());
  // The attacker puts back the record from before the update (or deletes it).
  if (*before) {
    ASSERT_TRUE(store_.Put("os", **before));
  } else {
    ASSERT_TRUE(store_.Erase("os"));
  }
  OpenAgent();
  auto refused = agent_->Install(Os("1.0-signed-again", 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kRollback);
}

// Power is cut at every durable write of an install, one run per write: after each cut the
// board boots a complete OS, and the agent finishes the install or leaves the old OS running.
TEST_F(Board, PowerCutAtEveryDurableWriteOfAnInstallLeavesABootableCheckedOs) {
  const int first_op = fs_.operations();
  // One uninterrupted run, to count its writes.
  InstallAndReboot(Os("1.1", 2));
  ASSERT_TRUE(agent_->Healthy());
  const int writes = fs_.operations() - first_op;
  ASSERT_GT(writes, 10);
  for (int cut = 0; cut < writes; ++cut) {
    SCOPED_TRACE("power cut after " + std::to_string(cut) + " operations");
    testing::FaultyFileSystem fresh;
    // The factory state, again, on fresh storage.
    fs_ = std::move(fresh);
    ASSERT_TRUE(writer_.Write(Slot::kA, "os-1.0", AcceptAnyPackage));
    auto reset = rot::Initialize(
        {.backend = "software", .state_dir = dir_ / ("rot-" + std::to_string(cut))});
    ASSERT_TRUE(reset);
    rot_ = std::move(*reset);
    ASSERT_TRUE(rot_->AdvanceCounter(kOsSecurityVersionCounter, 1));
    PowerOn();
    fs_.FailAfter(cut);
    // Drive the install until the cut.
    [&] {
      if (!agent_->Install(Os("1.1", 2))) return;
      if (!reboot_asked_ || !TryPowerOn() || !agent_->Resume()) return;
      if (!agent_->Healthy()) return;
    }();
    fs_.Crash();
    // Power comes back; aspisd runs, reboots when asked, and reports healthy, until idle.
    for (int round = 0; round < 6 && (round == 0 || agent_->record().step != Step::kIdle);
         ++round) {
      PowerOn();
      const auto holds = writer_.Holds(Booted());
      ASSERT_TRUE(holds) << "booted a torn slot " << SlotName(Booted());
      ASSERT_TRUE(*holds == "os-1.0" || *holds == "os-1.1") << *holds;
      ASSERT_TRUE(agent_->Resume());
      if (!reboot_asked_) {
        ASSERT_TRUE(agent_->Healthy());
      }
    }
    ASSERT_EQ(agent_->record().step, Step::kIdle);
    const auto running = writer_.Holds(Booted());
    if (agent_->record().outcome == Outcome::kInstalled) {
      EXPECT_EQ(*running, "os-1.1");
      EXPECT_EQ(Counter(), 2u);
    } else {
      EXPECT_EQ(*running, "os-1.0");
      EXPECT_EQ(Counter(), 1u);
    }
  }
}

TEST(StateStore, ARecordIsReadBackAndADamagedOneIsAnErrorNotAnEmptyState) {
  testing::FaultyFileSystem fs;
  state::StateStore store(fs, kState);
  EXPECT_FALSE(*store.Get("os"));
  ASSERT_TRUE(store.Put("os", json::Json{{"step", "idle"}}));
  EXPECT_EQ((**store.Get("os"))["step"], "idle");
  ASSERT_TRUE(file::WriteDurably(fs, kState / "os.json", AsBytes(std::string_view("{\"st")), 0600));
  auto damaged = store.Get("os");
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error(), CoreErrc::kCorrupt);
  EXPECT_FALSE(store.Put("../escape", json::Json::object()));
  ASSERT_TRUE(store.Erase("os"));
  fs.Crash();
  EXPECT_FALSE(*store.Get("os")) << "an erased record came back after a power cut";
}

TEST_F(Board, ADamagedAgentRecordStopsTheAgentInsteadOfStartingOver) {
  ASSERT_TRUE(store_.Put("os", json::Json{{"step", "commit"}}));
  auto opened = OsAgent::Open({.env = {fs_, clock_, [] { return 0.5; }},
                               .store = store_,
                               .boot = *boot_,
                               .writer = writer_,
                               .rot = *rot_,
                               .reboot = [] {}},
                              "boot-x");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error(), CoreErrc::kCorrupt);
}

}  // namespace
}  // namespace aspis::device::update
