// libaspis-applibs against the virtual board, through the real broker, peripheral server and
// sandbox: an app written as a publisher writes one (tests/apps/applibs_app.c) opens what its
// manifest lists and is refused the rest, and `aspis dev board` sees and moves what it drives.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>

#include "core/bytes.hpp"
#include "core/clock.hpp"
#include "core/file.hpp"
#include "crypto/tls.hpp"
#include "device/apps/app_manager.hpp"
#include "device/board/cert_store.hpp"
#include "device/board/linux_board.hpp"
#include "device/board/network.hpp"
#include "device/board/peripheral_server.hpp"
#include "device/board/sim_board.hpp"
#include "device/board/wifi.hpp"
#include "service/http/server.hpp"
#include "support/board.hpp"
#include "support/dhcp_message.hpp"
#include "support/fake_remoteproc.hpp"
#include "support/ntp_server.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_pki.hpp"
#include "support/wpa_supplicant.hpp"

namespace aspis::device::apps {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr char kApp[] = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

class ApplibsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto layout = sandbox::CgroupLayout::Find("/sys/fs/cgroup", "/proc/self/cgroup",
                                              "aspis-applibs-test-" + std::to_string(::getpid()));
    ASSERT_TRUE(layout) << layout.error().message();
    auto board = board::BoardDefinition::Parse(testing::SimBoardJson(), "mt3620-sim.json");
    ASSERT_TRUE(board) << board.error().message();
    board_.emplace(std::move(*board));
    sim_ = std::make_unique<board::SimBoard>(*board_);
    auto server = board::PeripheralServer::Start(*board_, *sim_);
    ASSERT_TRUE(server) << server.error().message();
    server_ = std::move(*server);
    std::array<int, 2> pipe{};
    ASSERT_EQ(::pipe2(pipe.data(), O_CLOEXEC), 0);
    output_ = Fd(pipe[0]);
    write_end_ = Fd(pipe[1]);
    parts_.apps_dir = dir_ / "apps";
    parts_.run_dir = dir_ / "run";
    parts_.cgroups = *layout;
    parts_.restart_delay = milliseconds(50);
    parts_.stop_grace = milliseconds(2000);
    parts_.storage_dir = dir_ / "storage";
    parts_.output = write_end_.get();
    parts_.board = &*board_;
    parts_.events = events_.get();
    parts_.actions = &actions_;
    parts_.tenant = [this] { return tenant_; };
    parts_.app_certificate = dir_ / "app-certificate.pem";
    parts_.app_key = dir_ / "app-key.pem";
    parts_.peripherals = server_.get();
  }
  void TearDown() override {
    manager_.reset();
    for (const auto& parent :
         {parts_.cgroups.unified, parts_.cgroups.memory, parts_.cgroups.pids}) {
      if (!parent.empty()) ::rmdir(parent.c_str());
    }
  }

  // Installs and starts the test app with `args` and the manifest's `capabilities`.
  void Run(const std::vector<std::string>& args, const std::string& capabilities) {
    Install(kApp, "applibs", args, capabilities);
    StartApps();
  }

  // Installs the test app as `component`, named `name`, with `args` and the manifest's
  // `capabilities`, as a real-time capable app when `real_time`.
  void Install(const std::string& component, const std::string& name,
               const std::vector<std::string>& args, const std::string& capabilities,
               bool real_time = false) {
    const fs::path version = parts_.apps_dir / component / "image-1";
    fs::create_directories(version / "bin");
    fs::copy_file(ASPIS_APPLIBS_APP, version / "bin" / "app");
    std::string list;
    for (const auto& arg : args) list += (list.empty() ? "\"" : ", \"") + arg + "\"";
    std::ofstream(version / "app_manifest.json")
        << R"({"SchemaVersion": 1, "Name": ")" << name << R"(", "ComponentId": ")" << component
        << R"(", "EntryPoint": "/bin/app", "CmdArgs": [)" << list << R"(], "ApplicationType": ")"
        << (real_time ? "RealTimeCapable" : "Default") << R"(", "Capabilities": )" << capabilities
        << "}";
    fs::create_directory_symlink("image-1", parts_.apps_dir / component / "current");
  }

  // Installs the sample app `sample` as built (apps/), as `component`.
  void InstallSample(const std::string& sample, const std::string& component) {
    const fs::path version = parts_.apps_dir / component / "image-1";
    fs::create_directories(version);
    fs::copy(fs::path(ASPIS_SAMPLE_APPS) / sample, version, fs::copy_options::recursive);
    fs::create_directory_symlink("image-1", parts_.apps_dir / component / "current");
  }

  void StartApps() {
    auto manager = AppManager::Create(parts_, [this](const AppReport& report) {
      const std::lock_guard lock(mutex_);
      reports_.push_back(report.kind + ": " + report.description);
    });
    ASSERT_TRUE(manager) << manager.error().message();
    manager_ = std::move(*manager);
    manager_->StartAll();
  }

  // The apps' lines of output until one is `last` (several apps' lines interleave).
  std::vector<std::string> Until(const std::string& last) {
    std::vector<std::string> lines;
    for (std::string line; (line = Line()) != last && !line.empty();) lines.push_back(line);
    return lines;
  }

  // The app's next line of output (the test's timeout ends a wait that never ends).
  std::string Line() {
    std::string line;
    for (char c = 0; ::read(output_.get(), &c, 1) == 1 && c != '\n';) line += c;
    return line;
  }

  // Lines up to and including "done".
  std::vector<std::string> UntilDone() { return Until("done"); }

  bool Lit(const std::string& led) const {
    for (const auto& state : sim_->Leds()) {
      if (state.name == led) return state.lit;
    }
    return false;
  }

  // Waits up to 5 s for `led` to be `lit`.
  bool LedBecomes(const std::string& led, bool lit) const {
    for (int i = 0; i < 500; ++i) {
      if (Lit(led) == lit) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  std::vector<std::string> Reports() {
    const std::lock_guard lock(mutex_);
    return reports_;
  }

  aspis::testing::TempDir dir_;
  std::optional<board::BoardDefinition> board_;
  std::unique_ptr<board::SimBoard> sim_;
  std::unique_ptr<board::PeripheralServer> server_;
  Fd output_{-1};
  Fd write_end_{-1};
  AppManagerParts parts_;
  std::unique_ptr<AppManager> manager_;
  std::mutex mutex_;
  std::vector<std::string> reports_;
  SimulatedClock clock_{Clock::TimePoint(std::chrono::seconds(1'800'000'000))};
  std::unique_ptr<SystemEvents> events_ =
      *SystemEvents::Open(state::StateStore(file::RealFileSystem(), dir_.path()), clock_);
  std::string tenant_;              // the device's, once it attested
  std::vector<std::string> asked_;  // what apps asked of the device, by actions_
  const DeviceActions actions_{
      .reboot = [this] { Asked("reboot"); },
      .power_down = [this](std::chrono::seconds s) { Asked("down " + std::to_string(s.count())); },
      .save_time = [this]() -> Expected<void> {
        Asked("rtc");
        return {};
      }};
  void Asked(const std::string& what) {
    const std::lock_guard lock(mutex_);
    asked_.push_back(what);
  }
};

constexpr char kTenant[] = "7d2c1b3a-1b3d-4e5f-8a9b-0c1d2e3f4a5b";

TEST_F(ApplibsTest, AnLedFollowsAButtonThroughTheEventLoop) {
  Run({"follow", "12", "8"}, R"({"Gpio": ["12", "8"]})");
  EXPECT_EQ(Line(), "following: ok");
  EXPECT_EQ(Line(), "released: ok");
  EXPECT_FALSE(Lit("LED1_RED"));
  ASSERT_TRUE(sim_->Press("A", true));
  EXPECT_EQ(Line(), "pressed: ok");
  EXPECT_TRUE(LedBecomes("LED1_RED", true));
  ASSERT_TRUE(sim_->Press("A", false));
  EXPECT_EQ(Line(), "released: ok");
  EXPECT_TRUE(LedBecomes("LED1_RED", false));
}

TEST_F(ApplibsTest, AGpioTheManifestDoesNotListIsRefusedWithEaccesAndReported) {
  Run({"gpio-open", "8", "9", "8", "24"}, R"({"Gpio": ["8"]})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"gpio-open 8: ok", "gpio-open 9: EACCES",
                                                   "gpio-open 8: EBUSY", "gpio-open 24: ENODEV"}));
  EXPECT_TRUE(Lit("LED1_RED"));  // driven low: lit
  EXPECT_FALSE(Lit("LED1_GREEN"));
  const auto reports = Reports();
  EXPECT_NE(std::find(reports.begin(), reports.end(),
                      "denial: broker: gpio.open (the app manifest does not list Gpio 9)"),
            reports.end());
}

TEST_F(ApplibsTest, AnAppsPeripheralsAreFreedWhenItEnds) {
  Run({"gpio-open", "8"}, R"({"Gpio": ["8"]})");
  EXPECT_EQ(UntilDone(), std::vector<std::string>{"gpio-open 8: ok"});
  EXPECT_TRUE(Lit("LED1_RED"));
  manager_->Stop(kApp);
  EXPECT_FALSE(Lit("LED1_RED"));
  ASSERT_TRUE(manager_->Start(kApp));
  EXPECT_EQ(UntilDone(), std::vector<std::string>{"gpio-open 8: ok"});
}

TEST_F(ApplibsTest, AnAdcChannelReadsWhatTheBoardIsSetTo) {
  ASSERT_TRUE(sim_->SetAdc("ADC-CONTROLLER-0", 1, 2048));
  Run({"adc", "0", "1"}, R"({"Adc": ["ADC-CONTROLLER-0"]})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"adc-open: ok", "adc-bits: 12",
                                                   "adc-reference: ok", "adc-poll: ok",
                                                   "adc-sample: 2048", "adc-channel-99: EINVAL"}));
}

TEST_F(ApplibsTest, AnAdcControllerTheManifestDoesNotListIsRefused) {
  Run({"adc", "0", "1"}, R"({"Gpio": ["8"]})");
  EXPECT_EQ(UntilDone().front(), "adc-open: EACCES");
}

TEST_F(ApplibsTest, PwmStateAnAppAppliesReachesTheBoard) {
  Run({"pwm", "2", "1", "1000000", "250000"}, R"({"Pwm": ["PWM-CONTROLLER-2"]})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"pwm-open: ok", "pwm-apply: ok",
                                                   "pwm-apply-longer-duty: EINVAL"}));
  const auto channels = sim_->Pwm();
  ASSERT_EQ(channels.size(), 1U);
  EXPECT_EQ(channels[0].block, "PWM-CONTROLLER-2");
  EXPECT_EQ(channels[0].channel, 1);
  EXPECT_EQ(channels[0].state.period_ns, 1000000U);
  EXPECT_EQ(channels[0].state.duty_ns, 250000U);
  EXPECT_TRUE(channels[0].state.enabled);
}

