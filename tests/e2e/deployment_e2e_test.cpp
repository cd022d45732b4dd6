// Deployments end to end, as operators and devices do them: the platform packs and publishes an OS
// release to Retail Evaluation, a tenant publishes an app to Field Test, and real aspisd devices
// check in, fetch their targets over mutual TLS, verify them and report them downloaded, while a
// device in Development gets no app.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "device/daemon/daemon.hpp"
#include "e2e/platform.hpp"
#include "support/temp_dir.hpp"
#include "wire/operator_api.hpp"

namespace aspis {
namespace {

namespace fs = std::filesystem;
using e2e::DeviceProcess;
using e2e::ReadText;
using e2e::ServiceProcess;
using e2e::WriteText;
using json::Json;
using namespace std::chrono_literals;
using testing::TempDir;

// The hostile test app's program (tests/apps/hostile_app.c).
std::string HostileApp() {
  auto bytes = file::Read(ASPIS_HOSTILE_APP, std::size_t{16} << 20);
  return bytes ? std::string(AsString(*bytes)) : std::string();
}

class DeploymentEndToEnd : public e2e::PlatformEndToEnd {
 protected:
  std::unique_ptr<DeviceProcess> Device(const std::string& name, const std::string& group,
                                        const std::vector<std::string>& options = {}) {
    auto device = std::make_unique<DeviceProcess>(dir_ / name, *service_, "", dir_ / "rootfs",
                                                  dir_ / "rootfs/etc/aspis/trust-bundle.pem");
    // The board definition the OS release measured.
    fs::copy_file(dir_ / "board.json", dir_ / name / "board.json",
                  fs::copy_options::overwrite_existing);
    EXPECT_EQ(Run({"device", "claim", "--tenant", tenant_, "--device", device->id()}), 0);
    EXPECT_EQ(Run({"device", "update", "--tenant", tenant_, "--device", device->id(),
                   "--device-group", group}),
              0);
    device->Start(options);
    return device;
  }

  // Waits until the device reported every one of `count` targets in `state`.
  static Json WaitForTargets(const DeviceProcess& device, std::size_t count,
                             const std::string& state) {
    return device.WaitFor([&](const Json& s) {
      if (!s.is_object() || !s.contains("targets") || s["targets"].size() != count) return false;
      for (const auto& t : s["targets"]) {
        if (t.value("state", "") != state) return false;
      }
      return true;
    });
  }

  // The tenant's publisher keys under an offline root, uploaded.
  void TrustPublisher() {
    ASSERT_EQ(Run({"key", "generate", "--destination", Path("root.key")}), 0);
    ASSERT_EQ(Run({"key", "generate", "--destination", Path("publisher.key")}), 0);
    ASSERT_EQ(Run({"publisher-key-set", "create", "--tenant", tenant_, "--root-key",
                   Path("root.key.pub"), "--publisher-key", Path("publisher.key.pub"),
                   "--publisher-key", ASPIS_SAMPLE_APPS "/publisher.key.pub", "--sign-with",
                   Path("root.key"), "--set-version", "1", "--destination", Path("keys.json")}),
              0);
    ASSERT_EQ(
        Run({"publisher-key-set", "update", "--tenant", tenant_, "--file", Path("keys.json")}), 0);
  }

  // Waits up to 60 s for `predicate` to hold of what `aspis dev board <verb>` shows.
  bool BoardShows(const DeviceProcess& device, const std::string& verb,
                  const std::function<bool(const Json&)>& predicate) {
    for (const auto deadline = std::chrono::steady_clock::now() + 60s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
      if (predicate(Cli({"dev", "board", verb, "--socket", device.Socket()}))) return true;
    }
    return false;
  }

