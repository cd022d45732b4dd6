// Rollback through the state files, on the TPM: the device's owner copies aspisd's whole state
// directory before an update and puts the copy back after it, hoping the device forgets the
// security version it committed. The anti-rollback counter lives in the TPM's NV memory, which no
// file copy lowers, so the older OS is still refused.
#include <gtest/gtest.h>

#include <map>

#include "core/file.hpp"
#include "device/state/state_store.hpp"
#include "device/update/boot/simulated_bootloader.hpp"
#include "device/update/errors.hpp"
#include "device/update/os_agent.hpp"
#include "support/swtpm.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::update {
namespace {

namespace fs = std::filesystem;

// Writes nothing; answers with the manifest of the package named by its path.
class NamedPackages final : public SlotWriter {
 public:
  Expected<package::Manifest> Write(Slot, const fs::path& package,
                                    const AcceptPackage& accept) override {
    package::Manifest m;
    m.image_id = "image-" + package.string();
    m.security_version = security_versions.at(package.string());
    if (auto ok = accept(m); !ok) return std::unexpected(ok.error());
    return m;
  }
  std::map<std::string, std::uint64_t> security_versions;
};

class TpmRollback : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rot = rot::Initialize({.backend = "tpm2", .state_dir = State(), .tcti = tpm_.Tcti()});
    ASSERT_TRUE(rot) << rot.error().message();
    rot_ = std::move(*rot);
    ASSERT_TRUE(file::EnsureDirectory(State() / "update", 0700));
    ASSERT_TRUE(file::EnsureDirectory(dir_ / "slots", 0700));
    PowerOn();
  }

  fs::path State() const { return dir_ / "state"; }

  void PowerOn() {
    agent_.reset();
    store_.emplace(file::RealFileSystem(), State() / "update");
    auto boot = SimulatedBootloader::Open(file::RealFileSystem(), dir_ / "slots");
    ASSERT_TRUE(boot);
    boot_.emplace(std::move(*boot));
    const std::string boot_id = "boot-" + std::to_string(++boots_);
    ASSERT_TRUE(boot_->Boot(boot_id));
    auto agent =
        OsAgent::Open({.env = {file::RealFileSystem(), SystemClock::Instance(), [] { return 0.5; }},
                       .store = *store_,
                       .boot = *boot_,
                       .writer = writer_,
                       .rot = *rot_,
                       .reboot = [this] { reboot_asked_ = true; }},
                      boot_id);
    ASSERT_TRUE(agent) << agent.error().message();
    agent_.emplace(std::move(*agent));
    ASSERT_TRUE(agent_->Resume());
  }

  OsTarget Os(const std::string& version, std::uint64_t security_version) {
    writer_.security_versions[version] = security_version;
    return {"image-" + version, version, security_version, version};
  }

  testing::TempDir dir_;
  testing::Swtpm tpm_;
  std::unique_ptr<rot::RootOfTrust> rot_;
  std::optional<state::StateStore> store_;
  std::optional<SimulatedBootloader> boot_;
  std::optional<OsAgent> agent_;
  NamedPackages writer_;
  bool reboot_asked_ = false;
  int boots_ = 0;
};

TEST_F(TpmRollback, RollbackAttackRestoringTheWholeStateDirectoryIsRefusedByTheTpmCounter) {
  fs::copy(State(), dir_ / "copy", fs::copy_options::recursive);
  ASSERT_TRUE(agent_->Install(Os("1.1", 2)));
  ASSERT_TRUE(reboot_asked_);
  PowerOn();
  ASSERT_TRUE(agent_->Healthy());
  ASSERT_EQ(agent_->record().installed_version, "1.1");
  ASSERT_EQ(*rot_->ReadCounter(kOsSecurityVersionCounter), 2u);

  // The owner puts back every state file from before the update.
  agent_.reset();
  rot_.reset();
  fs::remove_all(State());
  fs::copy(dir_ / "copy", State(), fs::copy_options::recursive);
  auto reopened = rot::Open(State());
  ASSERT_TRUE(reopened) << reopened.error().message();
  rot_ = std::move(*reopened);
  PowerOn();
  EXPECT_EQ(agent_->record().installed_version, "") << "the files are the old ones";
  auto refused = agent_->Install(Os("1.0-signed-again", 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kRollback);
  EXPECT_NE(refused.error().message().find("anti-rollback counter 2"), std::string::npos)
      << refused.error().message();
  // Its twin, at the counter, is installed.
  reboot_asked_ = false;
  ASSERT_TRUE(agent_->Install(Os("1.2", 2)));
  EXPECT_TRUE(reboot_asked_);
}

}  // namespace
}  // namespace aspis::device::update
