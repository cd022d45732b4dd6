#include "device/daemon/daemon.hpp"

#include <condition_variable>
#include <mutex>

#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "crypto/tls.hpp"
#include "device/attest/attester.hpp"
#include "device/attest/renewal.hpp"
#include "device/daemon/admin_socket.hpp"
#include "device/daemon/credentials.hpp"
#include "device/measure/measured_launch.hpp"
#include "wire/errors.hpp"
#include "wire/https_client.hpp"

namespace aspis::device {

namespace {

using json::Json;

std::int64_t Seconds(Clock::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// "urn:aspis:tenant:<tenant>:device:<device>" -> tenant.
std::string TenantOf(const crypto::Certificate& cert) {
  constexpr std::string_view kPrefix = "urn:aspis:tenant:";
  for (const auto& uri : cert.SanUris()) {
    const auto device = uri.find(":device:");
    if (uri.starts_with(kPrefix) && device != std::string::npos) {
      return uri.substr(kPrefix.size(), device - kPrefix.size());
    }
  }
  return "";
}

// What the admin socket reports; guarded by Device::mutex_.
struct Status {
  std::string verdict = "never attested";  // "trusted", "untrusted", "unreachable"
  std::string reason;
  std::int64_t last_attempt = 0;
  std::int64_t next_attempt = 0;
  std::int64_t certificate_expiry = 0;
  std::string tenant;
};

class Device {
 public:
  Device(const DaemonConfig& config, const Clock& clock, std::unique_ptr<rot::RootOfTrust> rot,
         std::vector<wire::MeasurementEvent> events, Credentials credentials,
         std::vector<crypto::Certificate> roots, wire::HttpsClient client, std::string device_id)
      : config_(config),
        clock_(clock),
        rot_(std::move(rot)),
        events_(std::move(events)),
        credentials_(std::move(credentials)),
        roots_(std::move(roots)),
        client_(std::move(client)),
        device_id_(std::move(device_id)),
        uniform_(attest::SystemUniform()),
        backoff_(config.retry_base, config.retry_cap, uniform_) {
    if (const auto& cert = credentials_.runtime_certificate();
        cert && cert->NotAfter() > clock_.Now()) {
      status_.verdict = "trusted";
      status_.reason = "certificates from an earlier attestation";
      status_.certificate_expiry = Seconds(cert->NotAfter());
      status_.tenant = TenantOf(*cert);
    }
  }

  void Run(const std::stop_token& stop) {
    std::unique_lock lock(mutex_);
    std::stop_callback wake(stop, [this] { wake_.notify_all(); });
    Clock::TimePoint next = FirstAttempt();
    while (!stop.stop_requested()) {
      status_.next_attempt = Seconds(next);
      // The clock is injected; wait in slices so a moved clock (or a request) is seen promptly.
      wake_.wait_for(lock, std::chrono::milliseconds(200),
                     [&] { return stop.stop_requested() || attest_requested_; });
      if (stop.stop_requested()) break;
      if (!attest_requested_ && clock_.Now() < next) continue;
      attest_requested_ = false;
      lock.unlock();
      const Clock::TimePoint after = AttestOnce();
      lock.lock();
      next = after;
      ++attempts_;
      done_.notify_all();
    }
  }

  Json Handle(const Json& request) {
    const std::string command = request.value("command", "");
    if (command == wire::admin::kStatus) return StatusJson();
    if (command == wire::admin::kAttest) {
      std::unique_lock lock(mutex_);
      const auto before = attempts_;
      attest_requested_ = true;
      wake_.notify_all();
      if (!done_.wait_for(lock, std::chrono::seconds(90), [&] { return attempts_ > before; })) {
        return {{"error", "the attestation did not finish in 90 s"}};
      }
      lock.unlock();
      return StatusJson();
    }
    return {{"error", "unknown command \"" + command + "\" (status, attest)"}};
  }

 private:
  Clock::TimePoint FirstAttempt() const {
    const auto& cert = credentials_.runtime_certificate();
    if (!cert || cert->NotAfter() <= clock_.Now()) return clock_.Now();
    return attest::RenewalTime(cert->NotBefore(), cert->NotAfter(), uniform_);
  }

  // One attestation; returns when to attest next.
  Clock::TimePoint AttestOnce() {
    auto issued = attest::Attest(client_, *rot_, events_, credentials_.runtime_key(),
                                 credentials_.app_key(), roots_, clock_.Now());
    const auto now = clock_.Now();
    std::string verdict;
    std::string reason;
    Clock::TimePoint next;
    if (issued) {
      if (auto stored = credentials_.Store(*issued); !stored) {
        log::Error("storing the new certificates failed: {}", stored.error().message());
        verdict = "unreachable";
        reason = stored.error().message();
        next = now + backoff_.NextDelay();
      } else {
        backoff_.Reset();
        verdict = "trusted";
        next =
            attest::RenewalTime(issued->runtime.NotBefore(), issued->runtime.NotAfter(), uniform_);
        log::Info("attested: certificates valid until Unix time {}",
                  Seconds(issued->runtime.NotAfter()));
      }
    } else if (issued.error() == wire::WireErrc::kRefused) {
      // A device the service does not trust must not keep presenting its old credentials.
      verdict = "untrusted";
      reason = issued.error().message();
      if (auto dropped = credentials_.Drop(); !dropped) {
        log::Error("removing refused certificates failed: {}", dropped.error().message());
      }
      next = now + backoff_.NextDelay();
      log::Warning("attestation refused: {}", reason);
    } else {
      verdict = "unreachable";
      reason = issued.error().message();
      next = now + backoff_.NextDelay();
      log::Warning("attestation failed ({} in a row): {}", backoff_.failures(), reason);
    }
    const std::lock_guard lock(mutex_);
    status_.verdict = verdict;
    status_.reason = reason;
    status_.last_attempt = Seconds(now);
    const auto& cert = credentials_.runtime_certificate();
    status_.certificate_expiry = cert ? Seconds(cert->NotAfter()) : 0;
    if (cert) status_.tenant = TenantOf(*cert);
    return next;
  }

  Json StatusJson() {
    const std::lock_guard lock(mutex_);
    Json measurements = Json::array();
    for (const auto& e : events_) {
      measurements.push_back({{"component", e.component}, {"digest", crypto::ToHex(e.digest)}});
    }
    return {{"device_id", device_id_},
            {"tenant", status_.tenant},
            {"rot", rot_->Backend()},
            {"attestation",
             {{"verdict", status_.verdict},
              {"reason", status_.reason},
              {"last_attempt", status_.last_attempt},
              {"next_attempt", status_.next_attempt}}},
            {"certificate_expiry", status_.certificate_expiry},
            {"measurements", measurements}};
  }

  const DaemonConfig& config_;
  const Clock& clock_;
  std::unique_ptr<rot::RootOfTrust> rot_;
  const std::vector<wire::MeasurementEvent> events_;
  Credentials credentials_;
  const std::vector<crypto::Certificate> roots_;
  const wire::HttpsClient client_;
  const std::string device_id_;
  attest::Uniform uniform_;
  attest::Backoff backoff_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  bool attest_requested_ = false;
  std::uint64_t attempts_ = 0;
  Status status_;
};

}  // namespace

Expected<void> RunDaemon(const DaemonConfig& config, const Clock& clock,
                         const std::stop_token& stop) {
  auto bundle = file::Read(config.trust_bundle, file::kSmallFileLimit);
  if (!bundle) return std::unexpected(std::move(bundle.error()).WithContext("trust bundle"));
  auto roots = crypto::Certificate::ChainFromPem(AsString(*bundle));
  if (!roots) {
    return std::unexpected(
        std::move(roots.error()).WithContext("trust bundle " + config.trust_bundle.string()));
  }
  auto endpoint = wire::ParseHttpsUrl(config.service_url);
  if (!endpoint) return std::unexpected(endpoint.error());
  auto tls = crypto::tls::ClientContext(*roots);
  if (!tls) return std::unexpected(tls.error());

  auto rot = rot::Initialize({.backend = config.rot,
                              .state_dir = config.state_dir,
                              .tcti = config.tcti,
                              .boot_id_file = config.boot_id_file});
  if (!rot) return std::unexpected(std::move(rot.error()).WithContext("root of trust"));
  auto identity = (*rot)->GetIdentity();
  if (!identity) return std::unexpected(identity.error());
  auto events = measure::MeasureLaunch(**rot,
                                       {{"os", config.os_image},
                                        {"aspisd", config.aspisd_binary},
                                        {"board", config.board},
                                        {"trust-bundle", config.trust_bundle}},
                                       config.state_dir / "measurements.json");
  if (!events) return std::unexpected(std::move(events.error()).WithContext("measured launch"));
  auto credentials = Credentials::Open(config.state_dir);
  if (!credentials) return std::unexpected(credentials.error());

  Device device(config, clock, std::move(*rot), std::move(*events), std::move(*credentials),
                std::move(*roots), wire::HttpsClient(*endpoint, *tls), identity->device_id);
  auto admin = AdminSocket::Start(config.admin_socket,
                                  [&device](const json::Json& r) { return device.Handle(r); });
  if (!admin) return std::unexpected(std::move(admin.error()).WithContext("admin socket"));
  log::Info("aspisd running as device {}", identity->device_id);
  device.Run(stop);
  log::Info("aspisd stopping");
  return {};
}

}  // namespace aspis::device
