#include "device/measure/measured_launch.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "core/file.hpp"
#include "package/measure.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::measure {
namespace {

using package::MeasurePath;
using testing::TempDir;

class MeasuredLaunch : public ::testing::Test {
 protected:
  void SetUp() override {
    Write(dir_ / "boot_id", "boot-1\n");
    std::filesystem::create_directories(dir_ / "os/bin");
    Write(dir_ / "os/bin/init", "init v1");
    Write(dir_ / "aspisd", "aspisd binary");
    Write(dir_ / "board.json", R"({"board":"mt3620-sim"})");
    Write(dir_ / "trust.pem", "root ca");
    Reopen();
  }

  static void Write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }

  void Reopen() {
    rot_.reset();
    auto rot = rot::Initialize(
        {.backend = "software", .state_dir = dir_ / "rot", .boot_id_file = dir_ / "boot_id"});
    ASSERT_TRUE(rot) << rot.error().message();
    rot_ = std::move(*rot);
  }

  std::vector<Component> Components() const {
    return {{"os", dir_ / "os"},
            {"aspisd", dir_ / "aspisd"},
            {"board", dir_ / "board.json"},
            {"trust-bundle", dir_ / "trust.pem"}};
  }

  Expected<std::vector<wire::MeasurementEvent>> Launch() {
    return MeasureLaunch(*rot_, Components(), dir_ / "measurements.json");
  }

  crypto::Digest Register() { return *rot_->ReadRegister(); }

  TempDir dir_;
  std::unique_ptr<rot::RootOfTrust> rot_;
};

TEST_F(MeasuredLaunch, FreshBootMeasuresEachComponentInOrderAndTheLogReplaysToTheRegister) {
  auto events = Launch();
  ASSERT_TRUE(events) << events.error().message();
  ASSERT_EQ(events->size(), 4u);
  EXPECT_EQ((*events)[0].component, "os");
  EXPECT_EQ((*events)[3].component, "trust-bundle");
  EXPECT_EQ((*events)[1].digest, *crypto::Sha256Of(AsBytes("aspisd binary")));
  EXPECT_EQ(*wire::ReplayEventLog(*events), Register());
}

TEST_F(MeasuredLaunch, RestartWithoutRebootDoesNotExtendAgain) {
  auto first = Launch();
  ASSERT_TRUE(first);
  const auto value = Register();
  Write(dir_ / "aspisd", "aspisd replaced on disk after boot");
  Reopen();
  auto second = Launch();
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(Register(), value);
  EXPECT_EQ((*second)[1].digest, (*first)[1].digest) << "what ran at boot is what is reported";
}

TEST_F(MeasuredLaunch, StopPartWayThroughIsCompletedOnTheNextStart) {
  auto planned = Launch();
  ASSERT_TRUE(planned);
  // The same boot, stopped after the first extend: the register holds one event of four.
  Write(dir_ / "boot_id", "boot-2\n");
  Reopen();
  ASSERT_TRUE(rot_->Extend((*planned)[0].digest));
  auto completed = Launch();
  ASSERT_TRUE(completed) << completed.error().message();
  EXPECT_EQ(Register(), *wire::ReplayEventLog(*planned));
}

TEST_F(MeasuredLaunch, RebootMeasuresTheComponentsAfresh) {
  ASSERT_TRUE(Launch());
  Write(dir_ / "os/bin/init", "init v2");
  Write(dir_ / "boot_id", "boot-2\n");
  Reopen();
  auto events = Launch();
  ASSERT_TRUE(events);
  EXPECT_EQ((*events)[0].digest, *MeasurePath(dir_ / "os"));
  EXPECT_EQ(*wire::ReplayEventLog(*events), Register());
}

TEST_F(MeasuredLaunch, RegisterExtendedByAnotherPartyIsRefused) {
  ASSERT_TRUE(Launch());
  ASSERT_TRUE(rot_->Extend(*crypto::Sha256Of(AsBytes("something else"))));
  auto events = Launch();
  ASSERT_FALSE(events);
  EXPECT_EQ(events.error(), CoreErrc::kCorrupt);
  EXPECT_NE(events.error().message().find("does not explain"), std::string::npos);
}

TEST_F(MeasuredLaunch, DamagedLogIsAClearError) {
  ASSERT_TRUE(Launch());
  ASSERT_TRUE(file::WriteDurably(dir_ / "measurements.json", AsBytes("{\"events\":[{"), 0644));
  auto events = Launch();
  ASSERT_FALSE(events);
  EXPECT_NE(events.error().message().find("measurements.json"), std::string::npos);
}

TEST_F(MeasuredLaunch, MissingComponentIsNamed) {
  std::filesystem::remove(dir_ / "board.json");
  auto events = Launch();
  ASSERT_FALSE(events);
  EXPECT_NE(events.error().message().find("board"), std::string::npos);
  EXPECT_EQ(Register(), crypto::Digest{}) << "nothing is extended when a component is missing";
}

TEST(MeasurePath, TreeDigestCoversNamesContentAndModesButNotLocation) {
  TempDir dir;
  for (const char* root : {"a", "b"}) {
    std::filesystem::create_directories(dir / root / "etc");
    std::ofstream(dir / root / "etc/config") << "x=1";
  }
  const auto a = *MeasurePath(dir / "a");
  EXPECT_EQ(a, *MeasurePath(dir / "b"));
  ::chmod((dir / "b/etc/config").c_str(), 0600);
  EXPECT_NE(a, *MeasurePath(dir / "b"));
  ::chmod((dir / "b/etc/config").c_str(),
          static_cast<mode_t>(std::filesystem::status(dir / "a/etc/config").permissions()));
  EXPECT_EQ(a, *MeasurePath(dir / "b"));
  std::ofstream(dir / "b/etc/config") << "x=2";
  EXPECT_NE(a, *MeasurePath(dir / "b"));
  std::filesystem::rename(dir / "b/etc/config", dir / "b/etc/config2");
  EXPECT_NE(a, *MeasurePath(dir / "b"));
}

TEST(MeasurePath, SpecialFilesAreRefused) {
  TempDir dir;
  std::filesystem::create_directories(dir / "os");
  ASSERT_EQ(::mkfifo((dir / "os/fifo").c_str(), 0600), 0);
  auto digest = MeasurePath(dir / "os");
  ASSERT_FALSE(digest);
  EXPECT_NE(digest.error().message().find("special file"), std::string::npos);
}

}  // namespace
}  // namespace aspis::device::measure
