// The whole of aspisd under power cuts: the daemon runs in this process against a scripted
// service, on the simulator's A/B slots, with every durable file going through a file system
// that can cut the power at any operation and then lose what was not yet synced. A board that
// updates its OS from 1.0 to 1.1 and installs an app loses power at each operation of the update
// in turn; after each cut it boots again and again until both settle. It must boot every time (a
// verified OS, never neither), finish the OS update or revert it, and install the app.
#include <sys/socket.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <thread>

#include "core/fd.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/encoding.hpp"
#include "crypto/sha256.hpp"
#include "device/daemon/daemon.hpp"
#include "device/update/os_agent.hpp"
#include "device/update/slot_writer.hpp"
#include "package/archive.hpp"
#include "package/measure.hpp"
#include "package/package.hpp"
#include "package/publisher_keys.hpp"
#include "support/app_package.hpp"
#include "support/board.hpp"
#include "support/power_cut_file_system.hpp"
#include "support/scripted_service.hpp"
#include "support/temp_dir.hpp"
#include "wire/admin.hpp"

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
    WriteText(dir_ / "board.json", testing::BoardJson(kBoard));
    WriteText(dir_ / "aspisd", "aspisd");
    os_1_0_ = Pack("1.0", 1);
    os_1_1_ = Pack("1.1", 2);
    image_1_1_ = last_image_;
    PackApp();
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
  const fs::path& app() const { return app_; }
  const std::string& app_image() const { return app_image_; }
  static constexpr char kAppComponent[] = "1f0c6a4e-4b5d-4f38-9a57-2f0f3e6c1a11";

  // The tenant's publisher key set, signed by its root: what the service relays.
  std::string PublisherKeys() const {
    package::PublisherKeySet set;
    set.tenant = "t1";
    set.expires = UnixSeconds(std::chrono::system_clock::now() + std::chrono::hours(24 * 365));
    set.root.keys = {publisher_root_.Public()};
    set.publishers.keys = {publisher_.Public()};
    return crypto::dsse::Serialize(*package::SignKeySet(set, std::span(&publisher_root_, 1)));
  }

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

  void PackApp() {
    const fs::path tree = dir_ / "app-tree";
    fs::create_directories(tree / "bin");
    fs::copy_file(ASPIS_HOSTILE_APP, tree / "bin/app");
    WriteText(tree / "app_manifest.json",
              std::string(R"({"SchemaVersion": 1, "Name": "blink", "ComponentId": ")") +
                  kAppComponent +
                  R"(", "EntryPoint": "/bin/app", "CmdArgs": ["sleep"], "Capabilities": {}})");
    app_ = dir_ / "app.aspkg";
    auto m = testing::PackApp(tree, app_, publisher_, "1.0");
    EXPECT_TRUE(m) << m.error().message();
    app_image_ = m ? m->image_id : "";
  }

  crypto::PrivateKey publisher_root_ = *crypto::PrivateKey::GenerateP256();
  crypto::PrivateKey publisher_ = *crypto::PrivateKey::GenerateP256();
  fs::path app_;
  std::string app_image_;
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
  // power goes, or `until` (by default: the OS update and the app settled).
  Expected<DaemonExit> PowerOn(std::function<bool()> until = {}) {
    if (!until) until = [this] { return AllSettled(); };
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
    service_->Await([&] { return exited || files_.cut() || until(); });
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

  // Whether the board last reported both targets settled.
  bool AllSettled() {
    return !Settled(fleet_.image_1_1()).empty() && !Settled(fleet_.app_image()).empty();
  }

  // The target's state as the board last reported it, once installed, reverted or failed.
  std::string Settled(const std::string& image) {
    if (!service_) return "";
    for (const auto& t : service_->reported()) {
      if (t.image_id == image &&
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

  // Whether the app's current version is in place, with its program.
  bool AppRuns() const { return fs::is_regular_file(AppDir() / "current" / "bin/app"); }
  fs::path AppDir() const { return config_.state_dir / "apps" / Fleet::kAppComponent; }

  testing::PowerCutFileSystem& files() { return files_; }
  DaemonConfig& config() { return config_; }
  testing::ScriptedService& service() { return *service_; }

 private:
  void Offer() {
    service_->RelayPublisherKeys(fleet_.PublisherKeys());
    Offer(fleet_.os_1_1(), {.image_id = fleet_.image_1_1(),
                            .component_id = fleet_.component(),
                            .kind = "os",
                            .version = "1.1",
                            .security_version = 2});
    Offer(fleet_.app(), {.image_id = fleet_.app_image(),
                         .component_id = Fleet::kAppComponent,
                         .kind = "app",
                         .version = "1.0",
                         .security_version = 1});
  }

  void Offer(const fs::path& package, wire::UpdateTarget target) {
    auto bytes = file::Read(package, std::size_t{64} << 20);
    ASSERT_TRUE(bytes) << bytes.error().message();
    std::string text(AsString(*bytes));
    target.sha256 = crypto::ToHex(*crypto::Sha256Of(AsBytes(text)));
    target.size = text.size();
    target.url = "/v1/device/images/" + target.image_id;
    service_->Offer(std::move(target), std::move(text));
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
    for (int boot = 0; boot < kMostBoots && !board.AllSettled(); ++boot) {
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
  EXPECT_EQ(board.Settled(fleet_->image_1_1()), wire::kInstalled);
  EXPECT_EQ(board.Settled(fleet_->app_image()), wire::kInstalled);
  EXPECT_EQ(board.OsCounter(), 2U);
  EXPECT_TRUE(board.AppRuns());
  EXPECT_GT(board.files().operations(), 20);
  RecordProperty("operations", board.files().operations());
}

TEST_F(DaemonPowerCut, AnAppTheDeploymentNoLongerListsIsRemovedAndOnlyThen) {
  Board board(*fleet_);
  ASSERT_TRUE(board.PowerOn());
  ASSERT_TRUE(board.PowerOn());
  ASSERT_TRUE(board.AppRuns());
  // Withdrawn from a manifest that does not say it lists every app: the app stays.
  board.service().Withdraw(fleet_->app_image());
  const auto check_ins = [&] {
    const auto calls = board.service().calls();
    return std::count_if(calls.begin(), calls.end(),
                         [](const auto& c) { return c.what == "check-in"; });
  };
  auto before = check_ins();
  ASSERT_TRUE(board.PowerOn([&] { return check_ins() > before; }));
  EXPECT_TRUE(board.AppRuns()) << "removed on a manifest that is not the whole app list";
  // The deployment's app list, complete, without it: removed.
  board.service().SetAppsComplete(true);
  before = check_ins();
  ASSERT_TRUE(board.PowerOn([&] { return check_ins() > before; }));
  EXPECT_FALSE(board.AppRuns());
  EXPECT_FALSE(fs::exists(board.AppDir())) << "its versions are removed with it";
}

TEST_P(DaemonPowerCut, APowerCutAtAnyDurableWriteLeavesABoardThatBootsAndSettlesTheUpdate) {
  const int total = Operations();
  ASSERT_GT(total, 0);
  for (int n = GetParam(); n < total; n += kShards) {
    SCOPED_TRACE("the power cut at operation " + std::to_string(n) + " of " +
                 std::to_string(total));
    Board board(*fleet_);
    board.CutAfter(n);
    for (int boot = 0; boot < kMostBoots && !board.AllSettled(); ++boot) {
      auto exit = board.PowerOn();
      if (board.files().cut()) break;
      ASSERT_TRUE(exit) << exit.error().message();
    }
    board.Crash();
    for (int boot = 0; !board.AllSettled(); ++boot) {
      ASSERT_LT(boot, kMostBoots) << "the update did not settle";
      auto exit = board.PowerOn();
      ASSERT_TRUE(exit) << "the board does not start (bricked): " << exit.error().message();
    }
    EXPECT_EQ(board.Settled(fleet_->app_image()), wire::kInstalled);
    EXPECT_TRUE(board.AppRuns());
    const std::string settled = board.Settled(fleet_->image_1_1());
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

namespace aspis::device {
namespace {

// One request on aspisd's admin socket, as `aspis dev` sends it.
json::Json AdminRequest(const fs::path& socket_path, const json::Json& request) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  const Fd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return json::Json::object();
  }
  const std::string line = request.dump() + "\n";
  ::send(socket.get(), line.data(), line.size(), MSG_NOSIGNAL);
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(socket.get(), buffer, sizeof(buffer), 0)) > 0;) {
    reply.append(buffer, static_cast<std::size_t>(n));
  }
  return json::Parse(reply).value_or(json::Json::object());
}

TEST_F(DaemonPowerCut, AnInstalledAppRunsInItsSandboxAndTheAdminSocketShowsAndStopsIt) {
  Board board(*fleet_);
  board.config().run_apps = true;
  const auto pid = static_cast<unsigned>(::getpid());
  board.config().app_resolver =
      "127.84." + std::to_string((pid >> 8) & 0xff) + "." + std::to_string((pid & 0xff) | 1);
  ASSERT_TRUE(board.PowerOn());  // installs OS 1.1 and asks for a reboot
  const fs::path socket = board.config().admin_socket;
  json::Json running;
  json::Json stopped;
  json::Json started;
  ASSERT_TRUE(board.PowerOn([&] {
    if (!board.AllSettled()) return false;
    running = AdminRequest(socket, {{"command", wire::admin::kAppList}});
    stopped = AdminRequest(
        socket, {{"command", wire::admin::kAppStop}, {"component_id", Fleet::kAppComponent}});
    started = AdminRequest(
        socket, {{"command", wire::admin::kAppStart}, {"component_id", Fleet::kAppComponent}});
    return true;
  }));
  ASSERT_EQ(running.value("apps", json::Json::array()).size(), 1U) << running.dump();
  const json::Json& app = running["apps"][0];
  EXPECT_EQ(app.value("name", ""), "blink");
  EXPECT_EQ(app.value("state", ""), "running") << app.dump();
  EXPECT_GT(app.value("pid", 0), 0);
  EXPECT_EQ(stopped.value("state", ""), "stopped") << stopped.dump();
  EXPECT_EQ(started.value("state", ""), "running") << started.dump();
  EXPECT_NE(started.value("pid", 0), app.value("pid", 0));
}

}  // namespace
}  // namespace aspis::device
