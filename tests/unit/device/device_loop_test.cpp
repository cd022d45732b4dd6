#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/file.hpp"
#include "crypto/dsse.hpp"
#include "crypto/encoding.hpp"
#include "crypto/sha256.hpp"
#include "device/apps/system_events.hpp"
#include "device/daemon/device.hpp"
#include "device/update/app_agent.hpp"
#include "package/publisher_keys.hpp"
#include "support/app_package.hpp"
#include "support/scripted_service.hpp"
#include "support/temp_dir.hpp"
#include "support/test_pki.hpp"
#include "wire/attestation.hpp"
#include "wire/errors.hpp"

namespace aspis::device {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const Clock::TimePoint kStart = Clock::TimePoint(std::chrono::seconds(1'800'000'000));
constexpr double kUniform = 0.5;  // every random draw: jitter is half its range

// Seconds after kStart, for readable failures.
std::int64_t Seconds(Clock::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t - kStart).count();
}

// A Device on a software root of trust, without update agents, run on its own thread against a
// ScriptedService, with time simulated: the test moves the clock to each deadline the device
// sleeps until.
class DeviceLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_ / "boot_id") << "boot-1\n";
    rot_ = std::move(*rot::Initialize(
        {.backend = "software", .state_dir = dir_.path(), .boot_id_file = dir_ / "boot_id"}));
    device_id_ = rot_->GetIdentity()->device_id;
    service_.emplace(clock_, device_id_, kStart);
    config_.state_dir = dir_.path();
  }

  void TearDown() override {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
  }

  void Start(const std::function<void(DeviceParts&)>& adjust = {}) {
    auto credentials = Credentials::Open(dir_.path());
    ASSERT_TRUE(credentials) << credentials.error().message();
    auto trust = update::PublisherTrust::Open(dir_ / "publisher-keys.json", {});
    ASSERT_TRUE(trust) << trust.error().message();
    auto staging = update::Staging::Open(dir_ / "staging", {.board = "b", .capacity = 1 << 20});
    ASSERT_TRUE(staging) << staging.error().message();
    DeviceParts parts{.config = config_,
                      .env = env_,
                      .service = *service_,
                      .rot = std::move(rot_),
                      .events = {},
                      .credentials = std::move(*credentials),
                      .roots = {service_->root()},
                      .device_id = device_id_,
                      .trust = std::move(*trust),
                      .staging = std::move(*staging)};
    if (adjust) adjust(parts);
    device_.emplace(std::move(parts));
    ended_ = false;
    thread_ = std::jthread([this](const std::stop_token& stop) {
      device_->Run(stop);
      ended_ = true;
    });
  }

  // Where the device sleeps until, once it does (its next deadline is in the future).
  Clock::TimePoint Asleep() const {
    for (;;) {
      if (const auto deadline = clock_.NextDeadline(); deadline && *deadline > clock_.Now()) {
        return *deadline;
      }
      std::this_thread::yield();
    }
  }

  // Moves the clock to the device's next deadline and returns it.
  Clock::TimePoint Wake() {
    const auto deadline = Asleep();
    clock_.Advance(deadline - clock_.Now());
    return deadline;
  }

  std::string Verdict() {
    const auto status = device_->Handle({{"command", "status"}});
    return status["attestation"]["verdict"].get<std::string>();
  }

  testing::TempDir dir_;
  SimulatedClock clock_{kStart};
  Env env_{file::RealFileSystem(), clock_, [] { return kUniform; }};
  DaemonConfig config_;
  std::unique_ptr<rot::RootOfTrust> rot_;
  std::string device_id_;
  std::optional<testing::ScriptedService> service_;
  std::optional<Device> device_;
  std::atomic<bool> ended_{false};  // Run returned
  std::jthread thread_;
};

TEST_F(DeviceLoop, AttestsAndChecksInAtStartThenSleepsUntilItsCertificatesNeedRenewing) {
  Start();
  auto calls = service_->AwaitCalls(2);
  EXPECT_EQ(calls[0].what, "attest");
  EXPECT_EQ(calls[1].what, "check-in");
  EXPECT_EQ(Seconds(calls[0].at), Seconds(kStart));
  EXPECT_EQ(Seconds(calls[1].at), Seconds(kStart));
  // 24-hour certificates are renewed after three quarters of their life (18 h), brought forward
  // by half of a tenth of that; the check-in interval (20 h less 1 h of jitter) comes later.
  const auto renewal = kStart + 18h - 54min;
  EXPECT_EQ(Seconds(Asleep()), Seconds(renewal));
  EXPECT_EQ(service_->calls().size(), 2U) << "the device asked before its deadline";
  EXPECT_EQ(Seconds(Wake()), Seconds(renewal));
  calls = service_->AwaitCalls(4);
  EXPECT_EQ(calls[2].what, "attest");
  EXPECT_EQ(Seconds(calls[2].at), Seconds(renewal));
  EXPECT_EQ(calls[3].what, "check-in");
  EXPECT_EQ(Seconds(Asleep()), Seconds(renewal + 18h - 54min));
  EXPECT_EQ(Verdict(), "trusted");
}