// What the LSM6DS3 model answers a sample that reads it the way the public samples do: 0x69, a
// reset that clears itself, data ready, and 1 g on Z at 2 g full scale (16393 at 0.061 mg a bit).
const std::vector<std::string> kSensorLines = {"who-am-i: ok",  "who-am-i: 0x69", "reset: ok",
                                               "ctrl3-c: 0x04", "enable: ok",     "status: ok",
                                               "status: 0x05",  "read-xyz: 7",    "z: 16393"};

TEST_F(ApplibsTest, AnAppReadsTheAccelerometerOverI2c) {
  Run({"i2c", "2", "106"}, R"({"I2cMaster": ["ISU2"]})");
  std::vector<std::string> expected = {"i2c-open: ok", "i2c-speed: ok", "i2c-speed-12345: EINVAL"};
  expected.insert(expected.end(), kSensorLines.begin(), kSensorLines.end());
  expected.push_back("i2c-nobody: ENXIO");
  EXPECT_EQ(UntilDone(), expected);
}

TEST_F(ApplibsTest, AnAppReadsTheAccelerometerOverSpi) {
  Run({"spi", "1", "-1"}, R"({"SpiMaster": ["ISU1"]})");
  // 1 Hz is refused: a request holds the peripheral server, so none may take long.
  std::vector<std::string> expected = {"spi-open: ok", "spi-mode: ok", "spi-speed-1: EINVAL",
                                       "spi-speed: ok"};
  expected.insert(expected.end(), kSensorLines.begin(), kSensorLines.end());
  EXPECT_EQ(UntilDone(), expected);
}

TEST_F(ApplibsTest, AnI2cInterfaceTheManifestDoesNotListIsRefused) {
  Run({"i2c", "2", "106"}, R"({"I2cMaster": ["ISU1"]})");
  EXPECT_EQ(UntilDone().front(), "i2c-open: EACCES");
}

TEST_F(ApplibsTest, AProgramAtTheUartsPseudoTerminalTalksToTheApp) {
  Run({"uart", "4"}, R"({"Uart": ["ISU0"]})");
  EXPECT_EQ(UntilDone(), std::vector<std::string>{"uart-open: ok"});
  auto path = sim_->UartPath("4");
  ASSERT_TRUE(path) << path.error().message();
  EXPECT_EQ(sim_->UartPath("ISU0").value_or(""), *path);
  const Fd far_end(::open(path->c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_GE(far_end.get(), 0);
  ASSERT_EQ(::write(far_end.get(), "ping", 4), 4);
  std::string echoed;
  for (char c = 0; echoed.size() < 4 && ::read(far_end.get(), &c, 1) == 1;) echoed += c;
  EXPECT_EQ(echoed, "ping");
  manager_->Stop(kApp);
  EXPECT_FALSE(sim_->UartPath("ISU0"));
}

TEST_F(ApplibsTest, AnAppIsToldOfAnUpdateThroughItsEventLoopAndDefersIt) {
  Run({"sysevent", "defer"},
      R"({"SystemEventNotifications": true, "SoftwareUpdateDeferral": true})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"register: ok", "register-nothing: EINVAL"}));
  EXPECT_TRUE(events_->Hold({"image"}, UpdateType::kApp));
  EXPECT_EQ(Line(), "event 1 status 1 minutes 1440 type 1");  // UpdateReadyForInstall, Pending
  EXPECT_EQ(Line(), "defer: ok");
  EXPECT_EQ(Line(), "defer-started: EINVAL");
  EXPECT_EQ(Line(), "event 1 status 3 minutes 0 type 1");  // Deferred
}

TEST_F(ApplibsTest, AnAppWithoutSystemEventNotificationsCannotRegister) {
  Run({"sysevent"}, R"({})");
  EXPECT_EQ(UntilDone().front(), "register: EACCES");
}

TEST_F(ApplibsTest, TheAppCertificateIsReadyOnceTheDeviceAttestedForTheTenantItsManifestNames) {
  ASSERT_TRUE(
      file::WriteDurably(parts_.app_certificate, AsBytes("-----BEGIN CERTIFICATE-----\n"), 0600));
  ASSERT_TRUE(file::WriteDurably(parts_.app_key, AsBytes("-----BEGIN PRIVATE KEY-----\n"), 0600));
  Run({"deviceauth"}, std::string(R"({"DeviceAuthentication": ")") + kTenant + "\"}");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"ready: ok", "ready: 0", "certificate-path: EAGAIN",
                                      "key-path-stable: EAGAIN"}));
  tenant_ = kTenant;
  manager_->Stop(kApp);
  ASSERT_TRUE(manager_->Start(kApp));
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"ready: ok", "ready: 1", "certificate-path: ok",
                                      "-----BEGIN CERTIFICATE-----", "key-path-stable: ok"}));
}

TEST_F(ApplibsTest, AnAppSeesTheDevicesInterfacesNotItsOwnLoopbackOnlyNamespace) {
  // What the device has, read here independently of aspisd: every interface but loopback.
  std::vector<std::string> expected = {"ready: ok"};
  std::vector<std::string> names;
  if (struct if_nameindex* list = ::if_nameindex(); list != nullptr) {
    for (const struct if_nameindex* i = list; i->if_index != 0; ++i) {
      if (std::string(i->if_name) != "lo") names.emplace_back(i->if_name);
    }
    ::if_freenameindex(list);
  }
  std::sort(names.begin(), names.end());
  ASSERT_FALSE(names.empty());
  expected.push_back("interfaces: " + std::to_string(names.size()));
  for (const auto& name : names) expected.push_back(name + ": ok");
  expected.push_back("no-such-interface: EFAULT");
  expected.push_back("no-such-interface: ENOENT");
  Run({"networking"}, "{}");
  EXPECT_EQ(UntilDone(), expected);
}

TEST_F(ApplibsTest, SandboxEscapeByReopeningTheUartsTerminalIsRefused) {
  Run({"uart-reopen", "4"}, R"({"Uart": ["ISU0"]})");
  // The app holds a socket aspisd relays, not the terminal's master, which opened again through
  // /proc would make a new terminal of the device's each time. Its twin: a file of the app's own
  // opens again through the same path.
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"uart-open: ok", "uart-reopen: ENXIO",
                                                   "own-file-reopen: ok"}));
}

TEST_F(ApplibsTest, PowerControlsTheManifestListsReachTheDeviceAndNoOthers) {
  Run({"power"}, R"({"PowerControls": ["ForcePowerDown", "SetPowerProfile"], "SystemTime": true})");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"profile: ok", "profile-7: EINVAL", "rtc: ok", "timesync: ok",
                                      "power-down: ok", "reboot: EACCES"}));
  const std::lock_guard lock(mutex_);
  EXPECT_EQ(asked_, (std::vector<std::string>{"rtc", "down 30"}));
}

TEST_F(ApplibsTest, APowerDownLastsAtMostADay) {
  Run({"power-down-long"}, R"({"PowerControls": ["ForcePowerDown"]})");
  EXPECT_EQ(UntilDone(), std::vector<std::string>{"power-down: ok"});
  const std::lock_guard lock(mutex_);
  EXPECT_EQ(asked_, std::vector<std::string>{"down 86400"});
}

TEST_F(ApplibsTest, AnAppWithoutPowerControlsOrSystemTimeIsRefused) {
  Run({"power"}, R"({"PowerControls": ["ForceReboot"]})");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"profile: EACCES", "profile-7: EINVAL", "rtc: EACCES",
                                      "timesync: ok", "power-down: EACCES", "reboot: ok"}));
  const std::lock_guard lock(mutex_);
  EXPECT_EQ(asked_, std::vector<std::string>{"reboot"});
}

TEST_F(ApplibsTest, MutableStorageAndTheImagePackageOpenAsAzureSphereDescribes) {
  Run({"storage"}, R"({"MutableStorage": {"SizeKB": 4}})");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"storage-open: ok", "storage-write: ok",
                                      "storage-package: ok", "storage-package-escape: EINVAL"}));
}

TEST_F(ApplibsTest, MutableStorageWithoutItsCapabilityIsEperm) {
  Run({"storage"}, R"({})");
  EXPECT_EQ(UntilDone().front(), "storage-open: EPERM");
}

// A GPIO chip of a Linux board: lines the test reads and drives (a button pulled up to high).
class FakeChip final : public board::GpioChip {
 public:
  Expected<void> Request(int line, board::GpioMode mode, bool value) override {
    const std::lock_guard lock(mutex_);
    if (mode != board::GpioMode::kInput) values_[line] = value;
    return {};
  }
  void Release(int /*line*/) override {}
  Expected<bool> Get(int line) override { return Value(line); }
  Expected<void> Set(int line, bool value) override {
    const std::lock_guard lock(mutex_);
    values_[line] = value;
    return {};
  }
  bool Value(int line) {
    const std::lock_guard lock(mutex_);
    return values_.contains(line) ? values_[line] : true;
  }

 private:
  std::mutex mutex_;
  std::map<int, bool> values_;
};