  // Packs and adds version `version` of the app blink whose program is `program` (and, when
  // given, a data file); its image ID.
  std::string AddApp(const std::string& version, const std::string& program,
                     const std::string& data = "", const std::string& cmd_args = "[]",
                     const std::string& capabilities = "{}",
                     const std::vector<std::string>& pack_options = {}) {
    const auto tree = dir_ / ("app-" + version);
    fs::create_directories(tree / "bin");
    if (!data.empty()) WriteText(tree / "data.bin", data);
    WriteText(tree / "bin/app", program);
    fs::permissions(tree / "bin/app", fs::perms::owner_all);
    WriteText(tree / "app_manifest.json",
              R"({"SchemaVersion": 1, "Name": "blink", "ComponentId": )"
              R"("2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b", "EntryPoint": "/bin/app", )"
              R"("CmdArgs": )" +
                  cmd_args + R"(, "Capabilities": )" + capabilities + "}");
    const std::string package = Path("blink-" + version + ".aspkg");
    std::vector<std::string> pack = {"image-package", "pack-application",    "--package-directory",
                                     tree.string(),   "--destination",       package,
                                     "--key",         Path("publisher.key"), "--version",
                                     version};
    pack.insert(pack.end(), pack_options.begin(), pack_options.end());
    EXPECT_EQ(Run(pack), 0);
    return Cli({"image", "add", "--tenant", tenant_, "--image", package}).value("id", "");
  }

  std::unique_ptr<DeviceProcess> AppDevice(int network);

  // The deployment `id` once it paused, or as it stands after 60 s.
  wire::api::Deployment WaitForPause(const std::string& id) {
    wire::api::Deployment shown;
    for (const auto deadline = std::chrono::steady_clock::now() + 60s;
         std::chrono::steady_clock::now() < deadline && shown.state != "paused";
         std::this_thread::sleep_for(200ms)) {
      shown = wire::api::DeploymentFrom(
                  Cli({"deployment", "show", "--tenant", tenant_, "--deployment-id", id}))
                  .value_or(wire::api::Deployment{});
    }
    return shown;
  }

  // The state `device` last reported for `image`.
  static std::string StateOf(const DeviceProcess& device, const std::string& image) {
    const Json status = device.Status();
    if (!status.is_object()) return "";  // not up yet
    for (const auto& t : status.value("targets", Json::array())) {
      if (t.value("image_id", "") == image) return t.value("state", "");
    }
    return "";
  }
};

constexpr char kBlink[] = "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b";

TEST_F(DeploymentEndToEnd, ABadAppRolledOutInStagesIsRevertedWhereverItWentAndTheRolloutPauses) {
  BuildRootfs("rootfs", "aspis os 25.01");
  PublishOs("rootfs", "25.01", 1);
  TrustPublisher();
  ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  const std::string group = "Coffee/Field Test";
  const std::vector<std::string> often = {"--check-in-interval", "1"};
  std::vector<std::unique_ptr<DeviceProcess>> devices;
  for (const auto* name : {"d1", "d2", "d3"}) devices.push_back(Device(name, group, often));

  // A good version, in two stages: half the group, then the rest once the first half installed.
  const std::string good = AddApp("1.0", "#!/bin/sh\necho blink\n");
  const Json first = Cli({"device-group", "deployment", "create", "--tenant", tenant_,
                          "--device-group", group, "--images", good, "--stages", "50"});
  ASSERT_EQ(first.value("state", ""), "rolling");
  for (const auto& d : devices) WaitForTargets(*d, 1, "installed");
  const auto rolled = wire::api::DeploymentFrom(
      Cli({"deployment", "show", "--tenant", tenant_, "--deployment-id", first.value("id", "")}));
  ASSERT_TRUE(rolled) << rolled.error().message();
  EXPECT_EQ(rolled->state, "complete");
  ASSERT_EQ(rolled->stages.size(), 2u);
  EXPECT_EQ(rolled->stages[0].devices, 2);
  EXPECT_EQ(rolled->stages[1].devices, 1);

  // A bad version (built for another machine) in the same two stages, pausing on any failure.
  std::string elf(64, '\0');
  elf.replace(0, 4,
              "\x7f"
              "ELF");
  elf[4] = 2;    // 64-bit
  elf[5] = 1;    // little-endian
  elf[16] = 3;   // a shared object
  elf[18] = 22;  // IBM S/390
  const std::string bad = AddApp("2.0", elf);
  const std::string id =
      Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group", group,
           "--images", bad, "--stages", "50", "--failure-threshold", "0"})
          .value("id", "");
  const wire::api::Deployment shown = WaitForPause(id);
  ASSERT_EQ(shown.state, "paused") << shown.reason;
  EXPECT_NE(shown.reason.find("ELF machine 22"), std::string::npos) << shown.reason;
  ASSERT_EQ(shown.stages.size(), 1u) << "the second stage never opened";
  EXPECT_EQ(shown.stages[0].devices, 2);
  std::size_t took = 0;
  for (const auto& d : devices) {
    const auto current = d->dir() / "state/apps" / kBlink / "current";
    const Json targeted =
        Cli({"device", "image", "list-targeted", "--tenant", tenant_, "--device", d->id()});
    ASSERT_EQ(targeted.size(), 1u);
    if (targeted[0].value("id", "") == good) {
      EXPECT_EQ(StateOf(*d, good), "installed");
      EXPECT_EQ(fs::read_symlink(current), good) << "a device outside the stage keeps 1.0";
      continue;
    }
    ++took;
    d->WaitFor([&](const Json&) { return StateOf(*d, bad) == "reverted"; });
    EXPECT_EQ(fs::read_symlink(current), good) << "reverted to 1.0 on " << d->id();
    EXPECT_FALSE(fs::exists(d->dir() / "state/apps" / kBlink / bad));
  }
  EXPECT_EQ(took, 2u);

