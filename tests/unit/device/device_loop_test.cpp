#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/file.hpp"
#include "crypto/dsse.hpp"
#include "device/daemon/device.hpp"
#include "support/scripted_service.hpp"
#include "support/temp_dir.hpp"
#include "support/test_pki.hpp"
#include "wire/attestation.hpp"
#include "wire/errors.hpp"

namespace aspis::device {
namespace {

using namespace std::chrono_literals;

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

  void Start() {
    auto credentials = Credentials::Open(dir_.path());
    ASSERT_TRUE(credentials) << credentials.error().message();
    auto trust = update::PublisherTrust::Open(dir_ / "publisher-keys.json", {});
    ASSERT_TRUE(trust) << trust.error().message();
    auto staging = update::Staging::Open(dir_ / "staging", {.board = "b", .capacity = 1 << 20});
    ASSERT_TRUE(staging) << staging.error().message();
    device_.emplace(DeviceParts{.config = config_,
                                .env = env_,
                                .service = *service_,
                                .rot = std::move(rot_),
                                .events = {},
                                .credentials = std::move(*credentials),
                                .roots = {service_->root()},
                                .device_id = device_id_,
                                .trust = std::move(*trust),
                                .staging = std::move(*staging)});
    thread_ = std::jthread([this](const std::stop_token& stop) { device_->Run(stop); });
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

}  // namespace
}  // namespace aspis::device