TEST_F(ApplibsTest, TheSameAppBinaryFollowsAButtonOnTheVirtualBoardAndOnALinuxBoard) {
  // mt3620-sim: GPIO 12 is button A, GPIO 8 LED 1 red.
  Run({"follow", "12", "8"}, R"({"Gpio": ["12", "8"]})");
  EXPECT_EQ(Line(), "following: ok");
  EXPECT_EQ(Line(), "released: ok");
  ASSERT_TRUE(sim_->Press("A", true));
  EXPECT_EQ(Line(), "pressed: ok");
  EXPECT_TRUE(LedBecomes("LED1_RED", true));
  manager_.reset();
  fs::remove_all(parts_.apps_dir);

  // A Raspberry Pi 4: the same binary and numbers, GPIO 12 and 8 of its gpiochip0.
  std::ifstream in(fs::path(ASPIS_SIM_BOARD).parent_path() / "raspberry-pi-4.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto pi = board::BoardDefinition::Parse(text, "raspberry-pi-4.json");
  ASSERT_TRUE(pi) << pi.error().message();
  auto chip = std::make_unique<FakeChip>();
  FakeChip& lines = *chip;
  board::LinuxBoard linux_board(*pi, std::move(chip), nullptr);
  auto server = board::PeripheralServer::Start(*pi, linux_board);
  ASSERT_TRUE(server) << server.error().message();
  parts_.board = &*pi;
  parts_.peripherals = server->get();
  Run({"follow", "12", "8"}, R"({"Gpio": ["12", "8"]})");
  EXPECT_EQ(Line(), "following: ok");
  EXPECT_EQ(Line(), "released: ok");
  ASSERT_TRUE(lines.Set(12, false));  // pressed: pulled low
  EXPECT_EQ(Line(), "pressed: ok");
  bool lit = false;  // LED 8 driven low
  for (int i = 0; i < 500 && !lit; ++i) {
    lit = !lines.Value(8);
    if (!lit) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(lit);
  manager_.reset();
}

constexpr char kRealTime[] = "5c4d3e2f-1a0b-4c9d-8e7f-6a5b4c3d2e1f";

bool Has(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

TEST_F(ApplibsTest, AHighLevelAndARealTimeAppThatListEachOtherExchangeMessages) {
  Install(kRealTime, "echo", {"echo"},
          std::string(R"({"AllowedApplicationConnections": [")") + kApp + "\"]}", true);
  Install(kApp, "talker", {"talk", kRealTime, "hello"},
          std::string(R"({"AllowedApplicationConnections": [")") + kRealTime + "\"]}");
  StartApps();
  // The real-time app prints what it received before it answers, the high-level app "done" after
  // the answer came.
  const auto lines = Until("done");
  EXPECT_TRUE(Has(lines, "channel: ok"));
  EXPECT_TRUE(Has(lines, "connect: ok"));
  // The header the real-time app read named the sender (kApp's first field, little-endian).
  EXPECT_TRUE(Has(lines, "from 0a1b2c3d: hello"));
  EXPECT_TRUE(Has(lines, "reply: echo:hello"));
}

TEST_F(ApplibsTest, ApplicationConnectIsRefusedWhenTheRealTimeAppDoesNotListTheCaller) {
  Install(kRealTime, "echo", {"echo"}, R"({"AllowedApplicationConnections": []})", true);
  Install(kApp, "talker", {"talk", kRealTime, "hello"},
          std::string(R"({"AllowedApplicationConnections": [")") + kRealTime + "\"]}");
  StartApps();
  EXPECT_TRUE(Has(Until("done"), "connect: ECONNREFUSED"));
}

TEST_F(ApplibsTest, ApplicationConnectIsRefusedWhenTheCallerDoesNotListTheRealTimeApp) {
  Install(kRealTime, "echo", {"echo"},
          std::string(R"({"AllowedApplicationConnections": [")") + kApp + "\"]}", true);
  Install(kApp, "talker", {"talk", kRealTime, "hello"}, R"({})");
  StartApps();
  EXPECT_TRUE(Has(Until("done"), "connect: EACCES"));
  const auto reports = Reports();
  EXPECT_TRUE(Has(reports,
                  "denial: broker: application.connect (AllowedApplicationConnections "
                  "does not list the component)"));
}

TEST_F(ApplibsTest, WifiAndTheCertificateStoreAreEnotsupOnABoardWithoutWifi) {
  Run({"wifi"}, R"({"WifiConfig": true, "EnterpriseWifiConfig": true, "CertStore": true})");
  // ENOTSUP, which Linux names EOPNOTSUPP (the same number).
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"wifi-add: EOPNOTSUPP", "wifi-eap-tls: EOPNOTSUPP",
                                      "wifi-identity: EOPNOTSUPP", "certstore-count: EOPNOTSUPP"}));
}

// A network namespace of the test's own (so nothing touches the machine's network) holding a veth
// pair n0 and n1, n1 up.
// `inner` is the end aspisd manages, `outer` the far end; a DHCP client's files are named after
// its interface, so tests that run one name theirs after the test's process.
class TestNamespace {
 public:
  explicit TestNamespace(std::string inner = "n0", const std::string& outer = "n1")
      : name_("aspis-net-" + std::to_string(::getpid())),
        inner_(std::move(inner)),
        leases_(fs::temp_directory_path() / name_) {
    ok_ = aspis::testing::RunProcess({"ip", "netns", "add", name_}).exit_code == 0 &&
          In({"ip", "link", "add", inner_, "type", "veth", "peer", "name", outer}) &&
          In({"ip", "link", "set", outer, "up"});
  }
  ~TestNamespace() {
    aspis::testing::RunProcess({"ip", "netns", "delete", name_});
    std::error_code ec;
    fs::remove(fs::path("/var/lib/dhcpcd") / (inner_ + ".lease"), ec);  // a DHCP client's
    fs::remove_all(leases_, ec);
  }
  TestNamespace(const TestNamespace&) = delete;
  TestNamespace& operator=(const TestNamespace&) = delete;

  bool ok() const { return ok_; }
  bool Run(const std::vector<std::string>& argv) const { return In(argv); }
  // aspisd's control of the inner end here, which `parts` then hand apps; null when it cannot be
  // had. DHCP clients leave the machine's resolver alone.
  std::unique_ptr<board::NetworkControl> Manage(AppManagerParts& parts) const {
    auto network = board::NetworkControl::Open({inner_}, path(), Daemons());
    EXPECT_TRUE(network) << network.error();
    if (!network) return nullptr;
    parts.network = network->get();
    return std::move(*network);
  }
  fs::path path() const { return fs::path("/run/netns") / name_; }
  // What runs DHCP for aspisd here: servers' leases in a directory of the test's.
  board::NetworkDaemons Daemons() const { return {.leases_dir = leases_}; }
  // Runs `argv` inside; its output.
  std::string Output(const std::vector<std::string>& argv) const {
    std::vector<std::string> command{"ip", "netns", "exec", name_};
    command.insert(command.end(), argv.begin(), argv.end());
    return aspis::testing::RunProcess(command).output;
  }

 private:
  bool In(const std::vector<std::string>& argv) const {
    std::vector<std::string> command{"ip", "netns", "exec", name_};
    command.insert(command.end(), argv.begin(), argv.end());
    return aspis::testing::RunProcess(command).exit_code == 0;
  }
  std::string name_;
  std::string inner_;
  fs::path leases_;
  bool ok_ = false;
};

TEST_F(ApplibsTest, AnAppConfiguresAnInterfaceAspisdManages) {
  TestNamespace ns;
  ASSERT_TRUE(ns.ok());
  // n0 had three addresses (two secondaries); the system's own uplink n2 has the default route.
  for (const char* address : {"10.0.0.2/24", "10.0.0.3/24", "10.0.0.4/24"}) {
    ASSERT_TRUE(ns.Run({"ip", "addr", "add", address, "dev", "n0"}));
  }
  ASSERT_TRUE(ns.Run({"ip", "link", "add", "n2", "type", "veth", "peer", "name", "n3"}));
  ASSERT_TRUE(ns.Run({"ip", "link", "set", "n2", "up"}));
  ASSERT_TRUE(ns.Run({"ip", "link", "set", "n3", "up"}));
  ASSERT_TRUE(ns.Run({"ip", "addr", "add", "198.51.100.2/24", "dev", "n2"}));
  ASSERT_TRUE(ns.Run({"ip", "route", "add", "default", "via", "198.51.100.1"}));
  const auto network = ns.Manage(parts_);
  ASSERT_TRUE(network);
  Run({"netconfig", "n0"}, R"({"NetworkConfig": true, "HardwareAddressConfig": true})");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{
                "up: ok", "static: ok", "holey-mask: EINVAL", "zero-mask: EINVAL",
                "loopback: EINVAL", "broadcast: EINVAL", "off-link-gateway: EINVAL",
                "custom-dns: ok", "custom-dns-multicast: EINVAL", "release-static: EINVAL",
                "renew-static: EINVAL", "set-mac: ok", "multicast-mac: EINVAL", "get-mac: ok",
                "mac: 02:00:00:00:00:42", "unmanaged: EPERM", "injected: ENOENT"}));
  const std::string link = ns.Output({"ip", "-o", "link", "show", "n0"});
  EXPECT_NE(link.find(",UP"), std::string::npos) << link;
  EXPECT_NE(link.find("link/ether 02:00:00:00:00:42"), std::string::npos) << link;
  // Its addresses replaced by the one set; what was refused changed nothing.
  const std::string addresses = ns.Output({"ip", "-o", "-4", "addr", "show", "dev", "n0"});
  EXPECT_NE(addresses.find("inet 192.0.2.10/24"), std::string::npos) << addresses;
  EXPECT_EQ(addresses.find("10.0.0."), std::string::npos) << addresses;
  // The system's default route stays, and outranks the app's.
  const std::string routes = ns.Output({"ip", "route", "show", "default"});
  EXPECT_NE(routes.find("default via 198.51.100.1 dev n2"), std::string::npos) << routes;
  EXPECT_NE(routes.find("default via 192.0.2.1 dev n0 proto static metric 1000"), std::string::npos)
      << routes;
  // The custom DNS servers are where aspisd's resolver for apps asks; the refused ones are not.
  EXPECT_EQ(board::AsText(network->DnsServers()),
            (std::vector<std::string>{"192.0.2.53", "198.51.100.53"}));
}

// A DHCP server on the far end of the test's veth pair: dnsmasq, leasing 192.168.77.50-60 with
// 192.168.77.1 as router, DNS and NTP servers, and, as a hostile network's would, a host name,
// classless routes that would take every destination (0.0.0.0/1 and 128.0.0.0/1 outrank any
// default route) and DNS and NTP servers that are the device itself (its loopback, and
// 192.168.77.1: both ends of the pair are in the test's namespace); what it did, in its log.
class DhcpServer {
 public:
  DhcpServer(const TestNamespace& ns, const std::string& interface, const fs::path& dir)
      : log_(dir / "dnsmasq.log"),
        ready_(ns.Run({"ip", "addr", "add", "192.168.77.1/24", "dev", interface})),
        process_({"ip",
                  "netns",
                  "exec",
                  ns.path().filename().string(),
                  "dnsmasq",
                  "--no-daemon",
                  "--conf-file=/dev/null",
                  "--port=0",
                  "--no-ping",
                  "--interface=" + interface,
                  "--bind-interfaces",
                  "--dhcp-range=192.168.77.50,192.168.77.60,1h",
                  "--dhcp-option=3,192.168.77.1",
                  "--dhcp-option=6,192.168.77.1,127.0.0.1,192.168.77.2",
                  "--dhcp-option=42,192.168.77.1,192.168.77.3",
                  "--dhcp-option=12,evil-host",
                  "--dhcp-option=121,0.0.0.0/1,192.168.77.1,128.0.0.0/1,192.168.77.1",
                  "--log-dhcp",
                  "--dhcp-leasefile=" + (dir / "leases").string(),
                  "--pid-file=" + (dir / "dnsmasq.pid").string()},
                 std::nullopt, 15, log_.string()) {}
  bool ready() const { return ready_; }
  std::string Log() const {
    std::ifstream in(log_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  fs::path log_;
  bool ready_;
  aspis::testing::BackgroundProcess process_;
};

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The IPv4 address `interface` has in `ns`, once it has one from the DHCP server (up to 10 s).
std::string LeasedAddress(const TestNamespace& ns, const std::string& interface) {
  std::string addresses;
  for (int i = 0; i < 100; ++i) {
    addresses = ns.Output({"ip", "-o", "-4", "addr", "show", "dev", interface});
    if (addresses.find("inet 192.168.77.") != std::string::npos) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return addresses;
}

TEST_F(ApplibsTest, AnAppTakesItsInterfacesAddressFromARealDhcpServer) {
  const std::string inner = "da" + std::to_string(::getpid());
  const std::string outer = "db" + std::to_string(::getpid());
  TestNamespace ns(inner, outer);
  ASSERT_TRUE(ns.ok());
  DhcpServer server(ns, outer, dir_.path());
  ASSERT_TRUE(server.ready());
  ASSERT_TRUE(ns.Run({"ip", "addr", "add", "10.0.0.2/24", "dev", inner}));
  const auto network = ns.Manage(parts_);
  ASSERT_TRUE(network);
  Run({"dhcp", inner}, R"({"NetworkConfig": true})");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"up: ok", "dynamic: ok", "release: ok", "renew: ok"}));
  // The address it had made way for the lease, and the server's router became its default route
  // at aspisd's metric.
  const std::string addresses = LeasedAddress(ns, inner);
  EXPECT_NE(addresses.find("inet 192.168.77."), std::string::npos) << addresses << server.Log();
  EXPECT_EQ(addresses.find("10.0.0.2"), std::string::npos) << addresses;
  const std::string routes = ns.Output({"ip", "route", "show", "default"});
  EXPECT_NE(routes.find("default via 192.168.77.1 dev " + inner), std::string::npos) << routes;
  EXPECT_NE(routes.find("metric 1000"), std::string::npos) << routes;
}