  // Stopped: every device is back on the deployment before, 1.0.
  ASSERT_EQ(Run({"deployment", "stop", "--tenant", tenant_, "--deployment-id", id}), 0);
  for (const auto& d : devices) {
    WaitForTargets(*d, 1, "installed");
    EXPECT_EQ(StateOf(*d, good), "installed");
  }
  for (const auto& d : devices) EXPECT_EQ(d->Stop(), 0);
}

TEST_F(DeploymentEndToEnd, AnAppVersionWhosePeripheralsShareAPinIsRevertedWithTheReason) {
  BuildRootfs("rootfs", "aspis os 25.01");
  PublishOs("rootfs", "25.01", 1);
  TrustPublisher();
  ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  const std::string group = "Coffee/Field Test";
  auto device = Device("d1", group, {"--check-in-interval", "1"});
  // Named through the sample appliance's hardware definition, as Azure Sphere's samples are.
  const std::vector<std::string> sample = {"--hardware-definitions", ASPIS_HARDWARE_DEFINITIONS,
                                           "--target-definition-filename", "sample_appliance.json"};
  const std::string led = AddApp("1.0", "#!/bin/sh\necho blink\n", "", "[]",
                                 R"({"Gpio": ["$SAMPLE_LED", "$SAMPLE_BUTTON_1"]})", sample);
  Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group", group,
       "--images", led});
  WaitForTargets(*device, 1, "installed");
  EXPECT_EQ(StateOf(*device, led), "installed");

  // The LED's GPIO and the PWM controller that drives it: pin 8 twice.
  const std::string clash =
      AddApp("2.0", "#!/bin/sh\necho dim\n", "", "[]",
             R"({"Gpio": ["$SAMPLE_LED"], "Pwm": ["$SAMPLE_LED_PWM_CONTROLLER"]})", sample);
  const std::string id =
      Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group", group,
           "--images", clash, "--stages", "100", "--failure-threshold", "0"})
          .value("id", "");
  const wire::api::Deployment shown = WaitForPause(id);
  ASSERT_EQ(shown.state, "paused") << shown.reason;
  EXPECT_NE(
      shown.reason.find("Gpio 8 and Pwm PWM-CONTROLLER-2 share pin 8 of the board mt3620-sim"),
      std::string::npos)
      << shown.reason;
  device->WaitFor([&](const Json&) { return StateOf(*device, clash) == "reverted"; });
  EXPECT_EQ(fs::read_symlink(device->dir() / "state/apps" / kBlink / "current"), led);
  EXPECT_EQ(device->Stop(), 0);
}

