#include "device/daemon/daemon.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>

#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "crypto/tls.hpp"
#include "crypto/tpm_key.hpp"
#include "device/attest/attester.hpp"
#include "device/attest/renewal.hpp"
#include "device/daemon/admin_socket.hpp"
#include "device/daemon/credentials.hpp"
#include "device/measure/measured_launch.hpp"
#include "device/state/state_store.hpp"
#include "device/update/app_agent.hpp"
#include "device/update/app_health.hpp"
#include "device/update/boot/simulated_bootloader.hpp"
#include "device/update/errors.hpp"
#include "device/update/manifest_check.hpp"
#include "device/update/os_agent.hpp"
#include "device/update/publisher_trust.hpp"
#include "device/update/slot_writer.hpp"
#include "device/update/staging.hpp"
#include "package/measure.hpp"
#include "wire/check_in.hpp"
#include "wire/device_api.hpp"
#include "wire/errors.hpp"
#include "wire/https_client.hpp"

namespace aspis::device {

namespace {

using json::Json;

// The highest update-manifest sequence accepted so far lives in a monotonic counter of the root
// of trust, not in a file: deleting or restoring state files cannot lower it (replay).
constexpr std::uint32_t kManifestSequenceCounter = 0;

// How soon a check-in follows one that left downloads unfinished.
constexpr std::chrono::seconds kDownloadResume = std::chrono::seconds(5);

// Where the install of `status`'s image stands, as an agent's record says: installed, installing,
// reverted or failed with the reason; `status` is left alone when the record is of another image.
void InstallStatus(const std::string& installed, const std::string& target, bool idle,
                   update::Outcome outcome, const std::string& reason, wire::TargetStatus& status) {
  const std::string& image = status.image_id;
  if (installed == image) {
    status = {image, std::string(wire::kInstalled), ""};
  } else if (target == image && !idle) {
    status = {image, std::string(wire::kInstalling), ""};
  } else if (target == image && outcome == update::Outcome::kReverted) {
    status = {image, std::string(wire::kReverted), reason};
  } else if (target == image && outcome == update::Outcome::kFailed) {
    status = {image, std::string(wire::kFailed), reason};
  }
}

std::string TenantOf(const crypto::Certificate& cert) {
  for (const auto& uri : cert.SanUris()) {
    if (auto name = wire::ParseDeviceUri(uri)) return name->tenant;
  }
  return "";
}

// Targets fetched from the service the device checks in with, over mutual TLS. An answer asking
// to retry later (429, 503) is waited out through `pause`, which says whether to go on.
class ServiceImages final : public update::ImageSource {
 public:
  using Pause = std::function<bool(std::chrono::seconds)>;
  ServiceImages(const wire::HttpsClient& client, Pause pause)
      : client_(client), pause_(std::move(pause)) {}
  Expected<std::string> Fetch(std::string_view url, std::uint64_t first,
                              std::uint64_t length) override {
    if (!url.starts_with("/")) {
      return Fail(wire::WireErrc::kProtocol, "a target's URL must be a path on the service");
    }
    for (;;) {
      auto response = client_.Send(
          "GET", url, {}, {{"Range", fmt::format("bytes={}-{}", first, first + length - 1)}});
      if (!response) return std::unexpected(response.error());
      if (response->status == 206 || response->status == 200) return std::move(response->body);
      const bool later = wire::ReplyOf(response->status) == wire::Reply::kRetry;
      if (!later || !pause_(wire::RetryAfter(*response).value_or(std::chrono::seconds(1)))) {
        return std::unexpected(wire::ErrorOf(*response, "fetching " + std::string(url)));
      }
    }
  }

