#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "crypto/dsse.hpp"
#include "device/daemon/service_link.hpp"
#include "support/test_pki.hpp"
#include "wire/attestation.hpp"
#include "wire/errors.hpp"

namespace aspis::testing {

// The security service, as scripted by a test: it issues 24-hour certificates for tenant "t1" and
// signed update manifests listing the targets offered, serves their bytes, or answers as it is
// told, and records when the device asked and what it reported. Thread-safe.
class ScriptedService final : public device::ServiceLink {
 public:
  enum class Answer { kYes, kUnreachable, kRefuse };
  struct Call {
    std::string what;  // "attest", "check-in"
    Clock::TimePoint at;
  };
  using RetryAfter = device::RetryAfter;

  // Certificates chain to `root` (a new one when not given), through a CA made at `start`.
  ScriptedService(const Clock& clock, std::string device_id, Clock::TimePoint start,
                  std::optional<Issuer> root = {})
      : clock_(clock),
        device_id_(std::move(device_id)),
        root_(root ? std::move(*root) : MakeRoot(start, std::chrono::hours(24 * 365))),
        ca_(MakeTenantCa(root_, "t1", start, std::chrono::hours(24 * 300))) {}

  const crypto::Certificate& root() const { return root_.cert; }

  void Script(Answer attest, Answer check_in, RetryAfter retry_after = {}) {
    const std::lock_guard lock(mutex_);
    attest_ = attest;
    check_in_ = check_in;
    retry_after_ = retry_after;
  }

  // Lists `target` in every manifest from now on, served from `bytes` at target.url.
  void Offer(wire::UpdateTarget target, std::string bytes) {
    const std::lock_guard lock(mutex_);
    served_[target.url] = std::move(bytes);
    targets_.push_back(std::move(target));
  }

  // Relays `envelope` (a publisher key set, DSSE JSON) with every manifest from now on.
  void RelayPublisherKeys(std::string envelope) {
    const std::lock_guard lock(mutex_);
    publisher_keys_ = std::move(envelope);
  }

  // Whether manifests say their targets are every app the device should run.
  void SetAppsComplete(bool complete) {
    const std::lock_guard lock(mutex_);
    apps_complete_ = complete;
  }

  // Lists no target of `image_id` from now on.
  void Withdraw(const std::string& image_id) {
    const std::lock_guard lock(mutex_);
    std::erase_if(targets_, [&](const wire::UpdateTarget& t) { return t.image_id == image_id; });
  }

  // What the device's last attestation said it measured.
  std::vector<wire::MeasurementEvent> attested() {
    const std::lock_guard lock(mutex_);
    return attested_;
  }