TEST_F(DeploymentEndToEnd, AnAppUpdateTravelsAsADeltaFromTheVersionTheDeviceRuns) {
  BuildRootfs("rootfs", "aspis os 25.01");
  PublishOs("rootfs", "25.01", 1);
  TrustPublisher();
  ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  const std::string group = "Coffee/Field Test";
  std::mt19937 random(7);
  std::string data(std::size_t{4} << 20, '\0');
  for (auto& c : data) c = static_cast<char>(random());
  const std::string old_app = AddApp("1.0", "#!/bin/sh\necho 1.0\n", data);
  ASSERT_EQ(Run({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                 group, "--images", old_app}),
            0);
  const std::vector<std::string> often = {"--check-in-interval", "1"};
  auto device = Device("d1", group, often);
  WaitForTargets(*device, 1, "installed");
  ASSERT_EQ(device->Stop(), 0);

  // 1.1 changes the program and a few bytes of the data; the service makes the delta from 1.0
  // as soon as 1.1 is deployed.
  data.replace(1000, 5, "1.1.1");
  const std::string new_app = AddApp("1.1", "#!/bin/sh\necho 1.1\n", data);
  ASSERT_EQ(Run({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                 group, "--images", new_app}),
            0);
  const auto deltas = dir_ / "service/data/deltas";
  std::uint64_t delta_size = 0;
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline && delta_size == 0;
       std::this_thread::sleep_for(100ms)) {
    std::error_code none_yet;  // the service makes the directory with the first delta
    for (const auto& entry : fs::directory_iterator(deltas, none_yet)) {
      if (entry.path().extension() == ".json") {
        delta_size = json::Parse(ReadText(entry.path()))
                         .value_or(Json::object())
                         .value("size", std::uint64_t{0});
      }
    }
  }
  const auto full_size = Cli({"image", "show", "--tenant", tenant_, "--image", new_app})
                             .value("size", std::uint64_t{0});
  ASSERT_GT(delta_size, 0u) << "the delta was never made";
  EXPECT_LT(delta_size * 20, full_size) << "a few changed bytes cost little";

  device->Start(often);
  device->WaitFor([&](const Json&) { return StateOf(*device, new_app) == "installed"; });
  EXPECT_NE(ReadText(device->dir() / "aspisd.log").find("rebuilt from a delta"), std::string::npos)
      << "the device took the delta, not the full package";
  const auto installed = device->dir() / "state/apps" / kBlink / new_app;
  const auto rebuilt = file::Read(installed / "data.bin", data.size());
  EXPECT_TRUE(rebuilt && AsString(*rebuilt) == data) << "the rebuilt data is 1.1's";
  EXPECT_EQ(ReadText(installed / "bin/app"), "#!/bin/sh\necho 1.1\n");
  EXPECT_EQ(device->Stop(), 0);
}

