#include "device/update/os_agent.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.hpp"
#include "device/kill_point.hpp"
#include "device/update/errors.hpp"

namespace aspis::device::update {

namespace {

using json::Json;

constexpr char kRecord[] = "os";

constexpr std::pair<Step, std::string_view> kStepNames[] = {
    {Step::kIdle, "idle"},     {Step::kInstall, "install"}, {Step::kSwitch, "switch"},
    {Step::kReboot, "reboot"}, {Step::kTrial, "trial"},     {Step::kCommit, "commit"},
    {Step::kRevert, "revert"},
};
constexpr std::pair<Outcome, std::string_view> kOutcomeNames[] = {
    {Outcome::kNone, ""},
    {Outcome::kInstalled, "installed"},
    {Outcome::kReverted, "reverted"},
    {Outcome::kFailed, "failed"},
};

template <class T, std::size_t N>
std::optional<T> ByName(const std::pair<T, std::string_view> (&names)[N], std::string_view name) {
  for (const auto& [value, text] : names) {
    if (text == name) return value;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Transition> NextStep(Step step, Event event) {
  for (const auto& t : kTransitions) {
    if (t.from == step && t.on == event) return t;
  }
  return std::nullopt;
}

std::string_view StepName(Step step) {
  for (const auto& [value, text] : kStepNames) {
    if (value == step) return text;
  }
  return "?";
}

std::string_view OutcomeName(Outcome outcome) {
  for (const auto& [value, text] : kOutcomeNames) {
    if (value == outcome) return text;
  }
  return "?";
}

Json ToJson(const OsRecord& r) {
  return {{"step", StepName(r.step)},
          {"image_id", r.target.image_id},
          {"version", r.target.version},
          {"security_version", r.target.security_version},
          {"package", r.target.package.string()},
          {"slot", SlotName(r.slot)},
          {"boot_id", r.boot_id},
          {"trial_until", r.trial_until},
          {"outcome", OutcomeName(r.outcome)},
          {"reason", r.reason},
          {"installed_image_id", r.installed_image_id},
          {"installed_version", r.installed_version},
          {"installed_security_version", r.installed_security_version}};
}

Expected<OsRecord> OsRecordFrom(const Json& doc) {
  const auto corrupt = [] { return Fail(CoreErrc::kCorrupt, "the OS update record is damaged"); };
  auto step = json::GetString(doc, "step");
  auto slot = json::GetString(doc, "slot");
  auto outcome = json::GetString(doc, "outcome");
  auto trial_until = json::GetUint(doc, "trial_until");
  auto security_version = json::GetUint(doc, "security_version");
  auto installed_security_version = json::GetUint(doc, "installed_security_version");
  if (!step || !slot || !outcome || !trial_until || !security_version ||
      !installed_security_version) {
    return corrupt();
  }
  OsRecord r;
  const auto parsed_step = ByName(kStepNames, *step);
  const auto parsed_outcome = ByName(kOutcomeNames, *outcome);
  auto parsed_slot = ParseSlot(*slot);
  if (!parsed_step || !parsed_outcome || !parsed_slot) return corrupt();
  r.step = *parsed_step;
  r.outcome = *parsed_outcome;
  r.slot = *parsed_slot;
  r.trial_until = static_cast<std::int64_t>(*trial_until);
  r.target.security_version = *security_version;
  r.installed_security_version = *installed_security_version;
  for (auto [key, field] :
       {std::pair{"image_id", &r.target.image_id}, std::pair{"version", &r.target.version},
        std::pair{"boot_id", &r.boot_id}, std::pair{"reason", &r.reason},
        std::pair{"installed_image_id", &r.installed_image_id},
        std::pair{"installed_version", &r.installed_version}}) {
    auto text = json::GetString(doc, key);
    if (!text) return corrupt();
    *field = std::move(*text);
  }
  auto package = json::GetString(doc, "package");
  if (!package) return corrupt();
  r.target.package = *package;
  return r;
}

Expected<OsAgent> OsAgent::Open(OsAgentParts parts, std::string boot_id) {
  auto stored = parts.store.Get(kRecord);
  if (!stored) return std::unexpected(stored.error());
  OsRecord record;
  if (*stored) {
    auto parsed = OsRecordFrom(**stored);
    if (!parsed) return std::unexpected(parsed.error());
    record = std::move(*parsed);
  }
  return OsAgent(std::move(parts), std::move(boot_id), std::move(record));
}

Expected<void> OsAgent::Persist(const OsRecord& record) {
  return parts_.store.Put(kRecord, ToJson(record));
}

Expected<void> OsAgent::Fire(Event event, std::string reason,
                             const std::function<void(OsRecord&)>& change) {
  const auto t = NextStep(record_.step, event);
  if (!t) {
    return Fail(UpdateErrc::kBadState,
                fmt::format("no transition from step {}", StepName(record_.step)));
  }
  OsRecord next = record_;
  if (change) change(next);
  next.step = t->to;
  next.boot_id = boot_id_;
  if (t->outcome != Outcome::kKeep) next.outcome = t->outcome;
  if (!reason.empty()) next.reason = std::move(reason);
  if (t->to == Step::kTrial) {
    next.trial_until = UnixSeconds(parts_.env.clock.Now() + parts_.trial_time);
  }
  if (t->from == Step::kCommit) {
    next.installed_image_id = next.target.image_id;
    next.installed_version = next.target.version;
    next.installed_security_version = next.target.security_version;
  }
  const std::string point = fmt::format("os.{}-{}", StepName(t->from), StepName(t->to));
  KillPoint(point + ".before");
  if (auto ok = Persist(next); !ok) return ok;
  KillPoint(point + ".after");
  record_ = std::move(next);
  log::Info("OS update {}: {} -> {}{}", record_.target.version, StepName(t->from), StepName(t->to),
            record_.reason.empty() ? "" : " (" + record_.reason + ")");
  return Enter();
}

Expected<void> OsAgent::CheckSecurityVersion(std::uint64_t version) {
  auto counter = parts_.rot.ReadCounter(kOsSecurityVersionCounter);
  if (!counter) return std::unexpected(counter.error());
  if (version < *counter) {
    return Fail(UpdateErrc::kRollback,
                fmt::format("OS security version {} is below the device's anti-rollback counter {}",
                            version, *counter));
  }
  if (version - *counter > rot::kMaxCounterStep) {
    return Fail(UpdateErrc::kInstall,
                fmt::format("OS security version {} is more than {} above the counter {}", version,
                            rot::kMaxCounterStep, *counter));
  }
  return {};
}

Expected<void> OsAgent::Enter() {
  const Slot slot = record_.slot;
  switch (record_.step) {
    case Step::kIdle:
      return {};
    case Step::kInstall: {
      auto booted = parts_.boot.Booted();
      if (!booted) return std::unexpected(booted.error());
      if (*booted == slot) return Fire(Event::kFailed, "refusing to write the running slot");
      if (auto ok = CheckSecurityVersion(record_.target.security_version); !ok) {
        return Fire(Event::kFailed, ok.error().message());
      }
      // The staged file must still be the package the install was decided on, and the package
      // itself (not what was said of it) at or above the counter.
      auto written = parts_.writer.Write(
          slot, record_.target.package, [this](const package::Manifest& m) -> Expected<void> {
            if (m.image_id != record_.target.image_id ||
                m.security_version != record_.target.security_version) {
              return Fail(UpdateErrc::kInstall, "the staged package changed under the install");
            }
            return CheckSecurityVersion(m.security_version);
          });
      if (!written) {
        // Whatever the slot holds now must not boot.
        if (auto bad = parts_.boot.MarkBad(slot); !bad) return bad;
        return Fire(Event::kFailed, fmt::format("writing slot {} failed: {}", SlotName(slot),
                                                written.error().message()));
      }
      return Fire(Event::kDone);
    }
    case Step::kSwitch:
      if (auto ok = parts_.boot.TryNext(slot); !ok) {
        return Fire(Event::kFailed, "the bootloader refused the switch: " + ok.error().message());
      }
      return Fire(Event::kDone);
    case Step::kReboot:
      parts_.reboot();
      return {};
    case Step::kTrial: {
      auto booted = parts_.boot.Booted();
      if (!booted) return std::unexpected(booted.error());
      if (*booted != slot) {
        return Fire(Event::kFellBack,
                    fmt::format("the new OS did not come up: the bootloader went back to slot {}",
                                SlotName(*booted)));
      }
      return {};
    }
    case Step::kCommit: {
      if (auto ok = parts_.boot.MarkGood(slot); !ok) return ok;
      const std::uint64_t version = record_.target.security_version;
      if (auto ok = parts_.rot.AdvanceCounter(kOsSecurityVersionCounter, version); !ok) return ok;
      // The old slot's OS is below the counter now: it must not boot again, even as a fallback.
      if (version > record_.installed_security_version) {
        if (auto ok = parts_.boot.MarkBad(Other(slot)); !ok) return ok;
      }
      return Fire(Event::kDone);
    }
    case Step::kRevert: {
      if (auto ok = parts_.boot.MarkBad(slot); !ok) return ok;
      auto booted = parts_.boot.Booted();
      if (!booted) return std::unexpected(booted.error());
      if (*booted != slot) return Fire(Event::kDone);
      parts_.reboot();
      return {};
    }
  }
  return {};
}

Expected<void> OsAgent::Resume() {
  const bool new_boot = record_.boot_id != boot_id_;
  switch (record_.step) {
    case Step::kIdle:
      return {};
    case Step::kSwitch: {
      // Power lost after the switch: the device may already run the new slot.
      auto booted = parts_.boot.Booted();
      if (!booted) return std::unexpected(booted.error());
      if (new_boot && *booted == record_.slot) return Fire(Event::kRebooted);
      return Enter();
    }
    case Step::kReboot:
      return new_boot ? Fire(Event::kRebooted) : Enter();
    case Step::kRevert: {
      auto booted = parts_.boot.Booted();
      if (!booted) return std::unexpected(booted.error());
      if (new_boot && *booted != record_.slot) return Fire(Event::kRebooted);
      return Enter();
    }
    case Step::kInstall:
    case Step::kTrial:
    case Step::kCommit:
      return Enter();
  }
  return {};
}

Expected<void> OsAgent::Install(const OsTarget& target) {
  if (record_.step != Step::kIdle) {
    if (target.image_id == record_.target.image_id) return {};
    return Fail(UpdateErrc::kBadState, fmt::format("the install of OS {} is at step {}",
                                                   record_.target.version, StepName(record_.step)));
  }
  if (target.image_id == record_.installed_image_id) return {};
  // A version that was tried and reverted is not tried again; one that failed to install is.
  if (target.image_id == record_.target.image_id && record_.outcome == Outcome::kReverted) {
    return {};
  }
  if (auto ok = CheckSecurityVersion(target.security_version); !ok) return ok;
  auto booted = parts_.boot.Booted();
  if (!booted) return std::unexpected(booted.error());
  return Fire(Event::kStaged, {}, [&](OsRecord& next) {
    next.target = target;
    next.slot = Other(*booted);
    next.reason.clear();
  });
}

Expected<void> OsAgent::Adopt(const OsTarget& target) {
  if (record_.step != Step::kIdle || record_.installed_image_id == target.image_id) return {};
  if (auto ok = CheckSecurityVersion(target.security_version); !ok) return ok;
  if (auto ok = parts_.rot.AdvanceCounter(kOsSecurityVersionCounter, target.security_version);
      !ok) {
    return ok;
  }
  OsRecord next = record_;
  next.boot_id = boot_id_;
  next.installed_image_id = target.image_id;
  next.installed_version = target.version;
  next.installed_security_version = target.security_version;
  KillPoint("os.adopt.before");
  if (auto ok = Persist(next); !ok) return ok;
  KillPoint("os.adopt.after");
  record_ = std::move(next);
  log::Info("OS {} runs: recorded as installed", target.version);
  return {};
}

Expected<void> OsAgent::Healthy() {
  if (record_.step == Step::kTrial) return Fire(Event::kHealthy);
  if (record_.step != Step::kIdle) return {};
  auto booted = parts_.boot.Booted();
  if (!booted) return std::unexpected(booted.error());
  return parts_.boot.MarkGood(*booted);
}

Expected<void> OsAgent::Unhealthy(std::string reason) {
  if (record_.step != Step::kTrial) return {};
  return Fire(Event::kUnhealthy, std::move(reason));
}

Expected<void> OsAgent::Tick() {
  const auto deadline = TrialDeadline();
  if (!deadline || parts_.env.clock.Now() < *deadline) return {};
  return Fire(Event::kUnhealthy,
              fmt::format("the new OS was not healthy within {} s", parts_.trial_time.count()));
}

std::optional<Clock::TimePoint> OsAgent::TrialDeadline() const {
  if (record_.step != Step::kTrial) return std::nullopt;
  return Clock::TimePoint(std::chrono::seconds(record_.trial_until));
}

}  // namespace aspis::device::update
