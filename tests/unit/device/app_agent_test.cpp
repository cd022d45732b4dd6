// The app half of the update agent: versions side by side, an atomic switch, the previous version
// kept until the new one is healthy, reverts, removals, and the attacks it refuses.
#include "device/update/app_agent.hpp"

#include <elf.h>
#include <gtest/gtest.h>

#include <fstream>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "device/update/app_health.hpp"
#include "device/update/errors.hpp"
#include "package/archive.hpp"
#include "rot/root_of_trust.hpp"
#include "support/app_package.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::update {
namespace {

namespace fs = std::filesystem;

const std::string kComponent = "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b";

class Apps : public ::testing::Test {
 protected:
  void SetUp() override {
    publishers_.Add(publisher_.Public());
    ASSERT_TRUE(file::EnsureDirectory(dir_ / "state", 0700));
    std::ofstream(dir_ / "boot_id") << "boot-1\n";
    rot_ = std::move(*rot::Initialize(
        {.backend = "software", .state_dir = dir_ / "rot", .boot_id_file = dir_ / "boot_id"}));
    Open();
  }

  // Without `counted`, the agent keeps no generation in the root of trust.
  Expected<AppAgent> TryOpen(std::function<Expected<void>(const fs::path&)> health = {},
                             bool counted = true) {
    agent_.reset();
    return AppAgent::Open(
        {.store = store_,
         .rot = counted ? rot_.get() : nullptr,
         .apps_dir = dir_ / "apps",
         .publishers = [this] { return package::Publishers{.apps = &publishers_}; },
         .health = std::move(health),
         .stop = [this](const std::string&) { lifecycle_.push_back("stop " + Running()); },
         .settled = [this](const std::string&) { lifecycle_.push_back("start " + Running()); }});
  }

  void Open(std::function<Expected<void>(const fs::path&)> health = {}) {
    auto agent = TryOpen(std::move(health));
    ASSERT_TRUE(agent) << agent.error().message();
    agent_.emplace(std::move(*agent));
  }

  fs::path RecordsFile() const { return dir_ / "state" / "apps.json"; }

  // Writes the records as a newer generation than any before (as the agent would).
  void PutRecords(json::Json components) {
    const std::uint64_t generation = *rot_->ReadCounter(kAppRecordsCounter) + 1;
    ASSERT_TRUE(store_.Put(
        "apps", json::Json{{"components", std::move(components)}, {"generation", generation}}));
  }

  // An app package of `version` whose program prints `version`, signed by `key`.
  // `declared` replaces the signed unpacked size when given.
  // `program` replaces the program when given.
  AppTarget Pack(const std::string& version, std::uint64_t security_version,
                 const crypto::PrivateKey* key = nullptr, std::uint64_t declared = 0,
                 const std::string& program = "") {
    const fs::path tree = dir_ / ("tree-" + version);
    fs::create_directories(tree / "bin");
    std::ofstream(tree / "bin/app")
        << (program.empty() ? "#!/bin/sh\necho " + version + "\n" : program);
    fs::permissions(tree / "bin/app", fs::perms::owner_all);
    std::ofstream(tree / "app_manifest.json")
        << R"({"SchemaVersion": 1, "Name": "blink", "ComponentId": ")" << kComponent
        << R"(", "EntryPoint": "/bin/app", "Capabilities": {}})";
    const fs::path path = dir_ / ("blink-" + version + ".aspkg");
    auto m = testing::PackApp(tree, path, key != nullptr ? *key : publisher_, version,
                              security_version, [&](package::Manifest& signed_manifest) {
                                if (declared != 0) signed_manifest.payload.unpacked_size = declared;
                              });
    EXPECT_TRUE(m) << m.error().message();
    return {kComponent, m ? m->image_id : "", version, security_version, path};
  }

  // The version the app's `current` runs.
  std::string Running() {
    auto text = file::Read(dir_ / "apps" / kComponent / "current" / "bin/app");
    if (!text) return "";
    const std::string s(AsString(*text));
    return s.substr(s.rfind(' ') + 1, s.size() - s.rfind(' ') - 2);
  }
  const AppRecord& Record() { return agent_->records().at(kComponent); }
  fs::path VersionDir(const AppTarget& t) { return dir_ / "apps" / kComponent / t.image_id; }

  testing::TempDir dir_;
  crypto::PrivateKey publisher_ = *crypto::PrivateKey::GenerateP256();
  crypto::dsse::TrustedKeys publishers_;
  state::StateStore store_{file::RealFileSystem(), dir_ / "state"};
  std::unique_ptr<rot::RootOfTrust> rot_;
  std::optional<AppAgent> agent_;
  std::vector<std::string> lifecycle_;  // what the app manager was asked, in order
};