TEST_F(DeploymentEndToEnd, OsToRetailEvaluationAndAppToFieldTestReachOnlyTheirDevices) {
  // The platform: an OS and a board package, signed offline, published to Retail Evaluation.
  BuildRootfs("rootfs", "aspis os 25.01");
  const auto published = PublishOs("rootfs", "25.01", 1);
  const std::string& os_image = published.os_image;
  const std::string& board_image = published.board_image;
  ASSERT_EQ(os_image, published.os_package.value("image_id", "?"));
  const Json releases = Cli({"os-release", "list"});
  ASSERT_EQ(releases.size(), 1u);
  EXPECT_EQ(releases[0]["components"].value("os", ""),
            published.os_package["measurements"].value("os", "?"))
      << "the reference values are the package's";

  // The tenant: publisher keys under an offline root, an app, a product, a deployment.
  ASSERT_EQ(Run({"key", "generate", "--destination", Path("root.key")}), 0);
  ASSERT_EQ(Run({"key", "generate", "--destination", Path("publisher.key")}), 0);
  ASSERT_EQ(Run({"publisher-key-set", "create", "--tenant", tenant_, "--root-key",
                 Path("root.key.pub"), "--publisher-key", Path("publisher.key.pub"), "--sign-with",
                 Path("root.key"), "--set-version", "1", "--destination", Path("keys.json")}),
            0);
  ASSERT_EQ(Run({"publisher-key-set", "update", "--tenant", tenant_, "--file", Path("keys.json")}),
            0);
  fs::create_directories(dir_ / "app/bin");
  WriteText(dir_ / "app/bin/app", "#!/bin/sh\necho hi\n");
  fs::permissions(dir_ / "app/bin/app", fs::perms::owner_all);
  WriteText(dir_ / "app/app_manifest.json",
            R"({"SchemaVersion": 1, "Name": "blink", "ComponentId": )"
            R"("2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b", "EntryPoint": "/bin/app", )"
            R"("Capabilities": {}})");
  ASSERT_EQ(Run({"image-package", "pack-application", "--package-directory", Path("app"),
                 "--destination", Path("blink.aspkg"), "--key", Path("publisher.key")}),
            0);
  const std::string app =
      Cli({"image", "add", "--tenant", tenant_, "--image", Path("blink.aspkg")}).value("id", "");
  ASSERT_FALSE(app.empty());
  ASSERT_FALSE(Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty());
  for (const std::string group : {"Coffee/Field Test", "Coffee/Development"}) {
    ASSERT_EQ(Run({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                   group, "--images", app}),
              0);
  }
  const std::string deployment = Cli({"device-group", "deployment", "list", "--tenant", tenant_,
                                      "--device-group", "Coffee/Field Test"})[0]
                                     .value("id", "");

  // Devices: each gets what its group's feed and policy give it.
  auto evaluating = Device("eval", "Coffee/Field Test OS Evaluation");
  auto field = Device("field", "Coffee/Field Test");
  auto development = Device("dev", "Coffee/Development");
  // The OS and its board are downloaded (this device has no bootloader to install them with);
  // the app (Retail has no OS yet) is installed.
  const Json evaluated = WaitForTargets(*evaluating, 2, "downloaded");
  const Json fielded = WaitForTargets(*field, 1, "installed");
  EXPECT_EQ(fielded["targets"][0].value("image_id", ""), app);
  std::vector<std::string> evaluated_ids;
  for (const auto& t : evaluated["targets"]) evaluated_ids.push_back(t.value("image_id", ""));
  EXPECT_EQ(evaluated_ids, (std::vector<std::string>{os_image, board_image}));
  const Json developing = development->WaitFor(
      [](const Json& s) { return s.is_object() && s.value("manifest_sequence", 0) >= 1; });
  EXPECT_TRUE(developing["targets"].empty()) << "Development takes no cloud app updates";
  EXPECT_TRUE(fs::is_empty(dir_ / "dev/state/staging"));
  // The staged packages are the very images: byte for byte what was published.
  EXPECT_EQ(
      ReadText(dir_ / "field/state/staging" /
               (app + "-" +
                Cli({"image", "show", "--tenant", tenant_, "--image", app}).value("sha256", "") +
                ".aspkg")),
      ReadText(dir_ / "blink.aspkg"));
  // The app runs from its own version directory, named by its image.
  EXPECT_EQ(
      fs::read_symlink(dir_ / "field/state/apps/2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b/current"),
      app);
  EXPECT_TRUE(
      fs::exists(dir_ / "field/state/apps/2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b" / app / "bin/app"));

  // The operator sees it: each device's pin and targets, and the deployment's progress.
  const auto reported = [&](const DeviceProcess& d, std::size_t count, const std::string& state) {
    for (const auto deadline = std::chrono::steady_clock::now() + 30s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
      const Json shown = Cli({"device", "show", "--tenant", tenant_, "--device", d.id()});
      const Json images = shown.value("images", Json::array());
      if (images.size() == count && std::all_of(images.begin(), images.end(), [&](const Json& i) {
            return i.value("state", "") == state;
          })) {
        return shown;
      }
    }
    ADD_FAILURE() << "the service never saw " << count << " targets " << state << " on " << d.id();
    return Json::object();
  };
  const Json field_view = reported(*field, 1, "installed");
  EXPECT_EQ(field_view["publisher_root"].value("status", ""), "matches the tenant's");
  EXPECT_EQ(reported(*evaluating, 2, "downloaded")["attestation"].value("verdict", ""), "trusted");
  const auto progress = wire::api::DeploymentFrom(
      Cli({"deployment", "show", "--tenant", tenant_, "--deployment-id", deployment}));
  ASSERT_TRUE(progress) << progress.error().message();
  ASSERT_EQ(progress->progress.size(), 1u);
  EXPECT_EQ(progress->progress[0].installed, 1);
  EXPECT_TRUE(progress->current);

  for (auto* device : {evaluating.get(), field.get(), development.get()}) {
    EXPECT_EQ(device->Stop(), 0);
  }
}

}  // namespace
}  // namespace aspis