TEST(NetworkDhcpTest, TheDhcpClientOfAKilledAspisdIsEndedByTheNextOne) {
  aspis::testing::TempDir dir;
  const std::string inner = "dk" + std::to_string(::getpid());
  const std::string outer = "dl" + std::to_string(::getpid());
  TestNamespace ns(inner, outer);
  ASSERT_TRUE(ns.ok());
  DhcpServer server(ns, outer, dir.path());
  ASSERT_TRUE(server.ready());
  // An aspisd that started a DHCP client and was killed: no destructor ran.
  const pid_t killed = ::fork();
  ASSERT_GE(killed, 0);
  if (killed == 0) {
    auto network = board::NetworkControl::Open({inner}, ns.path(), ns.Daemons());
    ::_exit(network && (*network)->SetUp(inner, true) && (*network)->SetDynamicIp(inner) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(killed, &status, 0), killed);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  pid_t orphan = 0;
  std::ifstream(ns.Daemons().leases_dir / (inner + ".dhcpcd.pid")) >> orphan;
  ASSERT_GT(orphan, 1);
  EXPECT_NE(ReadText("/proc/" + std::to_string(orphan) + "/cmdline").find("dhcpcd"),
            std::string::npos);
  auto next = board::NetworkControl::Open({inner}, ns.path(), ns.Daemons());
  ASSERT_TRUE(next);
  EXPECT_EQ(ReadText("/proc/" + std::to_string(orphan) + "/cmdline").find("dhcpcd"),
            std::string::npos);
}

TEST(NetworkDhcpTest, AReleasedLeaseLeavesTheInterfaceBareUntilRenewedAndAStaticAddressEndsDhcp) {
  aspis::testing::TempDir dir;
  const std::string inner = "dh" + std::to_string(::getpid());
  const std::string outer = "ds" + std::to_string(::getpid());
  TestNamespace ns(inner, outer);
  ASSERT_TRUE(ns.ok());
  DhcpServer server(ns, outer, dir.path());
  ASSERT_TRUE(server.ready());
  auto network = board::NetworkControl::Open({inner}, ns.path(), ns.Daemons());
  ASSERT_TRUE(network);
  board::NetworkControl& control = **network;
  ASSERT_TRUE(control.SetUp(inner, true));
  EXPECT_EQ(control.RenewIp(inner).error(), EINVAL);  // not in dynamic mode
  const std::string resolver = ReadText("/etc/resolv.conf");
  ASSERT_TRUE(control.SetDynamicIp(inner));
  EXPECT_NE(LeasedAddress(ns, inner).find("inet 192.168.77."), std::string::npos) << server.Log();
  // Only the address and default route: the network's other routes, DNS servers and host name
  // stay out of the device's configuration.
  const std::string routes = ns.Output({"ip", "route"});
  EXPECT_EQ(routes.find("0.0.0.0/1"), std::string::npos) << routes;
  EXPECT_EQ(routes.find("128.0.0.0/1"), std::string::npos) << routes;
  EXPECT_NE(routes.find("default via 192.168.77.1"), std::string::npos) << routes;
  EXPECT_EQ(ReadText("/etc/resolv.conf"), resolver);
  // The lease's DNS servers are where aspisd's resolver for apps asks, and its NTP servers where
  // automatic time sync takes the time, but never the device itself.
  auto dns = board::AsText(control.DnsServers());
  for (int i = 0; i < 50 && dns.empty(); ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    dns = board::AsText(control.DnsServers());
  }
  EXPECT_EQ(dns, std::vector<std::string>{"192.168.77.2"}) << server.Log();
  EXPECT_EQ(board::AsText(control.NtpServers()), std::vector<std::string>{"192.168.77.3"});
  ASSERT_TRUE(control.ReleaseIp(inner));
  EXPECT_TRUE(control.DnsServers().empty());
  EXPECT_EQ(ns.Output({"ip", "-o", "-4", "addr", "show", "dev", inner}), "");
  ASSERT_TRUE(control.RenewIp(inner));
  EXPECT_NE(LeasedAddress(ns, inner).find("inet 192.168.77."), std::string::npos) << server.Log();
  // A static address ends the client, which takes its lease's address with it.
  ASSERT_TRUE(control.SetStaticIp(inner, {htonl(0xc0a84d09)}, {htonl(0xffffff00)}, {0}));
  EXPECT_EQ(ReadText("/etc/resolv.conf"), resolver);
  const std::string addresses = ns.Output({"ip", "-o", "-4", "addr", "show", "dev", inner});
  EXPECT_NE(addresses.find("inet 192.168.77.9/24"), std::string::npos) << addresses;
  EXPECT_EQ(addresses.find("dynamic"), std::string::npos) << addresses;
  EXPECT_EQ(control.ReleaseIp(inner).error(), EINVAL);
  EXPECT_TRUE(control.DnsServers().empty());
  EXPECT_TRUE(control.NtpServers().empty());
}

// A lease dhcpcd kept from another network (or an earlier run) names servers for an address the
// interface does not hold: until a server answers, none of them is asked. Nor, ever, one in the
// subnet of a private network the device has on another interface.
TEST(NetworkDhcpTest, ALeaseLeftFromAnotherNetworkNamesNoServers) {
  aspis::testing::TempDir dir;
  const std::string inner = "dn" + std::to_string(::getpid());
  const std::string outer = "do" + std::to_string(::getpid());
  const std::string lan = "dp" + std::to_string(::getpid());  // a private network's interface
  TestNamespace ns(inner, outer);
  ASSERT_TRUE(ns.ok());
  ASSERT_TRUE(ns.Run({"ip", "link", "add", lan, "type", "veth", "peer", "name", lan + "p"}));
  auto network = board::NetworkControl::Open({inner, lan}, ns.path(), ns.Daemons());
  ASSERT_TRUE(network);
  const fs::path kept = fs::path("/var/lib/dhcpcd") / (inner + ".lease");
  ASSERT_TRUE(aspis::file::WriteDurably(
      kept,
      aspis::testing::DhcpAck({6, 4, 192, 0, 2, 53, 42, 4, 192, 0, 2, 123, 255}, {10, 9, 8, 7}),
      0640));
  ASSERT_TRUE((*network)->SetUp(inner, true));
  ASSERT_TRUE((*network)->SetDynamicIp(inner));  // no server answers on this network
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_TRUE((*network)->DnsServers().empty());
  EXPECT_TRUE((*network)->NtpServers().empty());
  // Once the interface holds the address (as had the lease been taken again), its servers count.
  ASSERT_TRUE(ns.Run({"ip", "addr", "add", "10.9.8.7/24", "dev", inner}));
  EXPECT_EQ(board::AsText((*network)->DnsServers()), std::vector<std::string>{"192.0.2.53"});
  EXPECT_EQ(board::AsText((*network)->NtpServers()), std::vector<std::string>{"192.0.2.123"});
  // A private network on another interface aspisd manages takes in the lease's servers: the
  // device would send its questions into it. None of them is asked.
  ASSERT_TRUE(ns.Run({"ip", "addr", "add", "192.0.2.1/24", "dev", lan}));
  EXPECT_TRUE((*network)->DnsServers().empty());
  EXPECT_TRUE((*network)->NtpServers().empty());
  network->reset();
  std::error_code ec;
  fs::remove(kept, ec);
}

// A guardian's private network: the app serves DHCP on the interface to a legacy device (here a
// real dhcpcd on the far end), which gets the one address leased and no router, and the device's
// time over SNTP (asked by a real chronyd).
TEST_F(ApplibsTest, AnAppServesDhcpAndTimeToTheDeviceOnItsPrivateNetwork) {
  const std::string inner = "pa" + std::to_string(::getpid());
  const std::string outer = "pb" + std::to_string(::getpid());
  TestNamespace ns(inner, outer);
  ASSERT_TRUE(ns.ok());
  const auto network = ns.Manage(parts_);
  ASSERT_TRUE(network);
  Run({"dhcp-server", inner},
      R"({"NetworkConfig": true, "DhcpService": true, "SntpService": true})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{
                             "up: ok", "static: ok", "lease-of-its-own-address: EINVAL",
                             "lease-in-another-subnet: EINVAL", "lease-past-the-subnet: EINVAL",
                             "ntp: ok", "dhcp-start: ok", "sntp-start: ok"}));
  aspis::testing::BackgroundProcess device(
      {"ip", "netns", "exec", ns.path().filename().string(), "dhcpcd", "-B", "-4", "-A", "-L",
       "--nodelay", "-f", "/dev/null", "-C", "resolv.conf", "-o", "ntp_servers", outer},
      std::nullopt, 15, (dir_ / "legacy-device.log").string());
  std::string addresses;
  for (int i = 0; i < 100 && addresses.find("192.168.100.10/24") == std::string::npos; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    addresses = ns.Output({"ip", "-o", "-4", "addr", "show", "dev", outer});
  }
  EXPECT_NE(addresses.find("inet 192.168.100.10/24"), std::string::npos) << addresses;
  EXPECT_EQ(ns.Output({"ip", "route", "show", "default"}), "");
  // chronyd -Q asks once and says how far the clock it was answered differs from its own. Both
  // ends are in one namespace here: the question goes over its loopback.
  ASSERT_TRUE(ns.Run({"ip", "link", "set", "lo", "up"}));
  const std::string asked = ns.Output({"chronyd", "-Q", "-f", "/dev/null", "-t", "5",
                                       "server 192.168.100.1 iburst maxsamples 1",
                                       "pidfile " + (dir_ / "q.pid").string()});
  EXPECT_NE(asked.find("System clock wrong by"), std::string::npos) << asked;
  device.Stop();
  std::error_code ec;
  fs::remove(fs::path("/var/lib/dhcpcd") / (outer + ".lease"), ec);
}