TEST(AppAgentTable, EachStepAnswersOnlyItsListedEvents) {
  std::set<std::pair<AppStep, AppEvent>> listed;
  for (const auto& t : kAppTransitions) EXPECT_TRUE(listed.emplace(t.from, t.on).second);
  for (const AppStep step : {AppStep::kIdle, AppStep::kInstall, AppStep::kSwitch, AppStep::kTrial,
                             AppStep::kCommit, AppStep::kRevert, AppStep::kRemove}) {
    for (const AppEvent event : {AppEvent::kStaged, AppEvent::kDone, AppEvent::kFailed,
                                 AppEvent::kHealthy, AppEvent::kUnhealthy, AppEvent::kRetired}) {
      EXPECT_EQ(NextAppStep(step, event).has_value(), listed.contains({step, event}));
    }
  }
}

TEST_F(Apps, ANewVersionRunsBesideThePreviousUntilHealthyThenThePreviousIsRemoved) {
  const AppTarget v1 = Pack("1.0", 1);
  ASSERT_TRUE(agent_->Install(v1));
  EXPECT_EQ(Record().step, AppStep::kTrial);
  EXPECT_EQ(Running(), "1.0");
  ASSERT_TRUE(agent_->Healthy(kComponent));
  EXPECT_EQ(Record().outcome, Outcome::kInstalled);
  const AppTarget v2 = Pack("2.0", 2);
  ASSERT_TRUE(agent_->Install(v2));
  EXPECT_EQ(Running(), "2.0");
  EXPECT_TRUE(fs::exists(VersionDir(v1))) << "the previous version is kept during the trial";
  ASSERT_TRUE(agent_->Healthy(kComponent));
  EXPECT_FALSE(fs::exists(VersionDir(v1)));
  EXPECT_EQ(Record().installed_version, "2.0");
  Open();
  EXPECT_EQ(Record().installed_image_id, v2.image_id) << "the record survives a restart";
}

TEST_F(Apps, AnUnhealthyVersionIsSwitchedBackAndNotTriedAgain) {
  const AppTarget v1 = Pack("1.0", 1);
  ASSERT_TRUE(agent_->Install(v1));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  const AppTarget v2 = Pack("2.0", 2);
  ASSERT_TRUE(agent_->Install(v2));
  ASSERT_TRUE(agent_->Unhealthy(kComponent, "exited at start with code 1"));
  EXPECT_EQ(Running(), "1.0");
  EXPECT_FALSE(fs::exists(VersionDir(v2)));
  EXPECT_EQ(Record().outcome, Outcome::kReverted);
  EXPECT_EQ(Record().reason, "exited at start with code 1");
  ASSERT_TRUE(agent_->Install(v2));
  EXPECT_EQ(Record().step, AppStep::kIdle) << "a reverted version is not tried again";
}

TEST_F(Apps, RollbackAttackAnOlderAppSecurityVersionIsRefused) {
  ASSERT_TRUE(agent_->Install(Pack("2.0", 2)));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  auto refused = agent_->Install(Pack("1.0", 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kRollback);
  EXPECT_EQ(Running(), "2.0");
  ASSERT_TRUE(agent_->Install(Pack("2.1", 2))) << "its twin, at the same security version";
}

TEST_F(Apps, RollbackAttackAppRecordsRestoredFromAnOldCopyAreRefused) {
  ASSERT_TRUE(agent_->Install(Pack("1.0", 1)));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  ASSERT_TRUE(fs::exists(RecordsFile()));
  fs::copy_file(RecordsFile(), dir_ / "old-copy.json");
  ASSERT_TRUE(agent_->Install(Pack("2.0", 2)));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  // The owner puts the old records back, so that security version 1 would be accepted again.
  fs::copy_file(dir_ / "old-copy.json", RecordsFile(), fs::copy_options::overwrite_existing);
  auto refused = TryOpen();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kRollback) << refused.error().message();
}

TEST_F(Apps, RollbackAttackAppRecordsDeletedAreRefused) {
  ASSERT_TRUE(agent_->Install(Pack("2.0", 2)));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  fs::remove(RecordsFile());
  auto refused = TryOpen();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kRollback) << refused.error().message();
}