 private:
  const wire::HttpsClient& client_;
  Pause pause_;
};

// What the admin socket reports; guarded by the mutex of Device::waiter_.
struct Status {
  std::string verdict = "never attested";  // "trusted", "untrusted", "unreachable"
  std::string reason;
  std::int64_t last_attempt = 0;
  std::int64_t next_attempt = 0;
  std::int64_t certificate_expiry = 0;
  std::string tenant;
  std::int64_t last_check_in = 0;
  std::uint64_t manifest_sequence = 0;
  std::string check_in_error;
  std::string publisher_keys_error;         // why the last key set the service relayed was refused
  std::vector<wire::TargetStatus> targets;  // as the last check-in left them, reported next
};

// The update agents a device drives.
struct Agents {
  update::OsAgent* os = nullptr;  // null: the OS is not updated (no bootloader)
  update::AppAgent* apps = nullptr;
};

class Device {
 public:
  Device(const DaemonConfig& config, const Env& env, std::unique_ptr<rot::RootOfTrust> rot,
         std::vector<wire::MeasurementEvent> events, Credentials credentials,
         std::vector<crypto::Certificate> roots, wire::Endpoint endpoint, wire::HttpsClient client,
         std::string device_id, std::uint64_t manifest_sequence, update::PublisherTrust trust,
         update::Staging staging, Agents agents, const bool& reboot_asked, std::string update_error)
      : config_(config),
        clock_(env.clock),
        waiter_(env.clock),
        rot_(std::move(rot)),
        events_(std::move(events)),
        credentials_(std::move(credentials)),
        roots_(std::move(roots)),
        endpoint_(std::move(endpoint)),
        client_(std::move(client)),
        device_id_(std::move(device_id)),
        trust_(std::move(trust)),
        staging_(std::move(staging)),
        os_agent_(agents.os),
        app_agent_(agents.apps),
        reboot_asked_(reboot_asked),
        update_error_(std::move(update_error)),
        uniform_(env.uniform),
        backoff_(config.retry_base, config.retry_cap, uniform_),
        check_in_backoff_(config.retry_base, config.retry_cap, uniform_) {
    status_.manifest_sequence = manifest_sequence;
    if (const auto& cert = credentials_.runtime_certificate();
        cert && cert->NotAfter() > clock_.Now()) {
      status_.verdict = "trusted";
      status_.reason = "certificates from an earlier attestation";
      status_.certificate_expiry = UnixSeconds(cert->NotAfter());
      status_.tenant = TenantOf(*cert);
    }
  }

  void Run(const std::stop_token& stop) {
    stop_ = stop;
    // Registered before the lock is taken: it runs at once, taking the lock, if stop was asked.
    std::stop_callback wake(stop, [this] {
      const std::lock_guard lock(waiter_.mutex());
      waiter_.NotifyAll();
    });
    std::unique_lock lock(waiter_.mutex());
    Clock::TimePoint next = FirstAttempt();
    // A device with valid certificates checks in at start (the first connection after boot).
    Clock::TimePoint next_check_in = clock_.Now();
    while (!stop.stop_requested() && !reboot_asked_) {
      status_.next_attempt = UnixSeconds(next);
      Clock::TimePoint until = next;
      if (credentials_.runtime_certificate()) until = std::min(until, next_check_in);
      if (const auto trial = os_agent_ ? os_agent_->TrialDeadline() : std::nullopt) {
        until = std::min(until, *trial);
      }
      waiter_.WaitUntil(lock, until, [&] { return stop.stop_requested() || attest_requested_; });
      if (stop.stop_requested()) break;
      const bool attest = attest_requested_ || clock_.Now() >= next;
      const bool check_in = credentials_.runtime_certificate() && clock_.Now() >= next_check_in;
      lock.unlock();
      TickTrial();
      lock.lock();
      if (!attest && !check_in) continue;
      attest_requested_ = false;
      // Requests made up to now are answered by this attempt; later ones wait for the next.
      const std::uint64_t serving = requests_;
      lock.unlock();
      bool trusted = false;
      if (attest) {
        bool refused = false;
        next = AttestOnce(&trusted, &refused);
        if (trusted) {
          next_check_in = clock_.Now();
          attested_ = true;
        }
        if (refused) Unhealthy("attestation refused: " + Reason());
        // Those who asked are answered now, not after the check-in (and its downloads) below.
        const std::lock_guard answered(waiter_.mutex());
        served_ = std::max(served_, serving);
        done_.notify_all();
      }
      bool refused = false;
      if (credentials_.runtime_certificate() && clock_.Now() >= next_check_in && !reboot_asked_) {
        bool checked_in = false;
        next_check_in = CheckInOnce(&refused, &checked_in);
        // The service no longer accepts these certificates (revoked?): attest again now.
        if (refused && !attest) next = clock_.Now();
        // Healthy: this OS attested and checked in since it started.
        if (checked_in && attested_ && !reported_healthy_ && os_agent_ != nullptr) {
          reported_healthy_ = true;
          if (auto ok = os_agent_->Healthy(); !ok) {
            log::Error("the update agent failed: {}", ok.error().message());
          }
        }
      }
      lock.lock();
    }
  }

  const update::PublisherTrust& trust() const { return trust_; }