TEST_F(ApplibsTest, ThePrivateNetworksServersNeedDhcpServiceAndSntpService) {
  TestNamespace ns;
  ASSERT_TRUE(ns.ok());
  const auto network = ns.Manage(parts_);
  ASSERT_TRUE(network);
  Run({"dhcp-server", "n0"}, R"({"NetworkConfig": true})");
  const auto lines = UntilDone();
  EXPECT_TRUE(Has(lines, "dhcp-start: EACCES"));
  EXPECT_TRUE(Has(lines, "sntp-start: EACCES"));
  EXPECT_TRUE(Has(Reports(),
                  "denial: broker: networking.config.dhcpserver (the app manifest "
                  "grants no DhcpService)"));
}

TEST_F(ApplibsTest, SettingTheHardwareAddressNeedsHardwareAddressConfig) {
  TestNamespace ns;
  ASSERT_TRUE(ns.ok());
  const auto network = ns.Manage(parts_);
  ASSERT_TRUE(network);
  Run({"netconfig", "n0"}, R"({"NetworkConfig": true})");
  const auto lines = UntilDone();
  EXPECT_TRUE(Has(lines, "static: ok"));
  EXPECT_TRUE(Has(lines, "set-mac: EACCES"));
  EXPECT_TRUE(Has(lines, "get-mac: ok"));
  EXPECT_EQ(ns.Output({"ip", "-o", "link", "show", "n0"}).find("02:00:00:00:00:42"),
            std::string::npos);
}

TEST_F(ApplibsTest, NetworkConfigurationWithoutNetworkConfigIsRefusedAndTheInterfaceUntouched) {
  TestNamespace ns;
  ASSERT_TRUE(ns.ok());
  const auto network = ns.Manage(parts_);
  ASSERT_TRUE(network);
  Run({"netconfig", "n0"}, R"({})");
  const auto lines = UntilDone();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), "up: EACCES");
  const std::string addresses = ns.Output({"ip", "-o", "-4", "addr", "show", "dev", "n0"});
  EXPECT_EQ(addresses.find("192.0.2.10"), std::string::npos) << addresses;
}

TEST_F(ApplibsTest, NetworkConfigurationIsEnotsupWhereAspisdDoesNotManageTheNetwork) {
  Run({"network-config"}, R"({"NetworkConfig": true, "DhcpService": true})");
  // ENOTSUP (EOPNOTSUPP) where granted, EACCES where not; the app's own buffers work.
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"set-interface-state: EOPNOTSUPP",
                                                   "custom-dns-4: ERANGE", "ip-apply: EOPNOTSUPP",
                                                   "dhcp-lease: ok", "dhcp-start: EOPNOTSUPP",
                                                   "sntp-start: EACCES", "timesync-set: EACCES"}));
}

TEST_F(ApplibsTest, AnAppConfiguresWifiThroughWpaSupplicant) {
  aspis::testing::WpaSupplicant wpa(dir_ / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  parts_.wifi = &wifi;
  Run({"wifi-configure", "keep"}, R"({"WifiConfig": true})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{
                             "add: 0", "ssid-comment: EINVAL", "ssid: ok", "security: ok",
                             "psk-injected: EINVAL", "psk: ok", "name-injected: EINVAL", "name: ok",
                             "enable: ok", "persist: ok", "ssid-33: ERANGE",
                             "forget-unknown: ENOENT", "enable-unknown: ENODEV", "count: 1",
                             "stored: home security 2 enabled 1 connected 0", "by-name: 0",
                             // The wired driver never completes a connection, nor scans.
                             "current: ENODATA", "scan: ok"}));
  // wpa_supplicant saved what the app set, and nothing it tried to slip into the file.
  const std::string saved = wpa.Config();
  EXPECT_NE(saved.find("ssid=\"home\""), std::string::npos) << saved;
  EXPECT_NE(saved.find("psk=\"correct horse\""), std::string::npos) << saved;
  EXPECT_NE(saved.find("id_str=\"home-net\""), std::string::npos) << saved;
  EXPECT_EQ(saved.find("priority=9"), std::string::npos) << saved;
}

// An app's call waits on a wpa_supplicant that does not answer (stopped) for as long as aspisd
// waits for one (10 s): meanwhile the manager answers, and another app's calls are served. Served
// on one thread for all apps, the second app's call and the manager would wait behind the first,
// which would then fail (EAGAIN) before wpa_supplicant went on.
TEST_F(ApplibsTest, AnAppsCallThatWaitsHoldsUpNeitherAnotherAppNorTheManager) {
  aspis::testing::WpaSupplicant wpa(dir_ / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  parts_.wifi = &wifi;
  ASSERT_EQ(::kill(wpa.pid(), SIGSTOP), 0);
  Run({"wifi-count"}, R"({"WifiConfig": true})");
  ASSERT_EQ(Line(), "asking");
  std::this_thread::sleep_for(milliseconds(300));  // its request reaches wpa_supplicant
  const auto status = manager_->Status();
  ASSERT_EQ(status.size(), 1U);
  EXPECT_EQ(status[0].state, "running");
  constexpr char kOther[] = "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
  Install(kOther, "other", {"storage"}, R"({"MutableStorage": {"SizeKB": 8}})");
  ASSERT_TRUE(manager_->Start(kOther));
  EXPECT_EQ(Until("done"),
            (std::vector<std::string>{"storage-open: ok", "storage-write: ok",
                                      "storage-package: ok", "storage-package-escape: EINVAL"}));
  ASSERT_EQ(::kill(wpa.pid(), SIGCONT), 0);
  EXPECT_EQ(Line(), "wifi-count: 0");
}

// An app killed while its call waits on a stopped wpa_supplicant ends only once the call is
// answered (what it held is let go after it), but meanwhile the manager goes on with the other
// apps: another one stops. Waited for on the manager's thread, that stop would wait behind it.
TEST_F(ApplibsTest, AnAppKilledWhileItsCallWaitsHoldsUpNoOtherAppsStop) {
  aspis::testing::WpaSupplicant wpa(dir_ / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  parts_.wifi = &wifi;
  ASSERT_EQ(::kill(wpa.pid(), SIGSTOP), 0);
  constexpr char kOther[] = "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
  Install(kOther, "other", {"storage"}, R"({"MutableStorage": {"SizeKB": 8}})");
  Run({"wifi-count"}, R"({"WifiConfig": true})");
  Until("asking");
  std::this_thread::sleep_for(milliseconds(300));  // its request reaches wpa_supplicant
  const auto waiting = manager_->Status(kApp);
  ASSERT_TRUE(waiting && waiting->pid > 0);
  ASSERT_EQ(::kill(waiting->pid, SIGKILL), 0);
  // Reaped: the manager saw it end.
  const fs::path proc = "/proc/" + std::to_string(waiting->pid);
  for (int i = 0; i < 200 && fs::exists(proc); ++i) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_FALSE(fs::exists(proc));
  manager_->Stop(kOther);
  EXPECT_EQ(manager_->Status(kOther)->state, "stopped");
  EXPECT_EQ(manager_->Status(kApp)->restarts, 0);  // its call still waits: not ended yet
  ASSERT_EQ(::kill(wpa.pid(), SIGCONT), 0);
  int restarts = 0;
  for (int i = 0; i < 100 && (restarts = manager_->Status(kApp)->restarts) == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(restarts, 1);
}

TEST(WpaSupplicantTest, At37StoredNetworksAddingOneMoreIsRefusedHoweverLongTheirSsids) {
  aspis::testing::TempDir dir;
  aspis::testing::WpaSupplicant wpa(dir / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  // 32 bytes of 0xff print as 128 characters: the list runs past one 4 KiB answer.
  const Bytes ssid(32, 0xff);
  for (std::size_t i = 0; i < board::kMaxWifiNetworks; ++i) {
    const auto id = wifi.Add();
    ASSERT_TRUE(id) << i;
    ASSERT_TRUE(wifi.SetSsid(*id, ssid));
  }
  const auto one_more = wifi.Add();
  ASSERT_FALSE(one_more);
  EXPECT_EQ(one_more.error(), ENOMEM);
  const auto copy = wifi.Duplicate(0, "copy");
  ASSERT_FALSE(copy);
  EXPECT_EQ(copy.error(), ENOMEM);
  const auto stored = wifi.Stored();
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->size(), board::kMaxWifiNetworks);
  ASSERT_TRUE(wifi.Forget(0));
  EXPECT_TRUE(wifi.Add());
}

TEST_F(ApplibsTest, AnAppDuplicatesANetworkAndReadsWhyItsKeylessOneNeverConnects) {
  aspis::testing::WpaSupplicant wpa(dir_ / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  parts_.wifi = &wifi;
  Run({"wifi-duplicate"}, R"({"WifiConfig": true})");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{
                "ssid: ok", "security: ok", "diagnostics-before: ENODEV", "enable-without-key: ok",
                "diagnostics: error 3 enabled 1", "psk: ok", "name: ok", "duplicate: 1",
                "duplicate-long-name: ERANGE", "duplicate-quoted-name: EINVAL",
                "duplicate-unknown: ENODEV", "diagnostics-of-copy: ENODEV",
                "diagnostics-unknown: ENODEV", "diagnostics-negative: EINVAL",
                "diagnostics-null: EFAULT", "count: 2 by-name: 1", "persist: ok"}));
  // The copy has the original's SSID, security and key, its own name, and is not enabled.
  const std::string saved = wpa.Config();
  const std::size_t copy = saved.find("network={", saved.find("network={") + 1);
  ASSERT_NE(copy, std::string::npos) << saved;
  const std::string copied = saved.substr(copy);
  EXPECT_NE(copied.find("ssid=\"home\""), std::string::npos) << saved;
  EXPECT_NE(copied.find("psk=\"correct horse\""), std::string::npos) << saved;
  EXPECT_NE(copied.find("key_mgmt=WPA-PSK"), std::string::npos) << saved;
  EXPECT_NE(copied.find("id_str=\"home-backup\""), std::string::npos) << saved;
  EXPECT_NE(copied.find("disabled=1"), std::string::npos) << saved;
}

TEST_F(ApplibsTest, AnAppHasTheDevicesTimeTakenFromItsNtpServerAndTurnsTimeSyncOff) {
  const aspis::testing::NtpServer server(dir_ / "ntp");
  ::chmod(dir_.path().c_str(), 0711);  // chronyd's user passes through to its socket
  auto sync = board::TimeSync::Open({.default_servers = {},
                                     .dir = dir_ / "timesync",
                                     .socket_dir = dir_ / "chrony",
                                     .set_clock = false,
                                     .port = server.port(),
                                     .poll = -2});
  ASSERT_TRUE(sync);
  parts_.time_sync = sync->get();
  Run({"timesync", server.address()}, R"({"TimeSyncConfig": true})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{
                             "custom: ok", "custom-injected: EINVAL",
                             "last-sync: " + server.address() + " this-century 1",
                             "last-sync-small: ENOBUFS", "needs: 1", "disable: ok",
                             "get-enabled: ok", "enabled: 0", "last-sync-disabled: ENOENT"}));
  EXPECT_FALSE((*sync)->Choice().enabled);
}