  // Blocks until the device has made `n` calls in all; returns them.
  std::vector<Call> AwaitCalls(std::size_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return calls_.size() >= n; });
    return calls_;
  }
  std::vector<Call> calls() {
    const std::lock_guard lock(mutex_);
    return calls_;
  }

  // Blocks until `done` says yes, asked again after each check-in and each Nudge.
  void Await(const std::function<bool()>& done) {
    std::unique_lock lock(mutex_);
    for (;;) {
      // `done` runs unlocked (it may call back in); news meanwhile is not lost: it moves `news_`.
      const std::uint64_t seen = news_;
      lock.unlock();
      const bool yes = done();
      lock.lock();
      if (yes) return;
      changed_.wait(lock, [&] { return news_ != seen; });
    }
  }
  void Nudge() {
    const std::lock_guard lock(mutex_);
    Changed();
  }
  // The last check-in's report, if one came.
  std::optional<wire::CheckIn> last_report() {
    const std::lock_guard lock(mutex_);
    return last_report_;
  }
  // The target statuses of the last check-in, if one came.
  std::vector<wire::TargetStatus> reported() {
    const std::lock_guard lock(mutex_);
    return reported_;
  }

  Expected<device::attest::Certificates> Attest(rot::RootOfTrust&,
                                                const std::vector<wire::MeasurementEvent>& events,
                                                const device::Credentials& credentials,
                                                Clock::TimePoint now,
                                                RetryAfter* retry_after) override {
    {
      const std::lock_guard lock(mutex_);
      attested_ = events;
    }
    const Answer answer = Record("attest", retry_after);
    if (answer == Answer::kUnreachable) return Fail(wire::WireErrc::kUnavailable, "no route");
    if (answer == Answer::kRefuse) return Fail(wire::WireErrc::kRefused, "not trusted");
    auto runtime = Certify(credentials.runtime_key(), wire::kRuntimeCertificatePolicy, now);
    auto app = Certify(credentials.app_key(), wire::kAppCertificatePolicy, now);
    return device::attest::Certificates{
        .result = {.verdict = std::string(wire::kTrusted),
                   .runtime_certificate_pem = *runtime.ToPem(),
                   .app_certificate_pem = *app.ToPem(),
                   .ca_chain_pem = *ca_.cert.ToPem() + *root_.cert.ToPem()},
        .runtime = runtime,
        .app = app};
  }

  Expected<wire::CheckInResponse> CheckIn(const wire::CheckIn& report, const device::Credentials&,
                                          RetryAfter* retry_after) override {
    const Answer answer = Record("check-in", retry_after);
    if (answer == Answer::kUnreachable) return Fail(wire::WireErrc::kUnavailable, "no route");
    if (answer == Answer::kRefuse) return Fail(wire::WireErrc::kRefused, "certificate revoked");
    EXPECT_EQ(report.device_id, device_id_);
    const auto now = clock_.Now();
    std::string publisher_keys;
    wire::UpdateManifest manifest{.device_id = device_id_,
                                  .issued_at = UnixSeconds(now),
                                  .expires_at = UnixSeconds(now + std::chrono::hours(24)),
                                  .os_feed = "retail"};
    {
      const std::lock_guard lock(mutex_);
      manifest.sequence = ++sequence_;
      manifest.targets = targets_;
      manifest.apps_complete = apps_complete_;
      publisher_keys = publisher_keys_;
      reported_ = report.targets;
      last_report_ = report;
      Changed();
    }
    const auto signer =
        MakeSigner(ca_, "Aspis Deployments t1", wire::kDeploymentCertificatePolicy, now);
    const std::string payload = wire::Serialize(manifest);
    auto envelope = *crypto::dsse::Sign(wire::kManifestPayloadType, AsBytes(payload),
                                        std::span<const crypto::PrivateKey>(&signer.key, 1));
    return wire::CheckInResponse{crypto::dsse::Serialize(envelope),
                                 *signer.cert.ToPem() + *ca_.cert.ToPem(), publisher_keys};
  }

  Expected<std::string> Fetch(std::string_view url, std::uint64_t first, std::uint64_t length,
                              RetryAfter*) override {
    const std::lock_guard lock(mutex_);
    const auto found = served_.find(std::string(url));
    if (found == served_.end() || first >= found->second.size()) {
      return Fail(wire::WireErrc::kRefused, "no such target or range");
    }
    return found->second.substr(first, length);
  }

 private:
  Answer Record(std::string what, RetryAfter* retry_after) {
    const std::lock_guard lock(mutex_);
    calls_.push_back({std::move(what), clock_.Now()});
    Changed();
    const Answer answer = calls_.back().what == "attest" ? attest_ : check_in_;
    if (answer != Answer::kYes && retry_after != nullptr) *retry_after = retry_after_;
    return answer;
  }

  // With mutex_ held.
  void Changed() {
    ++news_;
    changed_.notify_all();
  }

  crypto::Certificate Certify(const crypto::PrivateKey& key, const char* policy,
                              Clock::TimePoint now) const {
    return *crypto::Issue(ca_.cert, ca_.key, key.Public(),
                          {.common_name = device_id_,
                           .not_before = now,
                           .lifetime = std::chrono::hours(24),
                           .client_auth = true,
                           .san_uris = {wire::DeviceUri({"t1", device_id_})},
                           .policy_oids = {policy}});
  }

  const Clock& clock_;
  const std::string device_id_;
  const Issuer root_;
  const Issuer ca_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t news_ = 0;  // moves at every call, report and Nudge
  std::vector<Call> calls_;
  Answer attest_ = Answer::kYes;
  Answer check_in_ = Answer::kYes;
  RetryAfter retry_after_;
  std::uint64_t sequence_ = 0;
  std::vector<wire::UpdateTarget> targets_;
  std::map<std::string, std::string, std::less<>> served_;
  std::vector<wire::TargetStatus> reported_;
  std::optional<wire::CheckIn> last_report_;
  bool apps_complete_ = false;
  std::string publisher_keys_;
  std::vector<wire::MeasurementEvent> attested_;
};

}  // namespace aspis::testing
