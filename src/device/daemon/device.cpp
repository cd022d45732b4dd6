#include "device/daemon/device.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include "core/log.hpp"
#include "core/text.hpp"
#include "device/update/errors.hpp"
#include "device/update/manifest_check.hpp"
#include "package/measure.hpp"
#include "wire/admin.hpp"
#include "wire/device_api.hpp"
#include "wire/errors.hpp"

namespace aspis::device {

namespace {

using json::Json;

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

// Targets fetched over the service link. An answer asking to retry later (429, 503) is waited out
// through `pause`, which says whether to go on.
class LinkedImages final : public update::ImageSource {
 public:
  using Pause = std::function<bool(std::chrono::seconds)>;
  LinkedImages(ServiceLink& service, Pause pause) : service_(service), pause_(std::move(pause)) {}
  Expected<std::string> Fetch(std::string_view url, std::uint64_t first,
                              std::uint64_t length) override {
    for (;;) {
      RetryAfter later;
      auto bytes = service_.Fetch(url, first, length, &later);
      if (bytes || !later || !pause_(*later)) return bytes;
    }
  }

 private:
  ServiceLink& service_;
  Pause pause_;
};

}  // namespace

Device::Device(DeviceParts parts)
    : config_(parts.config),
      clock_(parts.env.clock),
      waiter_(parts.env.clock),
      service_(parts.service),
      rot_(std::move(parts.rot)),
      events_(std::move(parts.events)),
      credentials_(std::move(parts.credentials)),
      roots_(std::move(parts.roots)),
      device_id_(std::move(parts.device_id)),
      trust_(std::move(parts.trust)),
      staging_(std::move(parts.staging)),
      os_agent_(parts.os),
      app_agent_(parts.apps),
      app_manager_(parts.app_manager),
      system_events_(parts.system_events),
      errors_(parts.errors),
      reboot_asked_(parts.reboot_asked),
      update_error_(std::move(parts.update_error)),
      booted_os_(std::move(parts.booted_os)),
      booted_security_version_(parts.booted_security_version),
      uniform_(parts.env.uniform),
      backoff_(config_.retry_base, config_.retry_cap, uniform_),
      check_in_backoff_(config_.retry_base, config_.retry_cap, uniform_) {
  status_.manifest_sequence = parts.manifest_sequence;
  if (const auto& cert = credentials_.runtime_certificate();
      cert && cert->NotAfter() > clock_.Now()) {
    status_.verdict = "trusted";
    status_.reason = "certificates from an earlier attestation";
    status_.certificate_expiry = UnixSeconds(cert->NotAfter());
    status_.tenant = TenantOf(*cert);
  }
}

void Device::Run(const std::stop_token& stop) {
  stop_ = stop;
  // Registered before the lock is taken: it runs at once, taking the lock, if stop was asked.
  std::stop_callback wake(stop, [this] {
    const std::lock_guard lock(waiter_.mutex());
    waiter_.NotifyAll();
  });
  std::unique_lock lock(waiter_.mutex());
  started_ = clock_.Now();
  Clock::TimePoint next = FirstAttempt();
  // A device with valid certificates checks in at start (the first connection after boot).
  Clock::TimePoint next_check_in = clock_.Now();
  while (!stop.stop_requested() && !RebootAsked()) {
    status_.next_attempt = UnixSeconds(next);
    Clock::TimePoint until = next;
    if (credentials_.runtime_certificate()) until = std::min(until, next_check_in);
    if (const auto trial = os_agent_ ? os_agent_->TrialDeadline() : std::nullopt) {
      until = std::min(until, *trial);
    }
    if (install_wait_) until = std::min(until, *install_wait_);
    if (app_reboot_) until = std::min(until, started_ + kAppRebootHold);
    waiter_.WaitUntil(lock, until, [&] {
      return stop.stop_requested() || attest_requested_ || reconsider_ || RebootAsked();
    });
    if (RebootAsked()) break;
    if (stop.stop_requested()) break;
    const bool reconsider =
        std::exchange(reconsider_, false) || (install_wait_ && clock_.Now() >= *install_wait_);
    const bool attest = attest_requested_ || clock_.Now() >= next;
    const bool check_in = credentials_.runtime_certificate() && clock_.Now() >= next_check_in;
    lock.unlock();
    TickTrial();
    // What the apps held back is asked about again here, not by checking in: only an install
    // that happened is reported at once.
    if (reconsider && install_wait_ && InstallHeld()) next_check_in = clock_.Now();
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
    if (credentials_.runtime_certificate() && clock_.Now() >= next_check_in && !RebootAsked()) {
      bool checked_in = false;
      next_check_in = CheckInOnce(&refused, &checked_in);
      if (checked_in) checked_in_ = true;
      // The service no longer accepts these certificates (revoked?): attest again now.
      if (refused && !attest) next = clock_.Now();
      // Healthy: this OS attested and checked in since it started.
      if (checked_in && attested_ && !reported_healthy_ && os_agent_ != nullptr) {
        reported_healthy_ = true;
        const bool on_trial = os_agent_->record().step == update::Step::kTrial;
        if (auto ok = os_agent_->Healthy(); !ok) {
          log::Error("the update agent failed: {}", ok.error().message());
        }
        // The check-in reported the OS on trial: the commit is reported now, not a day later.
        if (on_trial) {
          RefreshOsStatus();
          next_check_in = clock_.Now();
        }
      }
    }
    lock.lock();
  }
}

bool Device::RebootAsked() const {
  const bool app_reboot_due =
      app_reboot_.load() && (checked_in_ || clock_.Now() >= started_ + kAppRebootHold);
  return app_reboot_due || (reboot_asked_ != nullptr && *reboot_asked_);
}

void Device::RequestReboot() {
  const std::lock_guard lock(waiter_.mutex());
  app_reboot_ = true;
  waiter_.NotifyAll();
}

void Device::ReconsiderHeldUpdate() {
  const std::lock_guard lock(waiter_.mutex());
  reconsider_ = true;
  waiter_.NotifyAll();
}

bool Device::InstallHeld() {
  std::vector<wire::TargetStatus> statuses;
  {
    const std::lock_guard lock(waiter_.mutex());
    statuses = status_.targets;
  }
  InstallTargets(held_targets_, statuses);
  const std::lock_guard lock(waiter_.mutex());
  const bool changed = statuses != status_.targets;
  status_.targets = std::move(statuses);
  return changed;
}

Json Device::Handle(const Json& request) {
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
  if (command.starts_with("app-")) return HandleApps(command, request);
  return {{"error", "unknown command \"" + command +
                        "\" (status, attest, app-list, app-show-status, app-start, app-stop)"}};
}

std::string Device::Tenant() {
  const std::lock_guard lock(waiter_.mutex());
  return status_.tenant;
}

void Device::Report(std::string_view type, std::string_view event_class, std::string description) {
  if (errors_ != nullptr) {
    errors_->Add(type, event_class, std::move(description), UnixSeconds(clock_.Now()));
  }
}

Json Device::HandleApps(const std::string& command, const Json& request) {
  if (app_manager_ == nullptr) return {{"error", "aspisd does not run apps (see --run-apps)"}};
  const auto to_json = [](const apps::AppStatus& s) {
    return Json{{"component_id", s.component_id},
                {"name", s.name},
                {"state", s.state},
                {"pid", s.pid},
                {"memory_bytes", s.memory_bytes},
                {"memory_peak_bytes", s.memory_peak},
                {"restarts", s.restarts},
                {"last_exit", s.last_exit},
                {"storage_bytes", s.storage_bytes},
                {"storage_limit", s.storage_limit}};
  };
  if (command == wire::admin::kAppList) {
    Json list = Json::array();
    for (const auto& status : app_manager_->Status()) list.push_back(to_json(status));
    return {{"apps", std::move(list)}};
  }
  const std::string component = request.value("component_id", "");
  if (command == wire::admin::kAppStart) {
    if (auto ok = app_manager_->Start(component); !ok) return {{"error", ok.error().message()}};
  } else if (command == wire::admin::kAppStop) {
    app_manager_->Stop(component);
  } else if (command != wire::admin::kAppStatus && command != wire::admin::kAppQuota) {
    return {{"error", "unknown command \"" + command + "\""}};
  }
  const auto status = app_manager_->Status(component);
  if (!status) return {{"error", "no app " + component + " is installed"}};
  return to_json(*status);
}

Clock::TimePoint Device::FirstAttempt() const {
  const auto& cert = credentials_.runtime_certificate();
  if (!cert || cert->NotAfter() <= clock_.Now()) return clock_.Now();
  // A new OS on trial proves itself now: certificates from the old one do not count.
  if (os_agent_ != nullptr && os_agent_->record().step == update::Step::kTrial) {
    return clock_.Now();
  }
  return attest::RenewalTime(cert->NotBefore(), cert->NotAfter(), uniform_);
}

std::string Device::Reason() {
  const std::lock_guard lock(waiter_.mutex());
  return status_.reason;
}

void Device::Unhealthy(const std::string& reason) {
  if (os_agent_ == nullptr) return;
  if (auto ok = os_agent_->Unhealthy(reason); !ok) {
    log::Error("the update agent failed: {}", ok.error().message());
  }
}

void Device::RefreshOsStatus() {
  const update::OsRecord& r = os_agent_->record();
  const std::lock_guard lock(waiter_.mutex());
  for (auto& status : status_.targets) {
    InstallStatus(r.installed_image_id, r.target.image_id, r.step == update::Step::kIdle, r.outcome,
                  r.reason, status);
  }
}

void Device::TickTrial() {
  if (os_agent_ == nullptr) return;
  if (auto ok = os_agent_->Tick(); !ok) {
    log::Error("the update agent failed: {}", ok.error().message());
  }
}

// Hands each downloaded target to its update agent, and turns the statuses of the targets into
// where their installs stand.
// The targets that would change what runs wait while the apps defer them (system_events.hpp).
void Device::InstallTargets(const std::vector<wire::UpdateTarget>& targets,
                            std::vector<wire::TargetStatus>& statuses) {
  const auto status_of = [&](const wire::UpdateTarget& t) {
    return std::find_if(statuses.begin(), statuses.end(),
                        [&](const auto& s) { return s.image_id == t.image_id; });
  };
  std::vector<std::string> changing;
  auto type = apps::UpdateType::kApp;
  for (const auto& t : targets) {
    const auto status = status_of(t);
    const auto kind = package::KindFromName(t.kind);
    if (status == statuses.end() || !kind || status->state != wire::kDownloaded) continue;
    if (ChangesWhatRuns(t, *kind)) {
      changing.push_back(t.image_id);
      if (*kind == package::Kind::kOs) type = apps::UpdateType::kSystem;
    }
  }
  const auto waited = std::exchange(install_wait_, std::nullopt);
  if (system_events_ != nullptr && !changing.empty()) {
    install_wait_ = system_events_->Hold(changing, type);
    if (install_wait_ && install_wait_ != waited) {
      log::Info("the update waits for the apps (UpdateReadyForInstall) until Unix time {}",
                UnixSeconds(*install_wait_));
    }
  }
  for (const auto& t : targets) {
    const auto status = status_of(t);
    const auto kind = package::KindFromName(t.kind);
    if (status == statuses.end() || !kind) continue;
    if (install_wait_ &&
        std::find(changing.begin(), changing.end(), t.image_id) != changing.end()) {
      // Without the time: a reason that changed would be reported by a check-in of its own.
      status->reason = "waiting for the apps to allow the update (UpdateReadyForInstall)";
      continue;
    }
    const auto staged = status->state == wire::kDownloaded ? staging_.Staged(t) : std::nullopt;
    if (*kind == package::Kind::kOs && os_agent_ != nullptr) InstallOs(t, staged, *status);
    if (package::IsApp(*kind) && app_agent_ != nullptr) InstallApp(t, staged, *status);
  }
  if (system_events_ == nullptr) return;
  if (!changing.empty() && !install_wait_) system_events_->Started(type);
  const bool waiting = std::any_of(statuses.begin(), statuses.end(), [](const auto& s) {
    return s.state == wire::kDownloading || s.state == wire::kDownloaded ||
           s.state == wire::kInstalling;
  });
  if (changing.empty() && !waiting) system_events_->NothingToUpdate();
}

namespace {

// Whether `image` is the version whose install was last tried, and reverted.
bool Reverted(const std::string& tried, update::Outcome outcome, const std::string& image) {
  return tried == image && outcome == update::Outcome::kReverted;
}

}  // namespace

bool Device::ChangesWhatRuns(const wire::UpdateTarget& t, package::Kind kind) const {
  if (kind == package::Kind::kOs && os_agent_ != nullptr) {
    const update::OsRecord& r = os_agent_->record();
    const bool running = booted_os_ && booted_os_->image_id == t.image_id;
    return !running && r.installed_image_id != t.image_id &&
           !Reverted(r.target.image_id, r.outcome, t.image_id);
  }
  if (package::IsApp(kind) && app_agent_ != nullptr) {
    const auto found = app_agent_->records().find(t.component_id);
    if (found == app_agent_->records().end()) return false;
    const update::AppRecord& r = found->second;
    return r.step == update::AppStep::kIdle && !r.installed_image_id.empty() &&
           r.installed_image_id != t.image_id &&
           !Reverted(r.target.image_id, r.outcome, t.image_id);
  }
  return false;
}

void Device::InstallOs(const wire::UpdateTarget& t,
                       const std::optional<std::filesystem::path>& staged,
                       wire::TargetStatus& status) {
  const update::OsRecord& done = os_agent_->record();
  const bool settled = done.installed_image_id == t.image_id ||
                       Reverted(done.target.image_id, done.outcome, t.image_id);
  // An image installed or reverted already is not read and verified again at each check-in.
  if (staged && !settled) {
    // What the package says of itself, signed, not what the service said of it.
    auto signed_manifest = StagedManifest(*staged);
    auto ok = signed_manifest ? Expected<void>() : std::unexpected(signed_manifest.error());
    if (ok) {
      const package::Manifest& m = *signed_manifest;
      const update::OsTarget target{m.image_id, m.version, m.security_version, *staged};
      // The OS already running (a factory install) is adopted, not installed again, unless it
      // is signed above its slot's header: raising the counter past that header would refuse
      // the slot at the next boot, so it is installed into the other slot like any new OS.
      const bool adopt = Runs(m) && (!booted_os_ || m.security_version <= booted_security_version_);
      ok = adopt ? os_agent_->Adopt(target) : os_agent_->Install(target);
    }
    if (!ok) {
      log::Warning("OS {} not installed: {}", t.version, ok.error().message());
      Report(wire::kPlanned, wire::kClassOs,
             "UpdateFailure - OS " + t.version + ": " + ok.error().message());
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
void Device::InstallApp(const wire::UpdateTarget& t,
                        const std::optional<std::filesystem::path>& staged,
                        wire::TargetStatus& status) {
  if (staged) {
    auto ok =
        app_agent_->Install({t.component_id, t.image_id, t.version, t.security_version, *staged});
    if (!ok) {
      log::Warning("app {} {} not installed: {}", t.component_id, t.version, ok.error().message());
      Report(wire::kPlanned, wire::kClassApplication,
             "UpdateFailure - component: " + t.component_id + "; version: " + t.version + "; " +
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
Expected<package::Manifest> Device::StagedManifest(const std::filesystem::path& staged) const {
  auto source = package::FileSource::Open(staged);
  if (!source) return std::unexpected(source.error());
  auto reader = package::Reader::Open(*source, trust_.Publishers());
  if (!reader) return std::unexpected(reader.error());
  return reader->manifest();
}

// Whether the booted OS is the one `m` describes: its signed "os" measurement is the one this
// launch measured.
bool Device::Runs(const package::Manifest& m) const {
  const auto& measured = m.measurements;
  const auto signed_os = measured.find("os");
  return signed_os != measured.end() &&
         std::any_of(events_.begin(), events_.end(), [&](const wire::MeasurementEvent& e) {
           return e.component == "os" && e.digest == signed_os->second;
         });
}

// What is installed, for the service to offer deltas from: the OS and each app.
std::vector<wire::InstalledImage> Device::InstalledImages() const {
  std::vector<wire::InstalledImage> out;
  if (booted_os_) out.push_back(*booted_os_);
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
std::optional<std::filesystem::path> Device::DeltaBase(const wire::UpdateTarget& t) const {
  const auto kind = package::KindFromName(t.kind);
  if (!t.delta || !kind) return std::nullopt;
  const std::string& base = t.delta->base_image_id;
  if (*kind == package::Kind::kOs && os_agent_ != nullptr) {
    // A delta rebuilds a root file system tree: partition images are fetched whole.
    std::error_code ec;
    if (os_agent_->record().step == update::Step::kIdle && booted_os_ &&
        booted_os_->image_id == base && std::filesystem::is_directory(config_.os_image, ec)) {
      return config_.os_image;
    }
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

// Removes the installed apps the targets do not list (the group's deployment no longer has them).
void Device::RetireApps(const std::vector<wire::UpdateTarget>& targets) {
  if (app_agent_ == nullptr) return;
  std::vector<std::string> deployed;
  for (const auto& t : targets) {
    const auto kind = package::KindFromName(t.kind);
    if (kind && package::IsApp(*kind)) deployed.push_back(t.component_id);
  }
  if (auto ok = app_agent_->Retire(deployed); !ok) {
    log::Error("removing apps no longer deployed failed: {}", ok.error().message());
  }
}

// The OS version running: the booted slot's, as its verified header says, or the one configured.
std::string Device::RunningOsVersion() const {
  return booted_os_ ? booted_os_->version : config_.os_version;
}

// One attestation; returns when to attest next, and sets *trusted or *refused.
Clock::TimePoint Device::AttestOnce(bool* trusted, bool* refused) {
  std::optional<std::chrono::seconds> retry_after;  // the service's own "not before"
  auto issued = service_.Attest(*rot_, events_, credentials_, clock_.Now(), &retry_after);
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
      next = attest::RenewalTime(issued->runtime.NotBefore(), issued->runtime.NotAfter(), uniform_);
      log::Info("attested: certificates valid until Unix time {}",
                UnixSeconds(issued->runtime.NotAfter()));
    }
  } else if (issued.error() == wire::WireErrc::kRefused) {
    // A device the service does not trust must not keep presenting its old credentials.
    *refused = true;
    verdict = "untrusted";
    reason = issued.error().message();
    Report(wire::kUnplanned, wire::kClassOs, "AttestationFailure - " + reason);
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
Clock::TimePoint Device::CheckInOnce(bool* refused, bool* checked_in) {
  const auto now = clock_.Now();
  bool reported_all = true;  // the targets' statuses are what this check-in reported
  bool downloads_pending = false;
  std::optional<std::chrono::seconds> retry_after;  // the service's own "not before"
  auto outcome = [&]() -> Expected<wire::UpdateManifest> {
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
    if (errors_ != nullptr) {
      std::tie(report.error_reports, report.error_reports_dropped) = errors_->Pending();
    }
    auto parsed = service_.CheckIn(report, credentials_, &retry_after);
    if (!parsed) {
      *refused = parsed.error() == wire::WireErrc::kRefused;
      return std::unexpected(parsed.error());
    }
    // Answered: the service stored the error report entries sent.
    if (errors_ != nullptr && (!report.error_reports.empty() || report.error_reports_dropped > 0)) {
      errors_->Acknowledge(report.error_reports.empty() ? 0 : report.error_reports.back().sequence,
                           report.error_reports_dropped);
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
      return std::unexpected(std::move(ok.error()).WithContext("recording the manifest sequence"));
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
    LinkedImages images(service_, [this, deadline, &keep_going](std::chrono::seconds wait) {
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
    held_targets_ = manifest->targets;
    InstallTargets(manifest->targets, targets);
    if (manifest->apps_complete) RetireApps(manifest->targets);
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
  const auto jitter =
      std::chrono::duration_cast<std::chrono::seconds>(config_.check_in_interval * uniform_() / 10);
  return now + config_.check_in_interval - jitter;
}
Json Device::StatusJson() {
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

}  // namespace aspis::device