  Json Handle(const Json& request) {
    const std::string command = request.value("command", "");
    if (command == wire::admin::kStatus) return StatusJson();
    if (command == wire::admin::kAttest) {
      std::unique_lock lock(waiter_.mutex());
      const auto mine = ++requests_;
      attest_requested_ = true;
      waiter_.NotifyAll();
      if (!done_.wait_for(lock, std::chrono::seconds(90), [&] { return served_ >= mine; })) {
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
    // A new OS on trial proves itself now: certificates from the old one do not count.
    if (os_agent_ != nullptr && os_agent_->record().step == update::Step::kTrial) {
      return clock_.Now();
    }
    return attest::RenewalTime(cert->NotBefore(), cert->NotAfter(), uniform_);
  }

  std::string Reason() {
    const std::lock_guard lock(waiter_.mutex());
    return status_.reason;
  }

  void Unhealthy(const std::string& reason) {
    if (os_agent_ == nullptr) return;
    if (auto ok = os_agent_->Unhealthy(reason); !ok) {
      log::Error("the update agent failed: {}", ok.error().message());
    }
  }

  void TickTrial() {
    if (os_agent_ == nullptr) return;
    if (auto ok = os_agent_->Tick(); !ok) {
      log::Error("the update agent failed: {}", ok.error().message());
    }
  }

  // Hands each downloaded target to its update agent, and turns the statuses of the targets into
  // where their installs stand.
  void InstallTargets(const std::vector<wire::UpdateTarget>& targets,
                      std::vector<wire::TargetStatus>& statuses) {
    for (const auto& t : targets) {
      const auto status = std::find_if(statuses.begin(), statuses.end(),
                                       [&](const auto& s) { return s.image_id == t.image_id; });
      const auto kind = package::KindFromName(t.kind);
      if (status == statuses.end() || !kind) continue;
      const auto staged = status->state == wire::kDownloaded ? staging_.Staged(t) : std::nullopt;
      if (*kind == package::Kind::kOs && os_agent_ != nullptr) InstallOs(t, staged, *status);
      if (package::IsApp(*kind) && app_agent_ != nullptr) InstallApp(t, staged, *status);
    }
  }

  void InstallOs(const wire::UpdateTarget& t, const std::optional<std::filesystem::path>& staged,
                 wire::TargetStatus& status) {
    const update::OsRecord& done = os_agent_->record();
    const bool settled =
        done.installed_image_id == t.image_id ||
        (done.target.image_id == t.image_id && done.outcome == update::Outcome::kReverted);
    // An image installed or reverted already is not read and verified again at each check-in.
    if (staged && !settled) {
      // What the package says of itself, signed, not what the service said of it.
      auto signed_manifest = StagedManifest(*staged);
      auto ok = signed_manifest ? Expected<void>() : std::unexpected(signed_manifest.error());
      if (ok) {
        const package::Manifest& m = *signed_manifest;
        const update::OsTarget target{m.image_id, m.version, m.security_version, *staged};
        // The OS already running (a factory install) is adopted, not installed again.
        ok = Runs(m) ? os_agent_->Adopt(target) : os_agent_->Install(target);
      }
      if (!ok) {
        log::Warning("OS {} not installed: {}", t.version, ok.error().message());
        status = {t.image_id, std::string(wire::kFailed), ok.error().message()};
        return;
      }
    }
    const update::OsRecord& r = os_agent_->record();
    InstallStatus(r.installed_image_id, r.target.image_id, r.step == update::Step::kIdle, r.outcome,
                  r.reason, status);
  }

  // The agent judges the version at once (update::CheckAppRunsHere) and reverts one that cannot
  // run here.
  void InstallApp(const wire::UpdateTarget& t, const std::optional<std::filesystem::path>& staged,
                  wire::TargetStatus& status) {
    if (staged) {
      auto ok =
          app_agent_->Install({t.component_id, t.image_id, t.version, t.security_version, *staged});
      if (!ok && ok.error() == update::UpdateErrc::kDeferred) {
        status.reason = ok.error().message();  // downloaded; installed once the app allows it
        return;
      }
      if (!ok) {
        log::Warning("app {} {} not installed: {}", t.component_id, t.version,
                     ok.error().message());
        status = {t.image_id, std::string(wire::kFailed), ok.error().message()};
        return;
      }
    }
    const auto record = app_agent_->records().find(t.component_id);
    if (record == app_agent_->records().end()) return;
    const update::AppRecord& r = record->second;
    InstallStatus(r.installed_image_id, r.target.image_id, r.step == update::AppStep::kIdle,
                  r.outcome, r.reason, status);
  }

  // The verified manifest of the staged package at `staged`.
  Expected<package::Manifest> StagedManifest(const std::filesystem::path& staged) const {
    auto source = package::FileSource::Open(staged);
    if (!source) return std::unexpected(source.error());
    auto reader = package::Reader::Open(*source, trust_.Publishers());
    if (!reader) return std::unexpected(reader.error());
    return reader->manifest();
  }

  // Whether the booted OS is the one `m` describes: its signed "os" measurement is the one this
  // launch measured.
  bool Runs(const package::Manifest& m) const {
    const auto& measured = m.measurements;
    const auto signed_os = measured.find("os");
    return signed_os != measured.end() &&
           std::any_of(events_.begin(), events_.end(), [&](const wire::MeasurementEvent& e) {
             return e.component == "os" && e.digest == signed_os->second;
           });
  }

  // What is installed, for the service to offer deltas from: the OS and each app.
  std::vector<wire::InstalledImage> InstalledImages() const {
    std::vector<wire::InstalledImage> out;
    if (os_agent_ != nullptr && !os_agent_->record().installed_image_id.empty()) {
      const update::OsRecord& r = os_agent_->record();
      out.push_back({r.installed_image_id, "", r.installed_version});
    }
    if (app_agent_ != nullptr) {
      for (const auto& [component, r] : app_agent_->records()) {
        if (!r.installed_image_id.empty()) {
          out.push_back({r.installed_image_id, component, r.installed_version});
        }
      }
    }
    return out;
  }

  // The installed tree a delta offered for `t` rebuilds from: the version it names, when that
  // is what runs and no install of its component is under way.
  std::optional<std::filesystem::path> DeltaBase(const wire::UpdateTarget& t) const {
    const auto kind = package::KindFromName(t.kind);
    if (!t.delta || !kind) return std::nullopt;
    const std::string& base = t.delta->base_image_id;
    if (*kind == package::Kind::kOs && os_agent_ != nullptr) {
      const update::OsRecord& r = os_agent_->record();
      if (r.step == update::Step::kIdle && r.installed_image_id == base) return config_.os_image;
    }
    if (package::IsApp(*kind) && app_agent_ != nullptr) {
      const auto found = app_agent_->records().find(t.component_id);
      if (found != app_agent_->records().end() && found->second.step == update::AppStep::kIdle &&
          found->second.installed_image_id == base) {
        return app_agent_->Current(t.component_id).parent_path() / base;
      }
    }
    return std::nullopt;
  }

  // The OS version running: the one on trial, the one installed, or the one configured.
  std::string RunningOsVersion() const {
    if (os_agent_ != nullptr) {
      const update::OsRecord& r = os_agent_->record();
      if (r.step == update::Step::kTrial) return r.target.version;
      if (!r.installed_version.empty()) return r.installed_version;
    }
    return config_.os_version;
  }

  // One attestation; returns when to attest next, and sets *trusted or *refused.
  Clock::TimePoint AttestOnce(bool* trusted, bool* refused) {
    std::optional<std::chrono::seconds> retry_after;  // the service's own "not before"
    auto issued = attest::Attest(client_, *rot_, events_, credentials_.runtime_key(),
                                 credentials_.app_key(), roots_, clock_.Now(), &retry_after);
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
        *trusted = true;
        verdict = "trusted";
        next =
            attest::RenewalTime(issued->runtime.NotBefore(), issued->runtime.NotAfter(), uniform_);
        log::Info("attested: certificates valid until Unix time {}",
                  UnixSeconds(issued->runtime.NotAfter()));
      }
    } else if (issued.error() == wire::WireErrc::kRefused) {
      // A device the service does not trust must not keep presenting its old credentials.
      *refused = true;
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
      next = now + backoff_.NextDelay(retry_after);
      log::Warning("attestation failed ({} in a row): {}", backoff_.failures(), reason);
    }
    const std::lock_guard lock(waiter_.mutex());
    status_.verdict = verdict;
    status_.reason = reason;
    status_.last_attempt = UnixSeconds(now);
    const auto& cert = credentials_.runtime_certificate();
    status_.certificate_expiry = cert ? UnixSeconds(cert->NotAfter()) : 0;
    if (cert) status_.tenant = TenantOf(*cert);
    return next;
  }