namespace aspis {
namespace {

constexpr char kGroup[] = "Coffee/Field Test";

// A device of Coffee/Field Test that runs its apps, checking in every second, with the OS
// published; its apps' resolver on 127.<network>.x.y, an address of this test process's own.
std::unique_ptr<DeviceProcess> DeploymentEndToEnd::AppDevice(int network) {
  BuildRootfs("rootfs", "aspis os 25.01");
  PublishOs("rootfs", "25.01", 1);
  TrustPublisher();
  if (Cli({"product", "create", "--tenant", tenant_, "--name", "Coffee"}).empty()) return nullptr;
  const auto pid = static_cast<unsigned>(::getpid());
  const std::string resolver = "127." + std::to_string(network) + "." +
                               std::to_string((pid >> 8) & 0xff) + "." +
                               std::to_string((pid & 0xff) | 1);
  return Device("d1", kGroup,
                {"--check-in-interval", "1", "--run-apps", "--app-resolver", resolver});
}

// Whether the LED `name` is lit in what `aspis dev board leds` shows.
bool Lit(const Json& leds, const std::string& name) {
  for (const auto& led : leds.value("leds", Json::array())) {
    if (led.value("name", "") == name) return led.value("lit", false);
  }
  return false;
}

TEST_F(DeploymentEndToEnd, AnAppGrantedForceRebootRebootsTheDevice) {
  auto device = AppDevice(87);
  ASSERT_TRUE(device);
  const auto program = file::Read(ASPIS_APPLIBS_APP, std::size_t{16} << 20);
  ASSERT_TRUE(program);
  const std::string app = AddApp("1.0", std::string(AsString(*program)), "", R"(["reboot"])",
                                 R"({"PowerControls": ["ForceReboot"]})");
  ASSERT_FALSE(Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                    kGroup, "--images", app})
                   .empty());
  // aspisd ends for the reboot the app asked for; the simulator's supervisor would boot the
  // board again.
  bool stopping = false;
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       !stopping && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(100ms)) {
    stopping = ReadText(device->dir() / "aspisd.log").find("aspisd stopping for a reboot") !=
               std::string::npos;
  }
  ASSERT_TRUE(stopping) << ReadText(device->dir() / "aspisd.log");
  EXPECT_EQ(device->Stop(), device::kRebootExitCode);
}