TEST_F(Apps, RecordsWrittenJustBeforeAPowerCutOpenAndTheCounterCatchesUp) {
  // Written without raising the counter, as when the power goes between the two.
  auto uncounted = TryOpen({}, /*counted=*/false);
  ASSERT_TRUE(uncounted);
  ASSERT_TRUE(uncounted->Install(Pack("2.0", 2)));
  ASSERT_TRUE(uncounted->Healthy(kComponent));
  ASSERT_EQ(*rot_->ReadCounter(kAppRecordsCounter), 0U);
  Open();
  EXPECT_EQ(Record().installed_version, "2.0");
  EXPECT_GT(*rot_->ReadCounter(kAppRecordsCounter), 0U);
  Open();
  EXPECT_EQ(Record().installed_version, "2.0") << "the latest records open again";
}

TEST_F(Apps, AStateResetWithNoAppInstalledStartsAgainFromTheCounter) {
  ASSERT_TRUE(agent_->Install(Pack("1.0", 1)));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  fs::remove(RecordsFile());
  EXPECT_FALSE(TryOpen()) << "the records are gone but the app is still installed";
  fs::remove_all(dir_ / "apps");
  Open();
  ASSERT_TRUE(agent_->Install(Pack("1.0", 1)));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  Open();
  EXPECT_EQ(Record().installed_version, "1.0") << "the new records outrank the counter";
}

TEST_F(Apps, AnAgentWithoutARootOfTrustOpensRecordsThatCarryAGeneration) {
  auto uncounted = TryOpen({}, /*counted=*/false);
  ASSERT_TRUE(uncounted);
  ASSERT_TRUE(uncounted->Install(Pack("1.0", 1)));
  EXPECT_TRUE(TryOpen({}, /*counted=*/false));
}

TEST_F(Apps, AnAppNoLongerDeployedIsRemoved) {
  ASSERT_TRUE(agent_->Install(Pack("1.0", 1)));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  ASSERT_TRUE(agent_->Retire({kComponent}));
  EXPECT_TRUE(fs::exists(dir_ / "apps" / kComponent));
  ASSERT_TRUE(agent_->Retire({}));
  EXPECT_FALSE(fs::exists(dir_ / "apps" / kComponent));
  EXPECT_TRUE(agent_->records().empty());
  Open();
  EXPECT_TRUE(agent_->records().empty());
}

TEST_F(Apps, APackageFromAnUntrustedPublisherOrTamperedWithIsNotInstalled) {
  ASSERT_TRUE(agent_->Install(Pack("1.0", 1)));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  const auto stranger = *crypto::PrivateKey::GenerateP256();
  ASSERT_TRUE(agent_->Install(Pack("2.0", 2, &stranger)));
  EXPECT_EQ(Record().outcome, Outcome::kFailed);
  EXPECT_EQ(Running(), "1.0");
  AppTarget tampered = Pack("3.0", 3);
  auto bytes = *file::Read(tampered.package, 64 << 20);
  bytes[bytes.size() - 5] ^= 0x01;
  ASSERT_TRUE(file::WriteDurably(tampered.package, bytes, 0644));
  ASSERT_TRUE(agent_->Install(tampered));
  EXPECT_EQ(Record().outcome, Outcome::kFailed);
  EXPECT_EQ(Running(), "1.0");
  EXPECT_FALSE(fs::exists(VersionDir(tampered)));
}

TEST_F(Apps, PathTraversalAttackAComponentIdThatIsNotAUuidIsRefused) {
  AppTarget target = Pack("1.0", 1);
  target.component_id = "../../etc";
  auto refused = agent_->Install(target);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kInstall);
  EXPECT_FALSE(fs::exists(dir_ / "etc"));
}

TEST_F(Apps, PathTraversalAttackALinkInPlaceOfAnAppDirectoryIsNotFollowed) {
  const AppTarget v1 = Pack("1.0", 1);
  ASSERT_TRUE(agent_->Install(v1));
  ASSERT_TRUE(agent_->Healthy(kComponent));
  // A local attacker swaps the app's directory for a link to a directory of theirs' choosing,
  // and writes a revert record.
  fs::create_directories(dir_ / "victim");
  std::ofstream(dir_ / "victim/keep") << "precious";
  fs::remove_all(dir_ / "apps" / kComponent);
  fs::create_directory_symlink(dir_ / "victim", dir_ / "apps" / kComponent);
  AppRecord forged = Record();
  forged.step = AppStep::kRevert;
  forged.previous_image_id = "a";
  PutRecords({{kComponent, ToJson(forged)}});
  Open();
  auto refused = agent_->Resume();
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("is a symbolic link"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir_ / "victim/keep"));
}