TEST_F(ApplibsTest, TimeSyncWithoutTimeSyncConfigIsRefusedAndUnchanged) {
  ::chmod(dir_.path().c_str(), 0711);
  auto sync = board::TimeSync::Open({.default_servers = {},
                                     .dir = dir_ / "timesync",
                                     .socket_dir = dir_ / "chrony",
                                     .set_clock = false});
  ASSERT_TRUE(sync);
  parts_.time_sync = sync->get();
  Run({"timesync", "192.0.2.1"}, R"({})");
  const auto lines = UntilDone();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), "custom: EACCES");
  EXPECT_EQ((*sync)->Choice().source, board::NtpSource::kDefault);
  EXPECT_TRUE((*sync)->Choice().enabled);
}

// An app with WifiConfig alone copying an EAP-TLS network would get one it may point at any SSID,
// offering the device's identity and client certificate there.
TEST_F(ApplibsTest, CapabilityBypassDuplicatingAnEapTlsNetworkNeedsEnterpriseWifiConfig) {
  aspis::testing::WpaSupplicant wpa(dir_ / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  const auto id = wifi.Add();
  ASSERT_TRUE(id);
  ASSERT_EQ(*id, 0);
  ASSERT_TRUE(wifi.SetSecurity(*id, board::WifiSecurity::kWpa2EapTls));
  ASSERT_TRUE(wifi.SetIdentity(*id, AsBytes(std::string("device-7"))));
  parts_.wifi = &wifi;
  Run({"wifi-duplicate-first"}, R"({"WifiConfig": true})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"duplicate: EACCES", "count: 1"}));
  EXPECT_TRUE(Has(Reports(),
                  "denial: broker: wifi.duplicate (the app manifest grants no "
                  "EnterpriseWifiConfig)"));
}

TEST_F(ApplibsTest, AnAppWithEnterpriseWifiConfigDuplicatesAnEapTlsNetwork) {
  aspis::testing::WpaSupplicant wpa(dir_ / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  const auto id = wifi.Add();
  ASSERT_TRUE(id);
  ASSERT_TRUE(wifi.SetSecurity(*id, board::WifiSecurity::kWpa2EapTls));
  ASSERT_TRUE(wifi.SetIdentity(*id, AsBytes(std::string("device-7"))));
  parts_.wifi = &wifi;
  Run({"wifi-duplicate-first"}, R"({"WifiConfig": true, "EnterpriseWifiConfig": true})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"duplicate: ok", "count: 2"}));
  const auto copied = wifi.Identity(1);
  ASSERT_TRUE(copied);
  EXPECT_EQ(AsString(*copied), "device-7");
}

TEST(WpaSupplicantTest, WhatAnAppStoresReadsBackAfterPersistAndReload) {
  aspis::testing::TempDir dir;
  aspis::testing::WpaSupplicant wpa(dir / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  const auto id = wifi.Add();
  ASSERT_TRUE(id);
  const std::string odd = "a#b\"c\"";  // its '#' inside the quotes it is saved in: it reads back
  ASSERT_TRUE(wifi.SetSsid(*id, AsBytes(odd)));
  ASSERT_TRUE(wifi.SetSecurity(*id, board::WifiSecurity::kWpa2Psk));
  const auto cut = wifi.SetPsk(*id, "abcdefg\"#h");  // would read back as "abcdefg"
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error(), EINVAL);
  ASSERT_TRUE(wifi.SetPsk(*id, "abc#defg\"x\""));  // its '#' inside quotes
  ASSERT_TRUE(wifi.Persist());
  ASSERT_TRUE(wifi.Reload());
  const auto stored = wifi.Stored();
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->size(), 1U);
  EXPECT_EQ(stored->front().ssid, Bytes(odd.begin(), odd.end()));
  EXPECT_EQ(stored->front().security, board::WifiSecurity::kWpa2Psk);
}

// The PKI of an EAP-TLS network: its CA, the authentication server's certificate and a device's.
struct EapPki {
  Clock::TimePoint now = Clock::TimePoint(std::chrono::system_clock::now());
  aspis::testing::Issuer ca = aspis::testing::MakeRoot(now);
  aspis::testing::Issuer server = Leaf(ca, "radius", false);
  aspis::testing::Issuer device = Leaf(ca, "device-7", true);

  static aspis::testing::Issuer Leaf(const aspis::testing::Issuer& ca, const std::string& name,
                                     bool client) {
    using namespace std::chrono_literals;
    auto key = *crypto::PrivateKey::GenerateP256();
    auto cert =
        *crypto::Issue(ca.cert, ca.key, key.Public(),
                       {.common_name = name,
                        .not_before = Clock::TimePoint(std::chrono::system_clock::now()) - 1h,
                        .lifetime = 12h,
                        .client_auth = client,
                        .server_auth = !client});
    return {key, cert};
  }
};

// Puts the certificates the test app installs into its image package: `root` as certs/ca.pem,
// and `device`'s certificate and key (encrypted with "sesame").
void PackCertificates(const fs::path& apps_dir, const crypto::Certificate& root,
                      const aspis::testing::Issuer& device) {
  const fs::path certs = apps_dir / kApp / "image-1" / "certs";
  fs::create_directories(certs);
  std::ofstream(certs / "ca.pem") << *root.ToPem();
  std::ofstream(certs / "client.pem") << *device.cert.ToPem();
  std::ofstream(certs / "client-key.pem") << aspis::testing::EncryptedKeyPem(device.key, "sesame");
}

TEST_F(ApplibsTest, AnAppManagesTheCertificateStore) {
  auto store = board::CertStore::Open(dir_ / "certstore");
  ASSERT_TRUE(store) << store.error().message();
  parts_.cert_store = store->get();
  const EapPki pki;
  Install(kApp, "applibs", {"certstore"}, R"({"CertStore": true})");
  PackCertificates(parts_.apps_dir, pki.ca.cert, pki.device);
  StartApps();
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"install-ca: ok",
                                                   "install-escaping-id: EINVAL",
                                                   "install-long-id: EINVAL",
                                                   "install-not-pem: EINVAL",
                                                   "install-wrong-password: EINVAL",
                                                   "install-no-password: EINVAL",
                                                   "install-key-of-another: EINVAL",
                                                   "install-client: ok",
                                                   "count: 2",
                                                   "at 0: device",
                                                   "at 1: radius-ca",
                                                   "at-past-the-end: ERANGE",
                                                   "subject: CN=device-7",
                                                   "issuer: CN=root",
                                                   "valid for hours: 12",
                                                   "subject-unknown: ENOENT",
                                                   "space: some used",
                                                   "move: ok",
                                                   "move-unknown: ENOENT",
                                                   "delete: ok",
                                                   "delete-unknown: ENOENT",
                                                   "count: 1",
                                                   "space: freed"}));
  EXPECT_EQ((*store)->Identifiers(), (std::vector<std::string>{"radius-ca"}));
  EXPECT_FALSE(fs::exists(dir_ / "ca.pem"));
}

TEST_F(ApplibsTest, TheCertificateStoreWithoutCertStoreIsEaccesAndUntouched) {
  auto store = board::CertStore::Open(dir_ / "certstore");
  ASSERT_TRUE(store) << store.error().message();
  parts_.cert_store = store->get();
  const EapPki pki;
  Install(kApp, "applibs", {"certstore"}, R"({"WifiConfig": true})");
  PackCertificates(parts_.apps_dir, pki.ca.cert, pki.device);
  StartApps();
  const auto lines = UntilDone();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front(), "install-ca: EACCES");
  EXPECT_TRUE((*store)->Identifiers()->empty());
  EXPECT_TRUE(Has(Reports(),
                  "denial: broker: certstore.install (the app manifest grants no "
                  "CertStore)"));
}

// An app joins an EAP-TLS network with certificates it installed: a real wpa_supplicant
// authenticates to a real hostapd (a wired 802.1X authenticator with its own EAP server) over the
// veth pair, with the files the store wrote.
class EapTlsTest : public ApplibsTest {
 protected:
  // Runs the app's "eap-tls" mode with `root` as the CA it installs (and `then`, the mode's
  // second argument); what wpa_supplicant's STATUS says once EAP ended.
  std::string Join(const crypto::Certificate& root, const std::string& then = "") {
    aspis::testing::WpaSupplicant wpa(dir_ / "wpa", /*associate=*/true);
    EXPECT_TRUE(wpa.Ready());
    const fs::path pki_dir = dir_ / "radius";
    fs::create_directories(pki_dir);
    std::ofstream(pki_dir / "ca.pem") << *pki_.ca.cert.ToPem();
    std::ofstream(pki_dir / "server.pem") << *pki_.server.cert.ToPem();
    std::ofstream(pki_dir / "server.key") << *pki_.server.key.ToPem();
    EXPECT_TRUE(
        wpa.StartAuthenticator(pki_dir / "ca.pem", pki_dir / "server.pem", pki_dir / "server.key"));
    board::Wifi wifi(wpa.control());
    auto store = board::CertStore::Open(dir_ / "certstore");
    EXPECT_TRUE(store);
    parts_.wifi = &wifi;
    parts_.cert_store = store->get();
    Install(kApp, "applibs",
            then.empty() ? std::vector<std::string>{"eap-tls"}
                         : std::vector<std::string>{"eap-tls", then},
            R"({"WifiConfig": true, "EnterpriseWifiConfig": true, "CertStore": true})");
    PackCertificates(parts_.apps_dir, root, pki_.device);
    StartApps();
    lines_ = UntilDone();
    std::string status =
        wpa.StatusOnceEap(root.Der() == pki_.ca.cert.Der() ? "SUCCESS" : "FAILURE");
    diagnostics_ = wifi.Diagnostics(0);
    log_ = wpa.Log();
    manager_.reset();
    return status;
  }

  const EapPki pki_;
  std::vector<std::string> lines_;
  board::WifiResult<board::WifiDiagnostics> diagnostics_ = std::unexpected(0);
  std::string log_;
};

TEST_F(EapTlsTest, AnAppJoinsAnEapTlsNetworkWithCertificatesFromTheStore) {
  const std::string status = Join(pki_.ca.cert);
  EXPECT_EQ(lines_,
            (std::vector<std::string>{"install-ca: ok", "install-client: ok", "add: ok", "ssid: ok",
                                      "security: ok", "identity: ok", "client-cert: ok",
                                      "root-ca-escaping: EINVAL", "root-ca: ok",
                                      "set: device-7 device radius-ca", "enable: ok"}));
  EXPECT_NE(status.find("EAP state=SUCCESS"), std::string::npos) << status << log_;
  EXPECT_NE(status.find("selectedMethod=13 (EAP-TLS)"), std::string::npos) << status;
  ASSERT_FALSE(diagnostics_);  // it never failed
  EXPECT_EQ(diagnostics_.error(), ENODEV);
}