TEST_F(DeploymentEndToEnd, TheBlinkSampleDeployedThroughTheServiceLightsAnLedWhileAButtonIsHeld) {
  auto device = AppDevice(86);
  ASSERT_TRUE(device);
  // The build's signed package, as the quickstart deploys it.
  const std::string blink =
      Cli({"image", "add", "--tenant", tenant_, "--image", ASPIS_SAMPLE_APPS "/blink.aspkg"})
          .value("id", "");
  ASSERT_FALSE(blink.empty());
  ASSERT_FALSE(Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                    kGroup, "--images", blink})
                   .empty());
  WaitForTargets(*device, 1, "installed");

  // It blinks LED 1 from PWM controller 2, channel 1, once a second.
  const auto blinking_every = [](std::uint64_t period_ns) {
    return [period_ns](const Json& pwm) {
      for (const auto& c : pwm.value("channels", Json::array())) {
        if (c.value("controller", "") == "PWM-CONTROLLER-2" && c.value("channel", -1) == 1 &&
            c.value("period_ns", std::uint64_t{0}) == period_ns && c.value("enabled", false)) {
          return true;
        }
      }
      return false;
    };
  };
  ASSERT_TRUE(BoardShows(*device, "pwm", blinking_every(1'000'000'000)));
  EXPECT_FALSE(Lit(Cli({"dev", "board", "leds", "--socket", device->Socket()}), "LED2_RED"));

  ASSERT_EQ(Run({"dev", "board", "press", "A", "--socket", device->Socket()}), 0);
  EXPECT_TRUE(BoardShows(*device, "leds", [](const Json& leds) { return Lit(leds, "LED2_RED"); }));
  ASSERT_EQ(Run({"dev", "board", "release", "A", "--socket", device->Socket()}), 0);
  EXPECT_TRUE(BoardShows(*device, "leds", [](const Json& leds) { return !Lit(leds, "LED2_RED"); }));

  // Button B steps the blink rate.
  ASSERT_EQ(Run({"dev", "board", "press", "B", "--socket", device->Socket()}), 0);
  EXPECT_TRUE(BoardShows(*device, "pwm", blinking_every(500'000'000)));
  ASSERT_EQ(Run({"dev", "board", "release", "B", "--socket", device->Socket()}), 0);
  std::ostringstream out, err;
  EXPECT_EQ(cli::Main({"dev", "board", "press", "C", "--socket", device->Socket()}, out, err), 1);
  EXPECT_EQ(err.str(), "aspis: the board mt3620-sim has no button C\n");
}

TEST_F(DeploymentEndToEnd, AnAppsDenialAndCrashReachTheTenantsErrorReportAndTheAppRestarts) {
  auto device = AppDevice(85);
  ASSERT_TRUE(device);
  // It tries to mount (denied), then exits with code 3.
  const std::string crasher = AddApp("1.0", HostileApp(), "", R"(["mount-then-exit", "3"])");
  ASSERT_FALSE(Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                    kGroup, "--images", crasher})
                   .empty());
  WaitForTargets(*device, 1, "installed");

  // The app runs in its sandbox, ends with code 3 and is started again.
  Json apps;
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(200ms)) {
    apps = Cli({"dev", "app", "list", "--socket", device->Socket()});
    const Json list = apps.value("apps", Json::array());
    if (!list.empty() && list[0].value("restarts", 0) >= 1) break;
  }
  ASSERT_EQ(apps.value("apps", Json::array()).size(), 1u) << apps.dump();
  EXPECT_EQ(apps["apps"][0].value("last_exit", ""), "exited with code 3");
  EXPECT_GE(apps["apps"][0].value("restarts", 0), 1);

  // Its crashes, counted, and its denials reach the tenant's error report at the next check-in.
  Json report = Json::array();
  const auto find = [&](const std::string& text) {
    return std::find_if(report.begin(), report.end(), [&](const Json& e) {
      return e.value("description", "").find(text) != std::string::npos;
    });
  };
  const auto reported = [&] {
    return find("exited with code 3") != report.end() && find("syscall: mount") != report.end();
  };
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline && !reported();
       std::this_thread::sleep_for(200ms)) {
    report = Cli({"tenant", "download-error-report", "--tenant", tenant_});
  }
  ASSERT_TRUE(reported()) << report.dump();
  const Json entry = *find("exited with code 3");
  EXPECT_EQ(entry.value("device_id", ""), device->id());
  EXPECT_EQ(entry.value("event_type", ""), "Unplanned");
  EXPECT_EQ(entry.value("event_class", ""), "Application");
  EXPECT_NE(entry.value("description", "").find(std::string("AppExit - component: ") + kBlink),
            std::string::npos);
  EXPECT_GE(entry.value("event_count", 0), 1);
  EXPECT_NE(entry.value("description", "").find("; restarts: "), std::string::npos)
      << "the restart count";
  const Json denial = *find("syscall: mount");
  EXPECT_NE(denial.value("description", "").find(std::string("AppDenial - component: ") + kBlink),
            std::string::npos);
  EXPECT_EQ(denial.value("event_class", ""), "Application");

  // As a spreadsheet would take it, and in the device's own view.
  ASSERT_EQ(Run({"tenant", "download-error-report", "--tenant", tenant_, "--output", "csv"}), 0);
  EXPECT_TRUE(output_.starts_with(
      "device_id,event_type,event_class,event_count,description,start_time,end_time\r\n"))
      << output_;
  EXPECT_NE(output_.find(device->id() + ",Unplanned,Application,"), std::string::npos) << output_;
  const Json shown = Cli({"device", "show", "--tenant", tenant_, "--device", device->id()});
  EXPECT_NE(shown["latest_error_report"].value("description", "").find("AppExit"),
            std::string::npos)
      << shown.dump();
}