  // One check-in; returns when to check in next, sets *refused when the service refused the
  // runtime certificate, and *checked_in when the check-in and its manifest were good.
  Clock::TimePoint CheckInOnce(bool* refused, bool* checked_in) {
    const auto now = clock_.Now();
    bool reported_all = true;  // the targets' statuses are what this check-in reported
    bool downloads_pending = false;
    std::optional<std::chrono::seconds> retry_after;  // the service's own "not before"
    auto outcome = [&]() -> Expected<wire::UpdateManifest> {
      auto tls = crypto::tls::ClientContext(roots_, credentials_.runtime_chain(),
                                            &credentials_.runtime_key());
      if (!tls) return std::unexpected(tls.error());
      const wire::HttpsClient client(endpoint_, *tls);
      wire::CheckIn report{.device_id = device_id_,
                           .os_version = RunningOsVersion(),
                           .runtime_version = kRuntimeVersion,
                           .images = InstalledImages(),
                           .publisher_root = trust_.RootFingerprint(),
                           .board = staging_.board()};
      {
        const std::lock_guard lock(waiter_.mutex());
        report.targets = status_.targets;
      }
      // Reasons come from packages and apps others wrote: one too long must not make the
      // service refuse the whole check-in.
      for (auto& t : report.targets) t.reason = text::Truncated(t.reason, wire::kMaxReason);
      auto parsed = wire::PostCheckIn(client, report, &retry_after);
      if (!parsed) {
        *refused = parsed.error() == wire::WireErrc::kRefused;
        return std::unexpected(parsed.error());
      }
      std::uint64_t last = 0;
      std::string tenant;
      {
        const std::lock_guard lock(waiter_.mutex());
        last = status_.manifest_sequence;
        tenant = status_.tenant;
      }
      auto manifest = update::VerifyUpdateManifest(*parsed, {.device_id = device_id_,
                                                             .tenant = tenant,
                                                             .last_sequence = last,
                                                             .roots = roots_,
                                                             .now = clock_.Now()});
      if (!manifest) return manifest;
      if (auto ok = rot_->AdvanceCounter(kManifestSequenceCounter, manifest->sequence); !ok) {
        return std::unexpected(
            std::move(ok.error()).WithContext("recording the manifest sequence"));
      }
      std::string keys_error;
      if (!parsed->publisher_keys.empty()) {
        if (auto ok = trust_.Offer(parsed->publisher_keys, tenant, clock_.Now()); !ok) {
          keys_error = ok.error().message();
          log::Warning("publisher key set refused: {}", keys_error);
        }
      }
      // Downloads get a time budget per check-in, so attestation renewals are never starved;
      // what is left resumes at the next check-in.
      // An attestation asked for on the admin socket pauses them too.
      const auto deadline = std::chrono::steady_clock::now() + config_.download_budget;
      const auto keep_going = [this, deadline] {
        const std::lock_guard lock(waiter_.mutex());
        return !stop_.stop_requested() && !attest_requested_ &&
               std::chrono::steady_clock::now() < deadline;
      };
      ServiceImages images(client, [this, deadline, &keep_going](std::chrono::seconds wait) {
        if (!keep_going()) return false;
        const auto left = std::chrono::duration_cast<std::chrono::seconds>(
            deadline - std::chrono::steady_clock::now());
        const auto until =
            clock_.Now() + std::min({wait, std::chrono::seconds(30), std::max(left, {})});
        std::unique_lock lock(waiter_.mutex());
        waiter_.WaitUntil(lock, until,
                          [this] { return stop_.stop_requested() || attest_requested_; });
        lock.unlock();
        return keep_going();
      });
      auto targets = staging_.Sync(manifest->targets, images, trust_, clock_.Now(), keep_going,
                                   [this](const wire::UpdateTarget& t) { return DeltaBase(t); });
      downloads_pending = std::any_of(targets.begin(), targets.end(),
                                      [](const auto& t) { return t.state == wire::kDownloading; });
      InstallTargets(manifest->targets, targets);
      const std::lock_guard lock(waiter_.mutex());
      status_.publisher_keys_error = keys_error;
      reported_all = targets == status_.targets;
      status_.targets = std::move(targets);
      return manifest;
    }();
    const std::lock_guard lock(waiter_.mutex());
    if (!outcome) {
      status_.check_in_error = outcome.error().message();
      log::Warning("check-in failed: {}", status_.check_in_error);
      return now + check_in_backoff_.NextDelay(retry_after);
    }
    check_in_backoff_.Reset();
    *checked_in = true;
    status_.check_in_error.clear();
    status_.last_check_in = UnixSeconds(now);
    status_.manifest_sequence = outcome->sequence;
    log::Info("checked in: update manifest {} verified ({} targets)", outcome->sequence,
              outcome->targets.size());
    // New statuses are reported at once (once), so the operator sees downloads as they finish.
    const bool report_now = !reported_all && !reporting_;
    reporting_ = report_now;
    if (report_now) return now;
    // Downloads that paused or were interrupted resume soon, not at the next regular check-in.
    if (downloads_pending) {
      return now + std::min<std::chrono::seconds>(config_.check_in_interval, kDownloadResume);
    }
    const auto jitter = std::chrono::duration_cast<std::chrono::seconds>(config_.check_in_interval *
                                                                         uniform_() / 10);
    return now + config_.check_in_interval - jitter;
  }