TEST_F(EapTlsTest, ARootCaThatDidNotIssueTheServersCertificateFailsTheHandshake) {
  const auto other = aspis::testing::MakeRoot(pki_.now);
  const std::string status = Join(other.cert);
  EXPECT_EQ(lines_.back(), "enable: ok");
  EXPECT_NE(status.find("EAP state=FAILURE"), std::string::npos) << status << log_;
  EXPECT_NE(log_.find("CTRL-EVENT-EAP-TLS-CERT-ERROR"), std::string::npos) << log_;
}

TEST_F(EapTlsTest, TheAppReadsWhyTheServersCertificateFailedInTheNetworksDiagnostics) {
  const auto other = aspis::testing::MakeRoot(pki_.now);
  const std::string status = Join(other.cert, "diagnose");
  EXPECT_NE(status.find("EAP state=FAILURE"), std::string::npos) << status << log_;
  // Authentication failed (5) on the server's chain, at its root (depth 1), which is not the one
  // the app installed (X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, 19). The wired port never lets the
  // device go, so wpa_supplicant does not hold the network back.
  ASSERT_FALSE(lines_.empty());
  EXPECT_EQ(lines_.back(),
            "diagnostics: error 5 cert 19 depth 1 subject /CN=root enabled 1 connected 0 recent 1")
      << log_;
}

// What aspisd's broker answers a hostile app's hand-made request (one the library never sends).
std::string Answer(Broker& broker, const std::string& request) {
  EXPECT_EQ(::send(broker.app_end(), request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  EXPECT_TRUE(broker.Serve());
  std::string answer(4096, '\0');
  const ssize_t got = ::recv(broker.app_end(), answer.data(), answer.size(), 0);
  answer.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  return answer;
}

TEST(BrokerWifiTest, MalformedWifiAndNetworkRequestsAreRefusedNotFollowed) {
  board::Wifi wifi("/nonexistent/wpa_supplicant/wlan0");  // EAGAIN, were it asked
  BrokerGrants grants{.component_id = kApp};
  grants.capabilities.wifi_config = true;
  grants.capabilities.network_config = true;
  grants.wifi = &wifi;
  auto broker = Broker::Create(grants, nullptr);
  ASSERT_TRUE(broker) << broker.error().message();
  EXPECT_NE(Answer(*broker, R"({"call":"wifi.set"})").find(R"("error":"EPERM")"),
            std::string::npos);
  EXPECT_NE(Answer(*broker, R"({"call":"wifi.set","field":"security"})").find("EPERM"),
            std::string::npos);
  // An ID that would wrap to -1 ("every network") is no network.
  EXPECT_NE(Answer(*broker, R"({"call":"wifi.forget","id":18446744073709551615})")
                .find(R"("error":"ENOENT")"),
            std::string::npos);
  EXPECT_NE(Answer(*broker, R"({"call":"wifi.set","id":0,"field":"security","value":258})")
                .find(R"("error":"EINVAL")"),
            std::string::npos);
  EXPECT_NE(Answer(*broker, R"({"call":"networking.config.state"})").find(R"("error":"ENOENT")"),
            std::string::npos);
  // Its twin reaches wpa_supplicant (absent here: EAGAIN).
  EXPECT_NE(Answer(*broker, R"({"call":"wifi.forget","id":0})").find(R"("error":"EAGAIN")"),
            std::string::npos);
}

TEST_F(ApplibsTest, AnAppForgetsTheWifiNetworkItStored) {
  aspis::testing::WpaSupplicant wpa(dir_ / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  parts_.wifi = &wifi;
  Run({"wifi-configure"}, R"({"WifiConfig": true})");
  const auto lines = UntilDone();
  ASSERT_GE(lines.size(), 2U);
  EXPECT_EQ(lines[lines.size() - 2], "forget: ok");
  EXPECT_EQ(lines.back(), "count: 0");
}

TEST_F(ApplibsTest, WifiWithoutWifiConfigIsRefusedBeforeWpaSupplicantHearsOfIt) {
  aspis::testing::WpaSupplicant wpa(dir_ / "wpa");
  ASSERT_TRUE(wpa.Ready());
  board::Wifi wifi(wpa.control());
  parts_.wifi = &wifi;
  Run({"wifi"}, R"({})");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"wifi-add: EACCES", "wifi-eap-tls: EACCES",
                                      "wifi-identity: EACCES", "certstore-count: EACCES"}));
  const auto stored = wifi.Stored();
  ASSERT_TRUE(stored);
  EXPECT_TRUE(stored->empty());
}

TEST_F(ApplibsTest, WifiAndTheCertificateStoreWithoutTheirCapabilitiesAreEacces) {
  Run({"wifi"}, R"({"WifiConfig": true})");
  EXPECT_EQ(UntilDone(),
            (std::vector<std::string>{"wifi-add: EOPNOTSUPP", "wifi-eap-tls: EACCES",
                                      "wifi-identity: EACCES", "certstore-count: EACCES"}));
}

// The cloud the telemetry sample posts to: HTTPS on 127.0.0.1 with a certificate of the platform
// root, taking a post only from a client whose certificate the tenant CA issued (the handshake
// verified its chain to the platform root); what it took, as "<client's name> <body>".
class TelemetryCloud {
 public:
  TelemetryCloud() {
    // Every certificate and PEM is made once, before the server's thread starts.
    for (const bool other_tenant : {false, true}) {
      credentials_[other_tenant] = Credentials("device-7", other_tenant);
    }
    server_ca_pem_ = *root_.cert.ToPem();
    service::http::Router router;
    router.Add("POST", "/telemetry", [this](const service::http::Request& r) {
      if (!r.client_certificate ||
          r.client_certificate->IssuerCommonName() != tenant_ca_.cert.SubjectCommonName()) {
        return service::http::Response::Text(401, "not a device of the tenant");
      }
      const std::lock_guard lock(mutex_);
      posts_.push_back(r.client_certificate->SubjectCommonName() + " " + r.body);
      return service::http::Response::Text(200, "ok");
    });
    const std::vector<crypto::Certificate> chain{server_.cert};
    const std::vector<crypto::Certificate> client_roots{root_.cert};
    auto server = service::http::Server::Start(
        {.tls = *crypto::tls::ServerContext(chain, server_.key, client_roots), .threads = 1},
        std::move(router));
    EXPECT_TRUE(server) << server.error().message();
    if (server) http_ = std::move(*server);
  }

  std::string Url() const {
    return "https://127.0.0.1:" + std::to_string(http_->port()) + "/telemetry";
  }
  const std::string& ServerCaPem() const { return server_ca_pem_; }
  // The app certificate the tenant CA (or, `other_tenant`, another tenant's CA under the same
  // root) issued device-7, with its chain, and its key (PEM).
  const std::pair<std::string, std::string>& AppCredentials(bool other_tenant) const {
    return credentials_[other_tenant];
  }
  std::vector<std::string> Posts() {
    const std::lock_guard lock(mutex_);
    return posts_;
  }

 private:
  static Clock::TimePoint Now() { return SystemClock().Now(); }

  std::pair<std::string, std::string> Credentials(const std::string& name,
                                                  bool other_tenant) const {
    const aspis::testing::Issuer& ca = other_tenant ? other_tenant_ca_ : tenant_ca_;
    const auto key = *crypto::PrivateKey::GenerateP256();
    // Half the CA's lifetime: made moments after the CA, it may not outlive it by a second.
    const auto leaf = *crypto::Issue(ca.cert, ca.key, key.Public(),
                                     {.common_name = name,
                                      .not_before = Now() - std::chrono::hours(1),
                                      .lifetime = std::chrono::hours(12),
                                      .client_auth = true});
    return {*leaf.ToPem() + *ca.cert.ToPem(), *key.ToPem()};
  }

  aspis::testing::Issuer root_ = aspis::testing::MakeRoot(Now());
  aspis::testing::Issuer tenant_ca_ = aspis::testing::MakeTenantCa(root_, "telemetry", Now());
  aspis::testing::Issuer other_tenant_ca_ = aspis::testing::MakeTenantCa(root_, "other", Now());
  aspis::testing::Issuer server_ = [this] {
    auto key = *crypto::PrivateKey::GenerateP256();
    auto cert = *crypto::Issue(root_.cert, root_.key, key.Public(),
                               {.common_name = "cloud",
                                .not_before = Now() - std::chrono::hours(1),
                                .lifetime = std::chrono::hours(24),
                                .server_auth = true,
                                .san_ips = {"127.0.0.1"}});
    return aspis::testing::Issuer{key, cert};
  }();
  std::array<std::pair<std::string, std::string>, 2> credentials_;
  std::string server_ca_pem_;
  std::mutex mutex_;
  std::vector<std::string> posts_;
  std::unique_ptr<service::http::Server> http_;
};

class TelemetryTest : public ApplibsTest {
 protected:
  // Installs the telemetry sample's binary as the operator would: their cloud's host allowed,
  // their tenant named, the cloud's CA in the package; then starts it.
  void RunTelemetry(const std::string& tenant) {
    const std::string component = "a4c2e6f8-3b5d-4f7a-8c9e-1d2f3a4b5c6d";
    const fs::path version = parts_.apps_dir / component / "image-1";
    fs::create_directories(version / "bin");
    fs::create_directories(version / "certs");
    fs::copy_file(fs::path(ASPIS_SAMPLE_APPS) / "telemetry" / "bin" / "app",
                  version / "bin" / "app");
    std::ofstream(version / "certs" / "cloud-ca.pem") << cloud_.ServerCaPem();
    std::ofstream(version / "app_manifest.json")
        << R"({"SchemaVersion": 1, "Name": "telemetry", "ComponentId": ")" << component
        << R"(", "EntryPoint": "/bin/app", "CmdArgs": [")" << cloud_.Url()
        << R"(", "1", "certs/cloud-ca.pem"], "Capabilities": {"I2cMaster": ["ISU2"],
        "AllowedConnections": ["127.0.0.1"], "DeviceAuthentication": ")"
        << tenant << R"("}})";
    fs::create_directory_symlink("image-1", parts_.apps_dir / component / "current");
    StartApps();
  }

  // The device attested: its app certificate is issued (by another tenant's CA, for a device
  // that is not the cloud's tenant's).
  void Attested(bool other_tenant = false) {
    const auto& [certificate, key] = cloud_.AppCredentials(other_tenant);
    ASSERT_TRUE(file::WriteDurably(parts_.app_certificate, AsBytes(certificate), 0600));
    ASSERT_TRUE(file::WriteDurably(parts_.app_key, AsBytes(key), 0600));
    tenant_ = kTenant;
  }

  // The sample's next line about a post.
  std::string NextPost() {
    for (std::string line; !(line = Line()).empty();) {
      if (line.starts_with("telemetry: post")) return line;
    }
    return "";
  }

  TelemetryCloud cloud_;
};