TEST_F(DeviceLoop, ChecksInAtItsIntervalBetweenRenewals) {
  config_.check_in_interval = 4h;
  Start();
  service_->AwaitCalls(2);
  // Every 4 h less half of a tenth of that, four times before the renewal at 17 h 6 min.
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(Seconds(Wake()), Seconds(kStart + i * (4h - 12min)));
    const auto calls = service_->AwaitCalls(2 + i);
    EXPECT_EQ(calls.back().what, "check-in");
  }
  EXPECT_EQ(Seconds(Wake()), Seconds(kStart + 4 * (4h - 12min)));
  EXPECT_EQ(service_->AwaitCalls(6)[5].what, "check-in");
  EXPECT_EQ(Seconds(Wake()), Seconds(kStart + 18h - 54min));
  EXPECT_EQ(service_->AwaitCalls(7)[6].what, "attest");
}

TEST_F(DeviceLoop, AnUnreachableServiceIsRetriedAfterDoublingDelaysUpToTheCap) {
  config_.retry_base = 2s;
  config_.retry_cap = 30s;
  service_->Script(testing::ScriptedService::Answer::kUnreachable,
                   testing::ScriptedService::Answer::kYes);
  Start();
  service_->AwaitCalls(1);
  // Full jitter at one half: 1, 2, 4, 8, then 15 s (half the cap) from then on.
  Clock::TimePoint at = kStart;
  for (const auto delay : {1s, 2s, 4s, 8s, 15s, 15s}) {
    at += delay;
    EXPECT_EQ(Seconds(Wake()), Seconds(at));
  }
  EXPECT_EQ(service_->AwaitCalls(7).size(), 7U);
  EXPECT_EQ(Verdict(), "unreachable");
  service_->Script(testing::ScriptedService::Answer::kYes, testing::ScriptedService::Answer::kYes);
  Wake();
  const auto calls = service_->AwaitCalls(9);
  EXPECT_EQ(calls[7].what, "attest");
  EXPECT_EQ(calls[8].what, "check-in");
  EXPECT_EQ(Seconds(Asleep()), Seconds(calls[7].at + 18h - 54min)) << "success resets the backoff";
}

TEST_F(DeviceLoop, AServiceThatAsksToWaitIsNotAskedAgainSooner) {
  config_.retry_base = 2s;
  config_.retry_cap = 1h;
  service_->Script(testing::ScriptedService::Answer::kUnreachable,
                   testing::ScriptedService::Answer::kYes, 120s);
  Start();
  service_->AwaitCalls(1);
  EXPECT_EQ(Seconds(Wake()), Seconds(kStart + 120s));
  EXPECT_EQ(Seconds(Wake()), Seconds(kStart + 240s));
  EXPECT_EQ(service_->AwaitCalls(3).size(), 3U);
}

TEST_F(DeviceLoop, ARefusedDeviceDropsItsCertificatesAndStopsCheckingIn) {
  config_.check_in_interval = 1h;
  Start();
  service_->AwaitCalls(2);
  ASSERT_TRUE(std::filesystem::exists(dir_ / "runtime-certificate.pem"));
  // The service revokes the device: its next check-in is refused, and it attests at once.
  service_->Script(testing::ScriptedService::Answer::kRefuse,
                   testing::ScriptedService::Answer::kRefuse);
  const auto check_in = Wake();
  const auto calls = service_->AwaitCalls(4);
  EXPECT_EQ(calls[2].what, "check-in");
  EXPECT_EQ(calls[3].what, "attest");
  EXPECT_EQ(Seconds(calls[3].at), Seconds(check_in))
      << "a refused check-in is followed by an attestation now";
  Asleep();
  EXPECT_EQ(Verdict(), "untrusted");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "runtime-certificate.pem"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "app" / "certificate.pem"));
  // Without certificates it only attests again, and never presents them in a check-in.
  for (int i = 0; i < 3; ++i) Wake();
  const auto later = service_->AwaitCalls(7);
  for (std::size_t i = 4; i < later.size(); ++i) EXPECT_EQ(later[i].what, "attest");
}