TEST_F(Apps, DecompressionBombAttackAnAppLargerThanItsSignedSizeIsRefused) {
  fs::create_directories(dir_ / "tree-bomb/bin");
  std::ofstream(dir_ / "tree-bomb/bin/zeros") << std::string(1 << 20, '\0');
  AppTarget bomb = Pack("bomb", 1, nullptr, 4096);
  ASSERT_TRUE(agent_->Install(bomb));
  EXPECT_EQ(Record().outcome, Outcome::kFailed);
  EXPECT_NE(Record().reason.find("declared"), std::string::npos) << Record().reason;
  EXPECT_FALSE(fs::exists(VersionDir(bomb)));
  ASSERT_TRUE(agent_->Install(Pack("1.0", 1))) << "its twin, declaring its size";
  EXPECT_EQ(Record().outcome, Outcome::kNone);
}

TEST_F(Apps, AnInstallInterruptedAtAnyStepIsFinishedAfterARestart) {
  const AppTarget v1 = Pack("1.0", 1);
  const AppTarget v2 = Pack("2.0", 2);
  // (Switch, between them, is in the kill tests: it needs the version the install unpacked.)
  for (const AppStep step : {AppStep::kInstall, AppStep::kCommit}) {
    SCOPED_TRACE(std::string(AppStepName(step)));
    fs::remove_all(dir_ / "apps");
    PutRecords(json::Json::object());
    Open();
    ASSERT_TRUE(agent_->Install(v1));
    ASSERT_TRUE(agent_->Healthy(kComponent));
    // The record as a process killed right after persisting `step` left it.
    AppRecord record = Record();
    record.step = step;
    record.target = v2;
    record.previous_image_id = v1.image_id;
    if (step == AppStep::kCommit) {
      ASSERT_TRUE(agent_->Install(v2));  // unpacked and switched, as before the kill
      record = Record();
      record.step = step;
    }
    PutRecords({{kComponent, ToJson(record)}});
    Open();
    ASSERT_TRUE(agent_->Resume());
    ASSERT_TRUE(agent_->Healthy(kComponent));
    EXPECT_EQ(Record().step, AppStep::kIdle);
    EXPECT_EQ(Record().installed_version, "2.0");
    EXPECT_EQ(Running(), "2.0");
    EXPECT_FALSE(fs::exists(VersionDir(v1)));
  }
}

// An ELF header (64-bit, little-endian, an executable) for `machine`.
std::string ElfFor(std::uint16_t machine) {
  std::string head(64, '\0');
  head.replace(0, 4, ELFMAG);
  head[EI_CLASS] = ELFCLASS64;
  head[EI_DATA] = ELFDATA2LSB;
  head[EI_VERSION] = EV_CURRENT;
  head[EI_NIDENT] = ET_DYN;
  head[EI_NIDENT + 2] = static_cast<char>(machine & 0xff);
  head[EI_NIDENT + 3] = static_cast<char>(machine >> 8);
  return head;
}

TEST_F(Apps, WrongSoftwareAttackAnAppBuiltForAnotherMachineIsRevertedWithTheReason) {
  Open(CheckAppRunsHere);
  const AppTarget v1 = Pack("1.0", 1);
  ASSERT_TRUE(agent_->Install(v1));
  EXPECT_EQ(Record().outcome, Outcome::kInstalled) << "judged healthy at once";
  const AppTarget v2 = Pack("2.0", 2, nullptr, 0, ElfFor(EM_S390));
  ASSERT_TRUE(agent_->Install(v2));
  EXPECT_EQ(Record().outcome, Outcome::kReverted);
  EXPECT_NE(Record().reason.find("ELF machine"), std::string::npos) << Record().reason;
  EXPECT_EQ(Running(), "1.0");
  EXPECT_FALSE(fs::exists(VersionDir(v2)));
  const AppTarget v3 = Pack("3.0", 3, nullptr, 0, std::string(AsString(*file::Read("/bin/true"))));
  ASSERT_TRUE(agent_->Install(v3)) << "its twin: an executable for this machine";
  EXPECT_EQ(Record().outcome, Outcome::kInstalled) << Record().reason;
}