TEST_F(DeploymentEndToEnd, AnAppWritesThroughAPipeOfItsOwnAndCannotEraseOrForgeAspisdsLog) {
  auto device = AppDevice(87);
  ASSERT_TRUE(device);
  const auto log = [&] { return ReadText(device->dir() / "aspisd.log"); };
  const std::string app = AddApp("1.0", HostileApp(), "", R"(["stderr", "truncate"])");
  ASSERT_FALSE(Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                    kGroup, "--images", app})
                   .empty());
  WaitForTargets(*device, 1, "installed");
  const std::string first_line = log().substr(0, log().find('\n') + 1);
  ASSERT_FALSE(first_line.empty());
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline &&
       log().find("app blink: sleeping") == std::string::npos;
       std::this_thread::sleep_for(100ms)) {
  }
  const std::string text = log();
  // Its standard error is a pipe aspisd reads: truncating it fails, and what it writes arrives
  // prefixed with its name, never as a line of aspisd's own.
  EXPECT_NE(text.find("app blink: stderr pipe"), std::string::npos) << text;
  EXPECT_NE(text.find("app blink: truncate denied EINVAL"), std::string::npos) << text;
  EXPECT_TRUE(text.starts_with(first_line)) << "the app erased aspisd's log";
  EXPECT_EQ(text.find("\n2030-01-01"), std::string::npos) << "the app forged a line of aspisd's";
  EXPECT_NE(text.find("app blink: 2030-01-01"), std::string::npos) << text;
}

TEST_F(DeploymentEndToEnd, AnAppThatDefersAnUpdateKeepsRunningUntilItAllowsTheUpdate) {
  auto device = AppDevice(86);
  ASSERT_TRUE(device);
  // Version 1 defers any update by an hour, and allows it 3 s after the deferral was granted.
  const std::string v1 =
      AddApp("1.0", HostileApp(), "", R"(["sysevent", "60", "3"])",
             R"({"SystemEventNotifications": true, "SoftwareUpdateDeferral": true})");
  ASSERT_FALSE(Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                    kGroup, "--images", v1})
                   .empty());
  WaitForTargets(*device, 1, "installed");
  const auto log = [&] { return ReadText(device->dir() / "aspisd.log"); };
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       std::chrono::steady_clock::now() < deadline &&
       log().find("app blink: registered") == std::string::npos;
       std::this_thread::sleep_for(100ms)) {
  }
  ASSERT_NE(log().find("app blink: registered"), std::string::npos) << log();

  const std::string v2 = AddApp("2.0", HostileApp(), "", R"(["sleep"])");
  ASSERT_FALSE(Cli({"device-group", "deployment", "create", "--tenant", tenant_, "--device-group",
                    kGroup, "--images", v2})
                   .empty());
  device->WaitFor([&](const Json& s) {
    for (const auto& t : s.is_object() ? s.value("targets", Json::array()) : Json::array()) {
      if (t.value("image_id", "") == v2 && t.value("state", "") == "installed") return true;
    }
    return false;
  });

  // The running version heard of the update, deferred it, and the device installed it only once
  // the app allowed it (an hour before the deferral would have run out).
  const std::string text = log();
  const auto pending = text.find(R"(app blink: event {"event":"UpdateReadyForInstall",)");
  const auto deferred = text.find("app blink: defer allowed");
  const auto waits = text.find("the update waits for the apps");
  const auto resumed = text.find("app blink: resume allowed");
  const auto installed = text.find("2.0: idle -> install");
  ASSERT_NE(pending, std::string::npos) << text;
  ASSERT_NE(deferred, std::string::npos) << text;
  ASSERT_NE(waits, std::string::npos) << text;
  ASSERT_NE(resumed, std::string::npos) << text;
  ASSERT_NE(installed, std::string::npos) << text;
  EXPECT_LT(pending, deferred);
  EXPECT_LT(deferred, resumed);
  EXPECT_LT(waits, installed);
  EXPECT_LT(resumed, installed) << "the device did not wait for the app";

  // aspisd dies: its apps do not run on unwatched.
  const Json apps = Cli({"dev", "app", "list", "--socket", device->Socket()});
  ASSERT_EQ(apps.value("apps", Json::array()).size(), 1u) << apps.dump();
  const int pid = apps["apps"][0].value("pid", 0);
  ASSERT_GT(pid, 0);
  device->Stop(SIGKILL);
  const auto running = [pid] {
    const std::string stat = ReadText("/proc/" + std::to_string(pid) + "/stat");
    const auto state = stat.rfind(") ");
    return state != std::string::npos && stat[state + 2] != 'Z';  // gone, or a zombie
  };
  for (const auto deadline = std::chrono::steady_clock::now() + 30s;
       std::chrono::steady_clock::now() < deadline && running();
       std::this_thread::sleep_for(100ms)) {
  }
  EXPECT_FALSE(running()) << "the app's sandbox outlived aspisd";
}

}  // namespace
}  // namespace aspis