  Json StatusJson() {
    const std::lock_guard lock(waiter_.mutex());
    Json targets = Json::array();
    for (const auto& t : status_.targets) {
      targets.push_back({{"image_id", t.image_id}, {"state", t.state}, {"reason", t.reason}});
    }
    Json measurements = Json::array();
    for (const auto& e : events_) {
      measurements.push_back({{"component", e.component}, {"digest", crypto::ToHex(e.digest)}});
    }
    return {{"device_id", device_id_},
            {"tenant", status_.tenant},
            {"rot", rot_->Backend()},
            {"runtime_key", credentials_.runtime_key().tpm_held() ? "tpm" : "file"},
            {"attestation",
             {{"verdict", status_.verdict},
              {"reason", status_.reason},
              {"last_attempt", status_.last_attempt},
              {"next_attempt", status_.next_attempt}}},
            {"certificate_expiry", status_.certificate_expiry},
            {"last_check_in", status_.last_check_in},
            {"manifest_sequence", status_.manifest_sequence},
            {"check_in_error", status_.check_in_error},
            {"publisher_root", trust_.RootFingerprint()},
            {"publisher_keys_error", status_.publisher_keys_error},
            {"update_error", update_error_},
            {"targets", targets},
            {"measurements", measurements}};
  }

  const DaemonConfig& config_;
  const WaitableClock& clock_;
  Waiter waiter_;  // what the loop sleeps on; its mutex guards status_ and the requests
  std::unique_ptr<rot::RootOfTrust> rot_;
  const std::vector<wire::MeasurementEvent> events_;
  Credentials credentials_;
  const std::vector<crypto::Certificate> roots_;
  const wire::Endpoint endpoint_;
  const wire::HttpsClient client_;
  const std::string device_id_;
  update::PublisherTrust trust_;  // used by the loop's thread only
  update::Staging staging_;
  update::OsAgent* os_agent_;       // null without a bootloader; used by the loop's thread only
  update::AppAgent* app_agent_;     // used by the loop's thread only
  const bool& reboot_asked_;        // set by the agent, on the loop's thread
  const std::string update_error_;  // why an update agent is off
  bool attested_ = false;           // this run attested trusted
  bool reported_healthy_ = false;
  bool reporting_ = false;  // the next check-in is to report new target statuses
  std::stop_token stop_;
  attest::Uniform uniform_;
  attest::Backoff backoff_;
  attest::Backoff check_in_backoff_;