TEST_F(Apps, AVersionLeftOnTrialByARestartIsJudgedWhenTheAgentResumes) {
  const AppTarget v1 = Pack("1.0", 1, nullptr, 0, "not a program\n");
  ASSERT_TRUE(agent_->Install(v1));
  ASSERT_EQ(Record().step, AppStep::kTrial);
  Open(CheckAppRunsHere);
  ASSERT_TRUE(agent_->Resume());
  EXPECT_EQ(Record().outcome, Outcome::kReverted);
  EXPECT_NE(Record().reason.find("neither an ELF executable nor a script"), std::string::npos)
      << Record().reason;
}

class AppHealth : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "app/bin");
    Manifest("/bin/app");
    Program("#!/bin/sh\necho hi\n");
  }
  void Manifest(const std::string& entry_point) {
    std::ofstream(dir_ / "app/app_manifest.json")
        << R"({"Name": "blink", "EntryPoint": ")" << entry_point << R"("})";
  }
  void Program(const std::string& text, fs::perms perms = fs::perms::owner_all) {
    fs::remove(dir_ / "app/bin/app");
    std::ofstream(dir_ / "app/bin/app") << text;
    fs::permissions(dir_ / "app/bin/app", perms);
  }
  std::string Refusal() {
    auto checked = CheckAppRunsHere(dir_ / "app");
    if (checked) return "";
    EXPECT_EQ(checked.error(), UpdateErrc::kUnhealthy);
    return checked.error().message();
  }
  testing::TempDir dir_;
};

TEST_F(AppHealth, AScriptWhoseInterpreterIsOnTheDeviceRuns) { EXPECT_EQ(Refusal(), ""); }

TEST_F(AppHealth, AScriptWhoseInterpreterIsMissingDoesNot) {
  Program("#!/opt/nowhere/python9\n");
  EXPECT_NE(Refusal().find("interpreter"), std::string::npos);
}

TEST_F(AppHealth, AnEntryPointThatIsNotExecutableDoesNot) {
  Program("#!/bin/sh\n", fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_NE(Refusal().find("not executable"), std::string::npos);
}

TEST_F(AppHealth, EscapeAttackAnEntryPointThroughALinkOrOutsideTheAppIsRefused) {
  fs::create_directory_symlink("/bin", dir_ / "app/sys");
  Manifest("/sys/sh");
  EXPECT_NE(Refusal().find("not a file in the app"), std::string::npos);
  Manifest("/../app/bin/app");
  EXPECT_NE(Refusal().find("not a path in the app"), std::string::npos);
  Manifest("/bin/app");
  EXPECT_EQ(Refusal(), "") << "its twin, inside the app";
}

TEST_F(AppHealth, ALongEntryPointIsCutInTheReasonSoTheCheckInStillCarriesIt) {
  Manifest("/" + std::string(1100, 'x'));
  const std::string reason = Refusal();
  EXPECT_NE(reason.find("not a file in the app"), std::string::npos);
  EXPECT_LT(reason.size(), 300u);
}

TEST_F(AppHealth, AnElfForThisMachineRunsAndOneForAnotherDoesNot) {
  Program(std::string(AsString(*file::Read("/bin/true"))));
  EXPECT_EQ(Refusal(), "");
  Program(ElfFor(EM_S390));
  EXPECT_NE(Refusal().find("ELF machine 22"), std::string::npos) << Refusal();
}

}  // namespace
}  // namespace aspis::device::update

namespace aspis::device::update {
namespace {

TEST_F(Apps, TheRunningAppIsStoppedBeforeItsFilesChangeAndStartedOnceTheySettle) {
  Open([](const fs::path& version) -> Expected<void> {
    auto text = file::Read(version / "bin/app");
    if (text && AsString(*text).find("3.0") != std::string::npos) {
      return Fail(UpdateErrc::kUnhealthy, "3.0 does not start");
    }
    return {};
  });
  ASSERT_TRUE(agent_->Install(Pack("1.0", 1)));
  ASSERT_TRUE(agent_->Install(Pack("2.0", 1)));
  ASSERT_TRUE(agent_->Install(Pack("3.0", 1)));  // reverted on trial
  EXPECT_EQ(lifecycle_, (std::vector<std::string>{"stop ", "start 1.0", "stop 1.0", "start 2.0",
                                                  "stop 2.0", "stop 3.0", "start 2.0"}));
  lifecycle_.clear();
  ASSERT_TRUE(agent_->Retire({}));
  EXPECT_EQ(lifecycle_, (std::vector<std::string>{"stop 2.0"}));
}

}  // namespace
}  // namespace aspis::device::update