TEST_F(DeviceLoop, CertificatesFromAnEarlierRunAreUsedUntilTheirRenewalTime) {
  Start();
  service_->AwaitCalls(2);
  Asleep();
  thread_.request_stop();
  thread_.join();
  device_.reset();
  rot_ = std::move(*rot::Open(dir_.path(), dir_ / "boot_id"));
  clock_.Advance(1h);
  Start();
  const auto calls = service_->AwaitCalls(3);
  EXPECT_EQ(calls[2].what, "check-in") << "a restart with valid certificates checks in first";
  EXPECT_EQ(Seconds(calls[2].at), Seconds(kStart + 1h));
  EXPECT_EQ(Seconds(Asleep()), Seconds(kStart + 18h - 54min));
  EXPECT_EQ(Verdict(), "trusted");
}

TEST_F(DeviceLoop, AStopEndsTheLoopWhileItSleeps) {
  Start();
  service_->AwaitCalls(2);
  Asleep();
  thread_.request_stop();
  thread_.join();
  EXPECT_EQ(clock_.Now(), kStart) << "the stop did not wait for time to pass";
}

TEST_F(DeviceLoop, AnAppsRebootComesOnceTheDeviceCheckedInSinceItStarted) {
  Start();
  device_->RequestReboot();
  const auto calls = service_->AwaitCalls(2);
  EXPECT_EQ(calls[0].what, "attest");
  EXPECT_EQ(calls[1].what, "check-in");
  thread_.join();
  EXPECT_TRUE(ended_);
  EXPECT_EQ(clock_.Now(), kStart) << "the reboot waited no longer than the check-in";
}

TEST_F(DeviceLoop, AnAppsRebootWaitsTenMinutesForACheckInThatDoesNotCome) {
  config_.retry_base = 2s;
  config_.retry_cap = 60s;
  service_->Script(testing::ScriptedService::Answer::kUnreachable,
                   testing::ScriptedService::Answer::kYes);
  Start();
  service_->AwaitCalls(1);
  device_->RequestReboot();
  while (!ended_) {
    if (const auto deadline = clock_.NextDeadline(); deadline && *deadline > clock_.Now()) {
      clock_.Advance(*deadline - clock_.Now());
    }
    std::this_thread::yield();
  }
  EXPECT_EQ(Seconds(clock_.Now()), Seconds(kStart + kAppRebootHold));
  for (const auto& call : service_->calls()) EXPECT_EQ(call.what, "attest");
}

// Update deferral in the device loop: an installed app's new version is offered, and an app
// registered for system events (the test, through SystemEvents as the broker would) defers it.
class DeviceDeferral : public DeviceLoop {
 protected:
  static constexpr char kBlink[] = "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b";
  static constexpr char kDeferring[] = "1f0c6a4e-4b5d-4f38-9a57-2f0f3e6c1a11";

  void SetUp() override {
    DeviceLoop::SetUp();
    config_.check_in_interval = 20h;
    keys_.Add(publisher_.Public());
    fs::create_directories(dir_ / "update");
    auto agent = update::AppAgent::Open(
        {.store = store_,
         .apps_dir = dir_ / "apps",
         .publishers = [this] { return package::Publishers{.apps = &keys_}; },
         .health = [](const fs::path&) -> Expected<void> { return {}; }});
    ASSERT_TRUE(agent) << agent.error().message();
    agent_.emplace(std::move(*agent));
    auto v1 = agent_->Install(Pack("1.0"));
    ASSERT_TRUE(v1) << v1.error().message();
    const update::AppTarget v2 = Pack("2.0");
    v2_ = v2.image_id;
    package::PublisherKeySet set;
    set.tenant = "t1";
    set.expires = UnixSeconds(kStart + 24h * 365);
    set.root.keys = {publisher_root_.Public()};
    set.publishers.keys = {publisher_.Public()};
    service_->RelayPublisherKeys(
        crypto::dsse::Serialize(*package::SignKeySet(set, std::span(&publisher_root_, 1))));
    std::string bytes(AsString(*file::Read(v2.package, std::size_t{1} << 20)));
    service_->Offer({.image_id = v2.image_id,
                     .component_id = kBlink,
                     .kind = "app",
                     .version = "2.0",
                     .security_version = 1,
                     .sha256 = crypto::ToHex(*crypto::Sha256Of(AsBytes(bytes))),
                     .size = bytes.size(),
                     .url = "/v1/device/images/" + v2.image_id},
                    bytes);
    auto events =
        apps::SystemEvents::Open(state::StateStore(file::RealFileSystem(), dir_.path()), clock_);
    ASSERT_TRUE(events) << events.error().message();
    events_ = std::move(*events);
  }