  std::condition_variable done_;
  bool attest_requested_ = false;
  std::uint64_t requests_ = 0;  // attestations asked for on the admin socket
  std::uint64_t served_ = 0;    // of those, how many an attempt that began after them answered
  Status status_;
};

// On the TPM backend the root of trust and the tpm2-openssl provider (the runtime key) each keep a
// connection to the TPM, so the TCTI must go through a resource manager that shares it.
Expected<void> RequireSharedTcti(std::string_view tcti) {
  const bool broker = tcti == "tabrmd" || tcti.starts_with("tabrmd:");
  const bool kernel_manager = tcti.starts_with("device:") && tcti.find("tpmrm") != tcti.npos;
  if (broker || kernel_manager) return {};
  return Fail(CoreErrc::kInvalidArgument,
              "TCTI \"" + std::string(tcti) +
                  "\" serves one connection, but the root of trust and the TPM-held runtime key "
                  "each need one: use a resource manager (tabrmd:... or device:/dev/tpmrm0)");
}

// The ID of this boot, from `path`.
Expected<std::string> ReadBootId(const std::filesystem::path& path) {
  auto text = file::Read(path, 4096);
  if (!text) return std::unexpected(std::move(text.error()).WithContext("boot ID"));
  std::string id(AsString(*text));
  id.erase(id.find_last_not_of(" \n") + 1);
  if (id.empty()) return Fail(CoreErrc::kParse, path.string() + " holds no boot ID");
  return id;
}

}  // namespace

Expected<std::string> BoardName(const std::filesystem::path& definition) {
  auto text = file::Read(definition, file::kSmallFileLimit);
  if (!text) return std::unexpected(std::move(text.error()).WithContext("board definition"));
  auto doc = json::Parse(AsString(*text));
  const Json* description =
      doc && doc->is_object() && doc->contains("Description") ? &(*doc)["Description"] : nullptr;
  if (description == nullptr || !description->is_object() ||
      !description->value("Name", Json()).is_string() || description->value("Name", "").empty()) {
    return Fail(CoreErrc::kParse, "the board definition " + definition.string() +
                                      " names no board (Description.Name)");
  }
  return description->value("Name", "");
}

Expected<DaemonExit> RunDaemon(const DaemonConfig& given, const Env& env,
                               const std::stop_token& stop) {
  DaemonConfig config = given;
  // With a bootloader, the slot it booted is the OS: measured, and holding the trust bundle.
  std::optional<update::SimulatedBootloader> bootloader;
  std::string boot_id;
  if (!config.bootloader.empty()) {
    auto id = ReadBootId(config.boot_id_file);
    if (!id) return std::unexpected(id.error());
    boot_id = *id;
    auto opened = update::SimulatedBootloader::Open(env.fs, config.slots);
    if (!opened) return std::unexpected(std::move(opened.error()).WithContext("bootloader"));
    auto slot = opened->Boot(boot_id);
    if (!slot) return std::unexpected(std::move(slot.error()).WithContext("booting a slot"));
    config.os_image = opened->SlotDir(*slot);
    config.trust_bundle = config.os_image / package::kTrustBundleInRootfs;
    log::Info("booted slot {} ({})", update::SlotName(*slot), config.os_image.string());
    bootloader = std::move(*opened);
  }
  auto bundle = file::Read(config.trust_bundle, file::kSmallFileLimit);
  if (!bundle) return std::unexpected(std::move(bundle.error()).WithContext("trust bundle"));
  auto roots = crypto::Certificate::ChainFromPem(AsString(*bundle));
  if (!roots) {
    return std::unexpected(
        std::move(roots.error()).WithContext("trust bundle " + config.trust_bundle.string()));
  }
  auto os_publishers = crypto::PublicKey::AllFromPem(AsString(*bundle));
  if (!os_publishers) {
    return std::unexpected(
        std::move(os_publishers.error()).WithContext("OS publisher keys in the trust bundle"));
  }
  crypto::dsse::TrustedKeys os_keys;
  for (const auto& key : *os_publishers) os_keys.Add(key);
  const crypto::dsse::TrustedKeys installer_keys = os_keys;
  auto board = BoardName(config.board);
  if (!board) return std::unexpected(board.error());
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
  auto events =
      measure::MeasureLaunch(**rot,
                             measure::LaunchComponents(config.os_image, config.aspisd_binary,
                                                       config.board, config.trust_bundle),
                             config.state_dir / "measurements.json", env.fs);
  if (!events) return std::unexpected(std::move(events.error()).WithContext("measured launch"));
  // A booted slot must hold the OS its signed header names, at or above the anti-rollback
  // counter: an owner who puts an old slot back does not get it run.
  if (bootloader) {
    auto counter = (*rot)->ReadCounter(update::kOsSecurityVersionCounter);
    if (!counter) return std::unexpected(counter.error());
    const auto os =
        std::find_if(events->begin(), events->end(),
                     [](const wire::MeasurementEvent& e) { return e.component == "os"; });
    if (os == events->end()) return Fail(CoreErrc::kInvalidArgument, "no OS measurement");
    auto booted_os =
        update::CheckBootedOs(config.os_image, {.os = &installer_keys}, os->digest, *counter);
    if (!booted_os) return std::unexpected(std::move(booted_os.error()).WithContext("booted OS"));
  }
  std::optional<crypto::TpmKeyStore> tpm_keys;
  if (config.rot == "tpm2") {
    if (auto ok = RequireSharedTcti(config.tcti); !ok) return std::unexpected(ok.error());
    auto opened = crypto::TpmKeyStore::Open(config.tcti);
    if (!opened) return std::unexpected(std::move(opened.error()).WithContext("runtime key"));
    tpm_keys = std::move(*opened);
  }
  auto credentials = Credentials::Open(config.state_dir, tpm_keys ? &*tpm_keys : nullptr);
  if (!credentials) return std::unexpected(credentials.error());
  auto sequence = (*rot)->ReadCounter(kManifestSequenceCounter);
  if (!sequence) {
    return std::unexpected(std::move(sequence.error()).WithContext("the manifest sequence"));
  }

  auto trust = update::PublisherTrust::Open(config.state_dir / "publisher-keys.json",
                                            std::move(os_keys), config.publisher_root, env.fs);
  if (!trust) return std::unexpected(trust.error());
  auto staging = update::Staging::Open(config.state_dir / "staging",
                                       {.board = *board, .capacity = config.staging_capacity});
  if (!staging) return std::unexpected(staging.error());

  // The OS update agent resumes what a restart interrupted before anything else runs.
  bool reboot_asked = false;
  std::string update_error;  // why an agent is off, for the admin socket
  if (auto ok = file::EnsureDirectory(config.state_dir / "update", 0700); !ok) {
    return std::unexpected(ok.error());
  }
  state::StateStore update_state(env.fs, config.state_dir / "update");
  std::optional<update::DirectorySlotWriter> slot_writer;
  std::optional<update::OsAgent> os_agent;
  if (bootloader) {
    slot_writer.emplace([&](update::Slot slot) { return bootloader->SlotDir(slot); },
                        package::Publishers{.os = &installer_keys}, *board);
    auto agent = update::OsAgent::Open({.env = env,
                                        .store = update_state,
                                        .boot = *bootloader,
                                        .writer = *slot_writer,
                                        .rot = **rot,
                                        .reboot = [&reboot_asked] { reboot_asked = true; },
                                        .trial_time = config.trial_time},
                                       boot_id);
    // A damaged record stops OS updates, not the device: it still attests and reports why.
    if (agent) {
      os_agent.emplace(std::move(*agent));
      if (auto ok = os_agent->Resume(); !ok) {
        return std::unexpected(std::move(ok.error()).WithContext("resuming the OS update"));
      }
      // A committed OS that started gets its boot tries back, so ordinary reboots never use
      // them up (a new OS on trial earns it by attesting).
      if (os_agent->record().step == update::Step::kIdle) {
        if (auto ok = os_agent->Healthy(); !ok) {
          return std::unexpected(std::move(ok.error()).WithContext("marking the OS good"));
        }
      }
    } else {
      update_error = "OS updates are off: " + agent.error().message();
      log::Error("{}", update_error);
    }
    if (reboot_asked) return DaemonExit::kReboot;
  }
  // Apps verify against the tenant's publishers, which the device holds once it runs.
  const update::PublisherTrust* publishers = nullptr;
  auto app_agent =
      update::AppAgent::Open({.store = update_state,
                              .apps_dir = config.state_dir / "apps",
                              .publishers = [&publishers] { return publishers->Publishers(); },
                              .health = update::CheckAppRunsHere});
  if (!app_agent) {
    update_error = "app updates are off: " + app_agent.error().message();
    log::Error("{}", update_error);
  }

  Device device(config, env, std::move(*rot), std::move(*events), std::move(*credentials),
                std::move(*roots), *endpoint, wire::HttpsClient(*endpoint, *tls),
                identity->device_id, *sequence, std::move(*trust), std::move(*staging),
                {os_agent ? &*os_agent : nullptr, app_agent ? &*app_agent : nullptr}, reboot_asked,
                update_error);
  publishers = &device.trust();
  if (app_agent) {
    if (auto ok = app_agent->Resume(); !ok) {
      log::Error("resuming app updates failed: {}", ok.error().message());
    }
  }
  auto admin = AdminSocket::Start(config.admin_socket,
                                  [&device](const json::Json& r) { return device.Handle(r); });
  if (!admin) return std::unexpected(std::move(admin.error()).WithContext("admin socket"));
  log::Info("aspisd running as device {}", identity->device_id);
  device.Run(stop);
  if (reboot_asked) {
    log::Info("aspisd stopping for a reboot");
    return DaemonExit::kReboot;
  }
  log::Info("aspisd stopping");
  return DaemonExit::kStopped;
}

}  // namespace aspis::device
