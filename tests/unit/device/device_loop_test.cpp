#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/file.hpp"
#include "crypto/dsse.hpp"
#include "device/daemon/device.hpp"
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

// The security service, as scripted by a test: it issues 24-hour certificates and signed
// manifests, or answers as it is told, and records when the device asked.
class ScriptedService final : public ServiceLink {
 public:
  enum class Answer { kYes, kUnreachable, kRefuse };
  struct Call {
    std::string what;  // "attest", "check-in"
    Clock::TimePoint at;
  };

  ScriptedService(const Clock& clock, std::string device_id)
      : clock_(clock),
        device_id_(std::move(device_id)),
        root_(testing::MakeRoot(kStart, std::chrono::hours(24 * 365))),
        ca_(testing::MakeTenantCa(root_, "t1", kStart, std::chrono::hours(24 * 300))) {}

  const crypto::Certificate& root() const { return root_.cert; }

  void Script(Answer attest, Answer check_in, RetryAfter retry_after = {}) {
    const std::lock_guard lock(mutex_);
    attest_ = attest;
    check_in_ = check_in;
    retry_after_ = retry_after;
  }

  // Blocks until the device has made `n` calls in all; returns them.
  std::vector<Call> AwaitCalls(std::size_t n) {
    std::unique_lock lock(mutex_);
    called_.wait(lock, [&] { return calls_.size() >= n; });
    return calls_;
  }
  std::vector<Call> calls() {
    const std::lock_guard lock(mutex_);
    return calls_;
  }

  Expected<attest::Certificates> Attest(rot::RootOfTrust&,
                                        const std::vector<wire::MeasurementEvent>&,
                                        const Credentials& credentials, Clock::TimePoint now,
                                        RetryAfter* retry_after) override {
    const Answer answer = Record("attest", retry_after);
    if (answer == Answer::kUnreachable) return Fail(wire::WireErrc::kUnavailable, "no route");
    if (answer == Answer::kRefuse) return Fail(wire::WireErrc::kRefused, "not trusted");
    auto runtime = Certify(credentials.runtime_key(), wire::kRuntimeCertificatePolicy, now);
    auto app = Certify(credentials.app_key(), wire::kAppCertificatePolicy, now);
    return attest::Certificates{.result = {.verdict = std::string(wire::kTrusted),
                                           .runtime_certificate_pem = *runtime.ToPem(),
                                           .app_certificate_pem = *app.ToPem(),
                                           .ca_chain_pem = *ca_.cert.ToPem() + *root_.cert.ToPem()},
                                .runtime = runtime,
                                .app = app};
  }

  Expected<wire::CheckInResponse> CheckIn(const wire::CheckIn& report, const Credentials&,
                                          RetryAfter* retry_after) override {
    const Answer answer = Record("check-in", retry_after);
    if (answer == Answer::kUnreachable) return Fail(wire::WireErrc::kUnavailable, "no route");
    if (answer == Answer::kRefuse) return Fail(wire::WireErrc::kRefused, "certificate revoked");
    EXPECT_EQ(report.device_id, device_id_);
    const auto now = clock_.Now();
    const wire::UpdateManifest manifest{.device_id = device_id_,
                                        .sequence = ++sequence_,
                                        .issued_at = UnixSeconds(now),
                                        .expires_at = UnixSeconds(now + 24h),
                                        .os_feed = "retail"};
    const auto signer =
        testing::MakeSigner(ca_, "Aspis Deployments t1", wire::kDeploymentCertificatePolicy, now);
    const std::string payload = wire::Serialize(manifest);
    auto envelope = *crypto::dsse::Sign(wire::kManifestPayloadType, AsBytes(payload),
                                        std::span<const crypto::PrivateKey>(&signer.key, 1));
    return wire::CheckInResponse{crypto::dsse::Serialize(envelope),
                                 *signer.cert.ToPem() + *ca_.cert.ToPem()};
  }

  Expected<std::string> Fetch(std::string_view, std::uint64_t, std::uint64_t,
                              RetryAfter*) override {
    return Fail(wire::WireErrc::kProtocol, "no targets are offered");
  }

 private:
  Answer Record(std::string what, RetryAfter* retry_after) {
    const std::lock_guard lock(mutex_);
    calls_.push_back({std::move(what), clock_.Now()});
    called_.notify_all();
    const Answer answer = calls_.back().what == "attest" ? attest_ : check_in_;
    if (answer != Answer::kYes && retry_after != nullptr) *retry_after = retry_after_;
    return answer;
  }

  crypto::Certificate Certify(const crypto::PrivateKey& key, const char* policy,
                              Clock::TimePoint now) const {
    return *crypto::Issue(ca_.cert, ca_.key, key.Public(),
                          {.common_name = device_id_,
                           .not_before = now,
                           .lifetime = 24h,
                           .client_auth = true,
                           .san_uris = {wire::DeviceUri({"t1", device_id_})},
                           .policy_oids = {policy}});
  }

  const Clock& clock_;
  const std::string device_id_;
  const testing::Issuer root_;
  const testing::Issuer ca_;
  std::mutex mutex_;
  std::condition_variable called_;
  std::vector<Call> calls_;
  Answer attest_ = Answer::kYes;
  Answer check_in_ = Answer::kYes;
  RetryAfter retry_after_;
  std::uint64_t sequence_ = 0;
};

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
    service_.emplace(clock_, device_id_);
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
  std::optional<ScriptedService> service_;
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
  service_->Script(ScriptedService::Answer::kUnreachable, ScriptedService::Answer::kYes);
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
  service_->Script(ScriptedService::Answer::kYes, ScriptedService::Answer::kYes);
  Wake();
  const auto calls = service_->AwaitCalls(9);
  EXPECT_EQ(calls[7].what, "attest");
  EXPECT_EQ(calls[8].what, "check-in");
  EXPECT_EQ(Seconds(Asleep()), Seconds(calls[7].at + 18h - 54min)) << "success resets the backoff";
}

TEST_F(DeviceLoop, AServiceThatAsksToWaitIsNotAskedAgainSooner) {
  config_.retry_base = 2s;
  config_.retry_cap = 1h;
  service_->Script(ScriptedService::Answer::kUnreachable, ScriptedService::Answer::kYes, 120s);
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
  service_->Script(ScriptedService::Answer::kRefuse, ScriptedService::Answer::kRefuse);
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