  // Runs the device until it installed version 2 or 25 hours passed, the test app deferring by
  // `minutes` at each Pending it hears (0: no app may defer); returns when version 2 went in.
  std::optional<Clock::TimePoint> RunDeferring(int minutes) {
    Fd socket(-1);
    if (minutes > 0) socket = std::move(*events_->Register(kDeferring, 7, true));
    Start([this](DeviceParts& parts) {
      parts.apps = &*agent_;
      parts.system_events = events_.get();
    });
    while (clock_.Now() < kStart + 25h) {
      Asleep();
      if (agent_->records().at(kBlink).installed_image_id == v2_) return clock_.Now();
      std::array<char, 512> event{};
      for (ssize_t got; socket.get() >= 0 && (got = ::recv(socket.get(), event.data(), event.size(),
                                                           MSG_DONTWAIT)) > 0;) {
        if (std::string_view(event.data(), static_cast<std::size_t>(got)).find(R"("Pending")") ==
            std::string_view::npos) {
          continue;
        }
        if (!first_pending_) first_pending_ = clock_.Now();
        EXPECT_TRUE(events_->Defer(kDeferring, std::chrono::minutes(minutes)));
      }
      Wake();
    }
    return std::nullopt;
  }

  std::size_t CheckIns() {
    const auto calls = service_->calls();
    return static_cast<std::size_t>(std::count_if(
        calls.begin(), calls.end(), [](const auto& c) { return c.what == "check-in"; }));
  }

  update::AppTarget Pack(const std::string& version) {
    const fs::path tree = dir_ / ("tree-" + version);
    fs::create_directories(tree / "bin");
    std::ofstream(tree / "bin/app") << "#!/bin/sh\necho " << version << "\n";
    std::ofstream(tree / "app_manifest.json")
        << R"({"SchemaVersion": 1, "Name": "blink", "ComponentId": ")" << kBlink
        << R"(", "EntryPoint": "/bin/app", "Capabilities": {}})";
    const fs::path path = dir_ / ("blink-" + version + ".aspkg");
    auto m = testing::PackApp(tree, path, publisher_, version);
    EXPECT_TRUE(m) << m.error().message();
    return {kBlink, m ? m->image_id : "", version, 1, path};
  }

  crypto::PrivateKey publisher_root_ = *crypto::PrivateKey::GenerateP256();
  crypto::PrivateKey publisher_ = *crypto::PrivateKey::GenerateP256();
  crypto::dsse::TrustedKeys keys_;
  state::StateStore store_{file::RealFileSystem(), dir_ / "update"};
  std::optional<update::AppAgent> agent_;
  std::string v2_;
  std::unique_ptr<apps::SystemEvents> events_;
  std::optional<Clock::TimePoint> first_pending_;
};

TEST_F(DeviceDeferral, WithNoAppThatMayDeferTheUpdateIsInstalledAtTheFirstCheckIn) {
  const auto installed = RunDeferring(0);
  ASSERT_TRUE(installed);
  EXPECT_EQ(Seconds(*installed), 0);
}

TEST_F(DeviceDeferral, TheDeviceWaitsWhileAnAppDefersAndInstallsWhenTheDeferralEnds) {
  const auto installed = RunDeferring(60);
  ASSERT_TRUE(installed);
  ASSERT_TRUE(first_pending_);
  // Deferred an hour; then announced again, deferred again, ... until the 24 hours ran out.
  EXPECT_EQ(Seconds(*installed), Seconds(*first_pending_ + 24h));
  EXPECT_EQ(agent_->records().at(kBlink).installed_version, "2.0");
}

TEST_F(DeviceDeferral, DeferringAMinuteAtATimeIsCappedAt24HoursAndCostsNoCheckIns) {
  const auto installed = RunDeferring(1);
  ASSERT_TRUE(installed);
  ASSERT_TRUE(first_pending_);
  EXPECT_EQ(Seconds(*installed), Seconds(*first_pending_ + 24h));
  // The deferral ends and the update is asked about again without the service: what checks in
  // is the first check-in, its report of the download and the hold, the renewals of the
  // certificates, and the report of the install.
  EXPECT_LE(CheckIns(), 8U);
}

}  // namespace
}  // namespace aspis::device
