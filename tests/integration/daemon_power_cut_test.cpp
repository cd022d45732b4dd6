// The whole of aspisd under power cuts: the daemon runs in this process against a scripted
// service, on the simulator's A/B slots, with every durable file going through a file system
// that can cut the power at any operation and then lose what was not yet synced. A board that
// updates its OS from 1.0 to 1.1 loses power at each operation of the update in turn; after each
// cut it boots again and again until the update settles. It must boot every time (a verified OS,
// never neither), and finish the update or revert it.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "crypto/sha256.hpp"
#include "device/daemon/daemon.hpp"
#include "device/update/os_agent.hpp"
#include "device/update/slot_writer.hpp"
#include "package/archive.hpp"
#include "package/measure.hpp"
#include "package/package.hpp"
#include "support/power_cut_file_system.hpp"
#include "support/scripted_service.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device {
namespace {

namespace fs = std::filesystem;

constexpr char kBoard[] = "mt3620-sim";
constexpr int kShards = 6;
constexpr int kMostBoots = 8;  // after a cut, the update settles within this many boots

void WriteText(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// What every run starts from: OS packages 1.0 and 1.1 of one component, signed by the OS
// publisher the trust bundle inside both names, and a board with 1.0 flashed in slot A.
class Fleet {
 public:
  Fleet() {
    os_keys_.Add(os_key_.Public());
    WriteText(dir_ / "board.json", std::string(R"({"Description":{"Name":")") + kBoard + "\"}}");
    WriteText(dir_ / "aspisd", "aspisd");
    os_1_0_ = Pack("1.0", 1);
    os_1_1_ = Pack("1.1", 2);
    image_1_1_ = last_image_;
    fs::create_directories(dir_ / "pristine/slots");
    update::DirectorySlotWriter writer([this](update::Slot slot) { return SlotDir(slot); },
                                       {.os = &os_keys_}, kBoard);
    auto flashed = writer.Write(update::Slot::kA, os_1_0_, update::AcceptAnyPackage);
    EXPECT_TRUE(flashed) << flashed.error().message();
  }

  const testing::Issuer& root() const { return root_; }
  const fs::path& dir() const { return dir_.path(); }
  const fs::path& os_1_1() const { return os_1_1_; }
  const std::string& image_1_1() const { return image_1_1_; }
  const std::string& component() const { return component_; }

 private:
  fs::path SlotDir(update::Slot slot) const {
    return dir_ / "pristine/slots" / (slot == update::Slot::kA ? "a" : "b");
  }

  fs::path Pack(const std::string& version, std::uint64_t security_version) {
    const fs::path rootfs = dir_ / ("rootfs-" + version);
    WriteText(rootfs / "usr/sbin/aspisd", "aspisd for " + version);
    WriteText(rootfs / "etc/os-release", "VERSION_ID=" + version + "\n");
    WriteText(rootfs / std::string(package::kTrustBundleInRootfs),
              *root_.cert.ToPem() + *os_key_.Public().ToPem());
    const fs::path payload = dir_ / ("payload-" + version);
    auto packed = package::PackDirectory(rootfs, payload, {.symlinks = true});
    EXPECT_TRUE(packed) << packed.error().message();
    package::Manifest m;
    m.image_id = *crypto::RandomUuid();
    m.component_id = component_;
    m.name = "Aspis OS";
    m.kind = package::Kind::kOs;
    m.version = version;
    m.security_version = security_version;
    m.payload.compression = package::Compression::kZstd;
    m.payload.unpacked_size = packed->unpacked_size;
    m.target_boards = {kBoard};
    m.measurements = *package::MeasureOsTree(rootfs);
    const fs::path path = dir_ / ("os-" + version + ".aspkg");
    auto written = package::Write(m, payload, std::span(&os_key_, 1), path);
    EXPECT_TRUE(written) << written.error().message();
    last_image_ = m.image_id;
    return path;
  }

  testing::Issuer root_ =
      testing::MakeRoot(std::chrono::system_clock::now(), std::chrono::hours(24 * 365));
  testing::TempDir dir_;
  crypto::PrivateKey os_key_ = *crypto::PrivateKey::GenerateP256();
  crypto::dsse::TrustedKeys os_keys_;
  std::string component_ = *crypto::RandomUuid();
  fs::path os_1_0_;
  fs::path os_1_1_;
  std::string image_1_1_;
  std::string last_image_;
};

// One board of the fleet, in its own directory, with its scripted service offering OS 1.1.
class Board {
 public:
  explicit Board(const Fleet& fleet) : fleet_(fleet) {
    fs::copy(fleet.dir() / "pristine", dir_.path(), fs::copy_options::recursive);
    config_.state_dir = dir_ / "state";
    config_.service_url = "https://127.0.0.1:9";
    config_.rot = "software";
    config_.boot_id_file = dir_ / "boot_id";
    config_.bootloader = "simulator";
    config_.slots = dir_ / "slots";
    config_.board = fleet.dir() / "board.json";
    config_.aspisd_binary = fleet.dir() / "aspisd";
    config_.admin_socket = dir_ / "admin.sock";
    config_.retry_base = std::chrono::milliseconds(10);
    config_.retry_cap = std::chrono::milliseconds(100);
    WriteText(config_.boot_id_file, "factory");
  }

  // Powers on: a new boot, and aspisd runs until it asks for a reboot, fails to start, the
  // power goes, or the OS update settled (the service heard it installed or reverted).
  Expected<DaemonExit> PowerOn() {
    WriteText(config_.boot_id_file, "boot-" + std::to_string(++boots_));
    if (!service_) {
      auto rot = rot::Initialize({.backend = "software",
                                  .state_dir = config_.state_dir,
                                  .boot_id_file = config_.boot_id_file});
      EXPECT_TRUE(rot) << rot.error().message();
      service_.emplace(SystemClock::Instance(), (*rot)->GetIdentity()->device_id,
                       std::chrono::system_clock::now(), fleet_.root());
      Offer();
    }
    stop_ = std::stop_source();
    const std::stop_token stop = stop_.get_token();
    std::atomic<bool> exited = false;
    std::optional<Expected<DaemonExit>> result;
    std::jthread daemon([&] {
      result = RunDaemon(config_, env_, stop, &*service_);
      exited = true;
      service_->Nudge();
    });
    service_->Await([&] { return exited || files_.cut() || !Settled().empty(); });
    stop_.request_stop();
    daemon.join();
    return *result;
  }

  // The power goes at the n-th operation from now: aspisd is stopped there, and the network is
  // gone with it, so nothing it does after the cut reaches the service.
  void CutAfter(int n) {
    files_.CutAfter(n, [this] {
      stop_.request_stop();
      if (service_) {
        service_->Script(testing::ScriptedService::Answer::kUnreachable,
                         testing::ScriptedService::Answer::kUnreachable);
      }
    });
  }

  // What survives the cut stays; the board and the network come back.
  void Crash() {
    files_.Crash();
    if (service_) {
      service_->Script(testing::ScriptedService::Answer::kYes,
                       testing::ScriptedService::Answer::kYes);
    }
  }

  // The OS target's state as the board last reported it, once installed or reverted.
  std::string Settled() {
    if (!service_) return "";
    for (const auto& t : service_->reported()) {
      if (t.image_id == fleet_.image_1_1() &&
          (t.state == wire::kInstalled || t.state == wire::kReverted || t.state == wire::kFailed)) {
        return t.state;
      }
    }
    return "";
  }

  std::uint64_t OsCounter() {
    auto rot = rot::Open(config_.state_dir, config_.boot_id_file);
    return rot ? (*rot)->ReadCounter(update::kOsSecurityVersionCounter).value_or(0) : 0;
  }

  testing::PowerCutFileSystem& files() { return files_; }

 private:
  void Offer() {
    auto bytes = file::Read(fleet_.os_1_1(), std::size_t{64} << 20);
    ASSERT_TRUE(bytes) << bytes.error().message();
    const std::string text(AsString(*bytes));
    service_->Offer({.image_id = fleet_.image_1_1(),
                     .component_id = fleet_.component(),
                     .kind = "os",
                     .version = "1.1",
                     .security_version = 2,
                     .sha256 = crypto::ToHex(*crypto::Sha256Of(AsBytes(text))),
                     .size = text.size(),
                     .url = "/v1/device/images/" + fleet_.image_1_1()},
                    text);
  }

  const Fleet& fleet_;
  testing::TempDir dir_;
  testing::PowerCutFileSystem files_;
  Env env_{files_, SystemClock::Instance(), [] { return 0.5; }};
  DaemonConfig config_;
  std::optional<testing::ScriptedService> service_;
  std::stop_source stop_;
  int boots_ = 0;
};

class DaemonPowerCut : public ::testing::TestWithParam<int> {
 protected:
  static void SetUpTestSuite() { fleet_ = new Fleet; }
  static void TearDownTestSuite() {
    delete fleet_;
    fleet_ = nullptr;
  }

  // The operations the whole update takes without a cut.
  static int Operations() {
    Board board(*fleet_);
    for (int boot = 0; boot < kMostBoots && board.Settled().empty(); ++boot) {
      auto exit = board.PowerOn();
      EXPECT_TRUE(exit) << exit.error().message();
      if (!exit) return 0;
    }
    return board.files().operations();
  }

  static Fleet* fleet_;
};

Fleet* DaemonPowerCut::fleet_ = nullptr;

TEST_F(DaemonPowerCut, WithoutACutTheUpdateIsInstalledInTwoBoots) {
  Board board(*fleet_);
  auto first = board.PowerOn();
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(*first, DaemonExit::kReboot) << "OS 1.1 was not installed";
  auto second = board.PowerOn();
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(board.Settled(), wire::kInstalled);
  EXPECT_EQ(board.OsCounter(), 2U);
  EXPECT_GT(board.files().operations(), 20);
}

TEST_P(DaemonPowerCut, APowerCutAtAnyDurableWriteLeavesABoardThatBootsAndSettlesTheUpdate) {
  const int total = Operations();
  ASSERT_GT(total, 0);
  for (int n = GetParam(); n < total; n += kShards) {
    SCOPED_TRACE("the power cut at operation " + std::to_string(n) + " of " +
                 std::to_string(total));
    Board board(*fleet_);
    board.CutAfter(n);
    for (int boot = 0; boot < kMostBoots && board.Settled().empty(); ++boot) {
      auto exit = board.PowerOn();
      if (board.files().cut()) break;
      ASSERT_TRUE(exit) << exit.error().message();
    }
    board.Crash();
    for (int boot = 0; board.Settled().empty(); ++boot) {
      ASSERT_LT(boot, kMostBoots) << "the update did not settle";
      auto exit = board.PowerOn();
      ASSERT_TRUE(exit) << "the board does not start (bricked): " << exit.error().message();
    }
    const std::string settled = board.Settled();
    if (settled == wire::kInstalled) {
      EXPECT_EQ(board.OsCounter(), 2U);
    } else {
      EXPECT_EQ(settled, wire::kReverted) << "neither installed nor reverted";
      EXPECT_LT(board.OsCounter(), 2U) << "reverted, but the counter moved";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shards, DaemonPowerCut, ::testing::Range(0, kShards));

}  // namespace
}  // namespace aspis::device
