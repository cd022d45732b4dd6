#include "device/update/app_agent.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/file.hpp"
#include "core/log.hpp"
#include "device/kill_point.hpp"
#include "device/update/errors.hpp"
#include "device/update/unpack.hpp"

namespace aspis::device::update {

namespace fs = std::filesystem;

namespace {

using json::Json;

constexpr char kRecord[] = "apps";
constexpr char kCurrent[] = "current";

constexpr std::pair<AppStep, std::string_view> kStepNames[] = {
    {AppStep::kIdle, "idle"},     {AppStep::kInstall, "install"}, {AppStep::kSwitch, "switch"},
    {AppStep::kTrial, "trial"},   {AppStep::kCommit, "commit"},   {AppStep::kRevert, "revert"},
    {AppStep::kRemove, "remove"},
};

Error InstallError(std::string message) { return Error(UpdateErrc::kInstall, std::move(message)); }

}  // namespace

std::optional<AppTransition> NextAppStep(AppStep step, AppEvent event) {
  for (const auto& t : kAppTransitions) {
    if (t.from == step && t.on == event) return t;
  }
  return std::nullopt;
}

std::string_view AppStepName(AppStep step) {
  for (const auto& [value, text] : kStepNames) {
    if (value == step) return text;
  }
  return "?";
}

Json ToJson(const AppRecord& r) {
  return {{"step", AppStepName(r.step)},
          {"component_id", r.target.component_id},
          {"image_id", r.target.image_id},
          {"version", r.target.version},
          {"security_version", r.target.security_version},
          {"package", r.target.package.string()},
          {"outcome", OutcomeName(r.outcome)},
          {"reason", r.reason},
          {"installed_image_id", r.installed_image_id},
          {"installed_version", r.installed_version},
          {"installed_security_version", r.installed_security_version},
          {"previous_image_id", r.previous_image_id}};
}

Expected<AppRecord> AppRecordFrom(const Json& doc) {
  const auto corrupt = [] { return Fail(CoreErrc::kCorrupt, "an app update record is damaged"); };
  auto step = json::GetString(doc, "step");
  auto outcome = json::GetString(doc, "outcome");
  auto security_version = json::GetUint(doc, "security_version");
  auto installed_security_version = json::GetUint(doc, "installed_security_version");
  if (!step || !outcome || !security_version || !installed_security_version) return corrupt();
  AppRecord r;
  bool known_step = false;
  for (const auto& [value, text] : kStepNames) {
    if (text == *step) {
      r.step = value;
      known_step = true;
    }
  }
  bool known_outcome = false;
  for (const Outcome o :
       {Outcome::kNone, Outcome::kInstalled, Outcome::kReverted, Outcome::kFailed}) {
    if (OutcomeName(o) == *outcome) {
      r.outcome = o;
      known_outcome = true;
    }
  }
  if (!known_step || !known_outcome) return corrupt();
  r.target.security_version = *security_version;
  r.installed_security_version = *installed_security_version;
  for (auto [key, field] :
       {std::pair{"component_id", &r.target.component_id},
        std::pair{"image_id", &r.target.image_id}, std::pair{"version", &r.target.version},
        std::pair{"reason", &r.reason}, std::pair{"installed_image_id", &r.installed_image_id},
        std::pair{"installed_version", &r.installed_version},
        std::pair{"previous_image_id", &r.previous_image_id}}) {
    auto text = json::GetString(doc, key);
    if (!text) return corrupt();
    *field = std::move(*text);
  }
  auto package = json::GetString(doc, "package");
  if (!package) return corrupt();
  r.target.package = *package;
  // Component and image IDs name directories: nothing but a UUID's characters.
  for (const std::string* id :
       {&r.target.component_id, &r.target.image_id, &r.installed_image_id, &r.previous_image_id}) {
    if (id->find_first_not_of("0123456789abcdef-") != std::string::npos) return corrupt();
  }
  if (r.target.component_id.empty() || r.target.image_id.empty()) return corrupt();
  return r;
}

Expected<AppAgent> AppAgent::Open(AppAgentParts parts) {
  AppAgent agent(std::move(parts));
  auto stored = agent.parts_.store.Get(kRecord);
  if (!stored) return std::unexpected(stored.error());
  std::uint64_t seen = 0;
  if (agent.parts_.rot != nullptr) {
    auto counter = agent.parts_.rot->ReadCounter(kAppRecordsCounter);
    if (!counter) return std::unexpected(counter.error());
    seen = *counter;
  }
  if (*stored) {
    const auto generation = (*stored)->find("generation");
    if (generation != (*stored)->end()) {
      if (!generation->is_number_unsigned()) {
        return Fail(CoreErrc::kCorrupt, "the app update records are damaged");
      }
      agent.generation_ = generation->get<std::uint64_t>();
    }
  }
  // A new state directory beside a root of trust that saw records (the state was reset) starts
  // again from the counter, as long as no app is installed to roll back.
  std::error_code ec;
  const auto apps = fs::symlink_status(agent.parts_.apps_dir, ec);
  const bool none_installed =
      apps.type() == fs::file_type::not_found ||
      (fs::is_directory(apps) &&
       fs::directory_iterator(agent.parts_.apps_dir, ec) == fs::directory_iterator() && !ec);
  if (!*stored && seen > 0 && none_installed) agent.generation_ = seen;
  if (agent.generation_ < seen) {
    return Fail(UpdateErrc::kRollback,
                fmt::format("the app update records are generation {}, but the root of trust has "
                            "seen generation {}: they were restored from an older copy or removed",
                            agent.generation_, seen));
  }
  // A power cut between writing the records and raising the counter: the counter catches up.
  if (agent.generation_ > seen && agent.parts_.rot != nullptr) {
    if (auto ok = agent.parts_.rot->AdvanceCounter(kAppRecordsCounter, agent.generation_); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (!*stored) return agent;
  const auto components = (*stored)->find("components");
  if (components == (*stored)->end() || !components->is_object()) {
    return Fail(CoreErrc::kCorrupt, "the app update records are damaged");
  }
  for (const auto& [component, doc] : components->items()) {
    auto record = AppRecordFrom(doc);
    if (!record || record->target.component_id != component || component.empty()) {
      return Fail(CoreErrc::kCorrupt, "the app update records are damaged");
    }
    agent.records_.emplace(component, std::move(*record));
  }
  return agent;
}

fs::path AppAgent::Current(const std::string& component_id) const {
  return parts_.apps_dir / component_id / kCurrent;
}

Expected<void> AppAgent::Fire(const std::string& component, AppEvent event, std::string reason,
                              const std::function<void(AppRecord&)>& change) {
  AppRecord& record = records_[component];
  const auto t = NextAppStep(record.step, event);
  if (!t) {
    return Fail(UpdateErrc::kBadState,
                fmt::format("no app transition from step {}", AppStepName(record.step)));
  }
  AppRecord next = record;
  if (change) change(next);
  next.step = t->to;
  if (t->outcome != Outcome::kKeep) next.outcome = t->outcome;
  if (!reason.empty()) next.reason = std::move(reason);
  if (t->from == AppStep::kCommit) {
    next.installed_image_id = next.target.image_id;
    next.installed_version = next.target.version;
    next.installed_security_version = next.target.security_version;
    next.previous_image_id.clear();
  }
  auto records = records_;
  records[component] = next;
  const std::string point = fmt::format("app.{}-{}", AppStepName(t->from), AppStepName(t->to));
  KillPoint(point + ".before");
  if (auto ok = Persist(records); !ok) return ok;
  KillPoint(point + ".after");
  record = std::move(next);
  log::Info("app {} {}: {} -> {}{}", component, record.target.version, AppStepName(t->from),
            AppStepName(t->to), record.reason.empty() ? "" : " (" + record.reason + ")");
  auto entered = Enter(component);
  if (entered && t->to == AppStep::kIdle && parts_.settled) parts_.settled(component);
  return entered;
}

Expected<void> AppAgent::PointCurrentAt(const std::string& component,
                                        const std::string& image_id) const {
  const fs::path dir = parts_.apps_dir / component;
  const fs::path link = dir / kCurrent;
  const fs::path fresh = dir / ".current.new";
  std::error_code ec;
  fs::remove(fresh, ec);
  fs::create_symlink(image_id, fresh, ec);
  if (!ec) fs::rename(fresh, link, ec);
  if (ec)
    return std::unexpected(InstallError("cannot switch " + link.string() + ": " + ec.message()));
  return file::RealFileSystem().SyncDirectory(dir);
}

namespace {

// An installed image is read by the app's own uid in its sandbox, and never written: directories
// become 0755 and files 0644, or 0755 when the publisher made them executable at all.
Expected<void> MakeReadableByApps(const fs::path& tree) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(tree, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const auto status = it->symlink_status(ec);
    if (ec || fs::is_symlink(status)) continue;
    const bool executable = fs::is_directory(status) ||
                            (status.permissions() & (fs::perms::owner_exec | fs::perms::group_exec |
                                                     fs::perms::others_exec)) != fs::perms::none;
    fs::permissions(it->path(),
                    executable ? static_cast<fs::perms>(0755) : static_cast<fs::perms>(0644), ec);
  }
  if (!ec) fs::permissions(tree, static_cast<fs::perms>(0755), ec);
  if (ec) return Fail(UpdateErrc::kInstall, "cannot set the modes of " + tree.string());
  return {};
}

}  // namespace

Expected<void> AppAgent::Enter(const std::string& component) {
  AppRecord& r = records_[component];
  const fs::path dir = parts_.apps_dir / component;
  std::error_code ec;
  // Nothing is written or removed through a link put in place of an app's directory.
  if (fs::is_symlink(dir, ec) || fs::is_symlink(parts_.apps_dir, ec)) {
    return Fail(UpdateErrc::kInstall, dir.string() + " is a symbolic link");
  }
  switch (r.step) {
    case AppStep::kIdle:
      return {};
    case AppStep::kTrial: {
      if (!parts_.health) return {};
      auto healthy = parts_.health(dir / r.target.image_id);
      if (!healthy) return Fire(component, AppEvent::kUnhealthy, healthy.error().message());
      return Fire(component, AppEvent::kHealthy);
    }
    case AppStep::kInstall: {
      const auto failed = [&](const std::string& why) {
        return Fire(component, AppEvent::kFailed, why);
      };
      auto source = package::FileSource::Open(r.target.package);
      if (!source) return failed(source.error().message());
      auto reader = package::Reader::Open(*source, parts_.publishers());
      if (!reader) return failed(reader.error().message());
      const package::Manifest& m = reader->manifest();
      if (!package::IsApp(m.kind) || m.image_id != r.target.image_id ||
          m.component_id != component || m.security_version != r.target.security_version) {
        return failed("the staged package is not the app the install was decided on");
      }
      if (auto ok = file::EnsureDirectory(dir, 0755); !ok) return failed(ok.error().message());
      const fs::path version = dir / r.target.image_id;
      const fs::path fresh = dir / ("." + r.target.image_id + ".new");
      fs::remove_all(fresh, ec);
      if (auto ok = UnpackPayload(*reader, fresh, {}); !ok) return failed(ok.error().message());
      if (auto ok = MakeReadableByApps(fresh); !ok) return failed(ok.error().message());
      KillPoint("app.unpacked");
      fs::remove_all(version, ec);
      fs::rename(fresh, version, ec);
      if (ec) return failed("cannot move the new version into place: " + ec.message());
      if (auto ok = file::RealFileSystem().SyncDirectory(dir); !ok)
        return failed(ok.error().message());
      return Fire(component, AppEvent::kDone);
    }
    case AppStep::kSwitch:
      if (parts_.stop) parts_.stop(component);
      if (!fs::is_directory(dir / r.target.image_id, ec)) {
        return Fire(component, AppEvent::kFailed, "the unpacked version is missing");
      }
      if (auto ok = PointCurrentAt(component, r.target.image_id); !ok) {
        return Fire(component, AppEvent::kFailed, ok.error().message());
      }
      return Fire(component, AppEvent::kDone);
    case AppStep::kCommit:
      if (!r.previous_image_id.empty() && r.previous_image_id != r.target.image_id) {
        fs::remove_all(dir / r.previous_image_id, ec);
      }
      return Fire(component, AppEvent::kDone);
    case AppStep::kRevert: {
      if (parts_.stop) parts_.stop(component);
      if (r.previous_image_id.empty()) {
        fs::remove(dir / kCurrent, ec);
      } else if (auto ok = PointCurrentAt(component, r.previous_image_id); !ok) {
        return ok;
      }
      if (r.target.image_id != r.previous_image_id) fs::remove_all(dir / r.target.image_id, ec);
      return Fire(component, AppEvent::kDone);
    }
    case AppStep::kRemove: {
      if (parts_.stop) parts_.stop(component);
      fs::remove_all(dir, ec);
      if (ec) return std::unexpected(InstallError("cannot remove " + dir.string()));
      if (auto ok = file::RealFileSystem().SyncDirectory(parts_.apps_dir); !ok) return ok;
      auto records = records_;
      records.erase(component);
      if (auto ok = Persist(records); !ok) return ok;
      records_ = std::move(records);
      log::Info("app {} removed: no longer deployed", component);
      if (parts_.removed) parts_.removed(component);
      return {};
    }
  }
  return {};
}

Expected<void> AppAgent::Persist(const std::map<std::string, AppRecord, std::less<>>& records) {
  Json all = Json::object();
  for (const auto& [id, r] : records) all[id] = ToJson(r);
  const std::uint64_t generation = generation_ + 1;
  if (auto ok = parts_.store.Put(kRecord,
                                 Json{{"components", std::move(all)}, {"generation", generation}});
      !ok) {
    return ok;
  }
  generation_ = generation;
  if (parts_.rot == nullptr) return {};
  return parts_.rot->AdvanceCounter(kAppRecordsCounter, generation);
}

Expected<void> AppAgent::Resume() {
  std::vector<std::string> components;
  components.reserve(records_.size());
  for (const auto& [id, r] : records_) components.push_back(id);
  for (const auto& id : components) {
    if (auto ok = Enter(id); !ok) return ok;
  }
  return {};
}

Expected<void> AppAgent::Install(const AppTarget& target) {
  // IDs become directory names: a UUID's characters only.
  for (const std::string* id : {&target.component_id, &target.image_id}) {
    if (id->empty() || id->size() > 64 ||
        id->find_first_not_of("0123456789abcdef-") != std::string::npos) {
      return Fail(UpdateErrc::kInstall, "an app target's IDs must be lowercase UUIDs");
    }
  }
  const auto found = records_.find(target.component_id);
  const AppRecord current = found == records_.end() ? AppRecord{} : found->second;
  if (current.step != AppStep::kIdle) {
    if (target.image_id == current.target.image_id) return {};
    return Fail(UpdateErrc::kBadState, "an install of app " + target.component_id + " is at step " +
                                           std::string(AppStepName(current.step)));
  }
  if (target.image_id == current.installed_image_id) return {};
  if (target.image_id == current.target.image_id && current.outcome == Outcome::kReverted)
    return {};
  if (target.security_version < current.installed_security_version) {
    return Fail(UpdateErrc::kRollback,
                fmt::format("app security version {} is below the installed {}",
                            target.security_version, current.installed_security_version));
  }
  return Fire(target.component_id, AppEvent::kStaged, {}, [&](AppRecord& next) {
    next.target = target;
    next.previous_image_id = current.installed_image_id;
    next.reason.clear();
  });
}

Expected<void> AppAgent::Healthy(const std::string& component_id) {
  const auto found = records_.find(component_id);
  if (found == records_.end() || found->second.step != AppStep::kTrial) return {};
  return Fire(component_id, AppEvent::kHealthy);
}

Expected<void> AppAgent::Unhealthy(const std::string& component_id, std::string reason) {
  const auto found = records_.find(component_id);
  if (found == records_.end() || found->second.step != AppStep::kTrial) return {};
  return Fire(component_id, AppEvent::kUnhealthy, std::move(reason));
}

Expected<void> AppAgent::Retire(const std::vector<std::string>& deployed) {
  std::vector<std::string> retired;
  for (const auto& [id, r] : records_) {
    if (r.step == AppStep::kIdle &&
        std::find(deployed.begin(), deployed.end(), id) == deployed.end()) {
      retired.push_back(id);
    }
  }
  for (const auto& id : retired) {
    if (auto ok = Fire(id, AppEvent::kRetired); !ok) return ok;
  }
  return {};
}

}  // namespace aspis::device::update