TEST_F(TelemetryTest, TheSamplePostsTheSensorsReadingWithTheDeviceCertificate) {
  Attested();
  RunTelemetry(kTenant);
  EXPECT_EQ(NextPost(), R"(telemetry: posted {"acceleration_mg": [0, 0, 1000]}, HTTP 200)");
  const auto posts = cloud_.Posts();
  ASSERT_FALSE(posts.empty());
  EXPECT_EQ(posts.front(), R"(device-7 {"acceleration_mg": [0, 0, 1000]})");
}

TEST_F(TelemetryTest, ADeviceOfAnotherTenantIsRefusedByTheCloud) {
  Attested(true);
  RunTelemetry(kTenant);
  EXPECT_EQ(NextPost(), R"(telemetry: posted {"acceleration_mg": [0, 0, 1000]}, HTTP 401)");
  EXPECT_TRUE(cloud_.Posts().empty());
}

TEST_F(TelemetryTest, TheSampleNamingAnotherTenantGetsNoCertificateAndPostsNothing) {
  Attested();
  RunTelemetry("11111111-2222-4333-8444-555555555555");
  EXPECT_TRUE(NextPost().starts_with("telemetry: post failed: "));
  EXPECT_TRUE(cloud_.Posts().empty());
}

// The CPUs this process may run on but `kept`, as the app prints them ("1,2,3"), or all of them
// when that leaves none.
std::string OtherCpus(int kept) {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(::sched_getaffinity(0, sizeof(set), &set), 0);
  std::string all;
  std::string others;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &set)) continue;
    all += (all.empty() ? "" : ",") + std::to_string(cpu);
    if (cpu != kept) others += (others.empty() ? "" : ",") + std::to_string(cpu);
  }
  return others.empty() ? all : others;
}

TEST_F(ApplibsTest, ARealTimeAppRunsPinnedUnderSchedFifoAndCannotUnpinItself) {
  parts_.real_time_cpus = std::vector<int>{0};
  Install(kRealTime, "scheduled", {"schedule"}, R"({})", true);
  StartApps();
  EXPECT_EQ(Until("done"),
            (std::vector<std::string>{"policy: fifo", "cpus: 0", "set-fifo-90: EPERM",
                                      "set-affinity: EPERM", "sched-core: EPERM"}));
  const auto refused = [&] {
    const auto reports = Reports();
    return std::any_of(reports.begin(), reports.end(), [](const std::string& r) {
      return r.find("sched_setaffinity") != std::string::npos;
    });
  };
  for (int i = 0; i < 500 && !refused(); ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_TRUE(refused());
}

TEST_F(ApplibsTest, ADefaultAppRunsOffTheRealTimeCpuUnderTheNormalPolicyAndStaysThere) {
  parts_.real_time_cpus = std::vector<int>{0};
  Run({"schedule"}, R"({})");
  EXPECT_EQ(UntilDone(), (std::vector<std::string>{"policy: other", "cpus: " + OtherCpus(0),
                                                   "set-fifo-90: EPERM", "set-affinity: ok",
                                                   "sched-core: EPERM"}));
}

TEST_F(ApplibsTest, ASecondRealTimeAppFindsNoFreeCpuAndDoesNotStart) {
  parts_.real_time_cpus = std::vector<int>{0};
  Install(kRealTime, "first", {"schedule"}, R"({})", true);
  Install(kApp, "second", {"schedule"}, R"({})", true);
  StartApps();
  EXPECT_EQ(Until("done").front(), "policy: fifo");
  const auto second = manager_->Status(kApp);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->state, "failed");
  EXPECT_EQ(second->last_exit, "could not start: no CPU kept for real-time apps is free");
}

TEST_F(ApplibsTest, TheRtEchoSampleGetsItsMessagesAnsweredByItsRealTimeApp) {
  InstallSample("rt-echo", "3f6a2d1c-7b4e-4c8a-9d5f-0e1a2b3c4d5e");
  InstallSample("rt-echo-rt", "8b2e4f6a-1c3d-4e5f-a7b9-c0d1e2f3a4b5");
  StartApps();
  // The first hellos may reach the real-time app before it runs; one soon comes back.
  bool answered = false;
  for (int i = 0; i < 20 && !answered; ++i) {
    answered = Line().starts_with(R"(rt-echo: the real-time app answered "HELLO )");
  }
  EXPECT_TRUE(answered);
}

// Plays rt-echo-rt's firmware on a coprocessor: answers each message on the core's endpoint with
// the same header and the payload in capitals, until `stop`.
void EchoFirmware(aspis::testing::FakeRemoteproc& core, const std::atomic<bool>& stop) {
  while (!stop) {
    const Fd endpoint = core.firmware();
    pollfd ready{endpoint.get(), POLLIN, 0};
    if (endpoint.get() < 0 || ::poll(&ready, 1, 10) != 1) {
      std::this_thread::sleep_for(milliseconds(10));
      continue;
    }
    std::array<char, kIntercoreHeader + kMaxIntercorePayload> message{};
    const ssize_t got = ::recv(endpoint.get(), message.data(), message.size(), MSG_DONTWAIT);
    if (got <= static_cast<ssize_t>(kIntercoreHeader)) continue;
    std::transform(message.begin() + kIntercoreHeader, message.begin() + got,
                   message.begin() + kIntercoreHeader,
                   [](char c) { return static_cast<char>(std::toupper(c)); });
    (void)::send(endpoint.get(), message.data(), static_cast<std::size_t>(got), MSG_NOSIGNAL);
  }
}

TEST_F(ApplibsTest, TheRtEchoSampleTalksToItsRealTimeAppOnACoprocessor) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", dir_ / "lib" / "firmware");
  parts_.coprocessors = {
      {.name = "M4",
       .remoteproc = core.remoteproc(),
       .firmware_dir = core.firmware_dir(),
       .dev_dir = core.dev_dir(),
       .open_endpoint = [&core](const fs::path& path,
                                const fs::path& /*sysfs*/) { return core.Open(path); },
       .poll_interval = milliseconds(10)}};
  constexpr char kRtEchoRt[] = "8b2e4f6a-1c3d-4e5f-a7b9-c0d1e2f3a4b5";
  InstallSample("rt-echo", "3f6a2d1c-7b4e-4c8a-9d5f-0e1a2b3c4d5e");
  InstallSample("rt-echo-rt", kRtEchoRt);
  std::atomic<bool> stop = false;
  std::thread firmware([&] { EchoFirmware(core, stop); });
  StartApps();
  bool answered = false;
  for (int i = 0; i < 20 && !answered; ++i) {
    answered = Line().starts_with(R"(rt-echo: the real-time app answered "HELLO )");
  }
  EXPECT_TRUE(answered);
  // The core runs the real-time app's image, which is no process of Linux's.
  std::ifstream image(parts_.apps_dir / kRtEchoRt / "current" / "bin" / "app", std::ios::binary);
  EXPECT_EQ(core.loaded(), std::string(std::istreambuf_iterator<char>(image), {}));
  const auto status = manager_->Status(kRtEchoRt);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->state, "running");
  EXPECT_EQ(status->pid, 0);
  stop = true;
  firmware.join();
  manager_.reset();
  EXPECT_EQ(core.State(), "offline");
}

TEST_F(ApplibsTest, ARealTimeAppWhoseCoprocessorCrashesIsReportedAndStartedAgain) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", dir_ / "lib" / "firmware");
  parts_.coprocessors = {{.name = "M4",
                          .remoteproc = core.remoteproc(),
                          .firmware_dir = core.firmware_dir(),
                          .dev_dir = core.dev_dir(),
                          .poll_interval = milliseconds(10)}};
  Install(kRealTime, "on-core", {}, R"({})", true);
  StartApps();
  const auto state = [&] { return manager_->Status(kRealTime).value_or(AppStatus()).state; };
  for (int i = 0; i < 500 && state() != "running"; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  core.Crash();
  const auto restarts = [&] { return manager_->Status(kRealTime).value_or(AppStatus()).restarts; };
  for (int i = 0; i < 500 && (restarts() < 1 || state() != "running"); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(restarts(), 1);
  EXPECT_EQ(state(), "running");
  EXPECT_TRUE(Has(Reports(), "exit: ended on coprocessor M4, that crashed"));
  // The kernel stops only a running core: the crashed one was recovered, stopped, started again.
  EXPECT_EQ(core.starts(), 3);
  manager_.reset();  // while the core's kernel still answers
}

TEST_F(ApplibsTest, ASecondRealTimeAppFindsNoFreeCoprocessorAndDoesNotStart) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", dir_ / "lib" / "firmware");
  parts_.coprocessors = {{.name = "M4",
                          .remoteproc = core.remoteproc(),
                          .firmware_dir = core.firmware_dir(),
                          .dev_dir = core.dev_dir()}};
  Install(kRealTime, "first", {}, R"({})", true);
  Install(kApp, "second", {}, R"({})", true);
  StartApps();
  const auto second = manager_->Status(kApp);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->last_exit, "could not start: no coprocessor is free");
  EXPECT_EQ(core.starts(), 1);
  manager_.reset();
}

TEST_F(ApplibsTest, ARealTimeAppWhoseEntryPointLeadsOutOfItsImageIsNotLoaded) {
  aspis::testing::FakeRemoteproc core(dir_ / "sys", dir_ / "lib" / "firmware");
  parts_.coprocessors = {{.name = "M4",
                          .remoteproc = core.remoteproc(),
                          .firmware_dir = core.firmware_dir(),
                          .dev_dir = core.dev_dir()}};
  std::ofstream(dir_ / "secret") << "\x7f"
                                    "ELF, not the app's";
  Install(kRealTime, "leaks", {}, R"({})", true);
  const fs::path entry = parts_.apps_dir / kRealTime / "image-1" / "bin" / "app";
  fs::remove(entry);
  fs::create_symlink(dir_ / "secret", entry);
  StartApps();
  const auto leaks = manager_->Status(kRealTime);
  ASSERT_TRUE(leaks);
  EXPECT_EQ(leaks->last_exit, "could not start: its entry point is not a file in its image");
  EXPECT_EQ(core.starts(), 0);
  // Its twin, whose entry point is a file of its image, loads.
  manager_->Stop(kRealTime);
  Install(kApp, "inside", {}, R"({})", true);
  ASSERT_TRUE(manager_->Start(kApp));
  for (int i = 0; i < 500 && core.starts() < 1; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(core.starts(), 1);
  manager_.reset();
}

TEST_F(ApplibsTest, AHighLevelAppHasNoInterCoreChannel) {
  Run({"echo"}, R"({})");
  EXPECT_EQ(Line(), "channel: EACCES");
}

}  // namespace
}  // namespace aspis::device::apps
