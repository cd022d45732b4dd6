#include "service/deploy/rollout.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/bytes.hpp"
#include "crypto/sha256.hpp"

namespace aspis::service::deploy {

namespace {

using store::Deployment;
using store::RolloutDevice;

bool Failed(const std::string& state) { return state == "failed" || state == "reverted"; }

// A device succeeded once it installed every image of the deployment, and failed once any
// image failed or reverted.
struct Outcome {
  bool succeeded = false;
  bool failed = false;
};

Outcome OutcomeOf(const Deployment& d, const RolloutDevice& device) {
  Outcome o;
  std::size_t installed = 0;
  for (const auto& image : device.images) {
    if (Failed(image.state)) o.failed = true;
    if (image.state == "installed") ++installed;
  }
  o.succeeded = !o.failed && installed == d.image_ids.size();
  return o;
}

// The order in which a rollout admits devices: fixed per deployment, unrelated to the IDs'
// order, and the same on every instance.
Expected<std::vector<std::string>> InAdmissionOrder(const Deployment& d,
                                                    std::vector<std::string> devices) {
  std::vector<std::pair<std::string, std::string>> ranked;
  for (auto& device : devices) {
    auto digest = crypto::Sha256Of(AsBytes(d.id + "/" + device));
    if (!digest) return std::unexpected(digest.error());
    ranked.emplace_back(crypto::ToHex(*digest), std::move(device));
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> out;
  out.reserve(ranked.size());
  for (auto& [rank, device] : ranked) out.push_back(std::move(device));
  return out;
}

Expected<void> Move(store::Store& store, const Deployment& from, const Deployment& to) {
  return store.MoveRollout(to, from.state, from.stage);
}

// Opens the stage after `d`'s current one, or completes the rollout after its last stage.
Expected<Change> OpenNext(store::Store& store, Deployment& d, std::int64_t now) {
  auto group = store.ListGroupDeviceIds(d.tenant_id, d.device_group_id);
  if (!group) return std::unexpected(group.error());
  auto admitted = store.ListRolloutDevices(d);
  if (!admitted) return std::unexpected(admitted.error());
  std::set<std::string, std::less<>> in;
  for (const auto& device : *admitted) in.insert(device.device_id);
  std::vector<std::string> waiting;
  for (auto& id : *group) {
    if (!in.contains(id)) waiting.push_back(std::move(id));
  }
  const auto& percents = d.rollout.percents;
  const bool last =
      percents.empty() ? waiting.empty() : d.stage >= static_cast<std::int64_t>(percents.size());
  Deployment next = d;
  if (last) {
    next.state = kComplete;
    if (auto ok = Move(store, d, next); !ok) return std::unexpected(ok.error());
    d = std::move(next);
    return "deployment.complete";
  }
  std::size_t count = 0;
  if (percents.empty()) {
    count = std::min(waiting.size(), static_cast<std::size_t>(d.rollout.batch_size));
  } else if (d.stage + 1 == static_cast<std::int64_t>(percents.size())) {
    count = waiting.size();
  } else {
    const auto share = static_cast<std::size_t>(percents[static_cast<std::size_t>(d.stage)]);
    const std::size_t target = (share * group->size() + 99) / 100;
    count = std::min(waiting.size(), target > in.size() ? target - in.size() : 0);
  }
  auto ordered = InAdmissionOrder(d, std::move(waiting));
  if (!ordered) return std::unexpected(ordered.error());
  ordered->resize(count);
  ++next.stage;
  if (auto ok = Move(store, d, next); !ok) return std::unexpected(ok.error());
  if (auto ok = store.AdmitDevices(d.id, next.stage, *ordered, now); !ok) {
    return std::unexpected(ok.error());
  }
  d = std::move(next);
  return "deployment.stage";
}

// Decides `d` again until it waits for reports, pauses, or completes.
Expected<Change> Decide(store::Store& store, Deployment& d, std::int64_t now) {
  Change change;
  while (d.state == kRolling) {
    if (d.stage > 0) {
      auto stage = store.ListRolloutDevices(d, d.stage);
      if (!stage) return std::unexpected(stage.error());
      std::int64_t failed = 0;
      std::int64_t pending = 0;
      std::string first_failure;
      for (const auto& device : *stage) {
        const Outcome o = OutcomeOf(d, device);
        if (o.failed && failed++ == 0) {
          for (const auto& image : device.images) {
            if (Failed(image.state) && first_failure.empty()) {
              first_failure = fmt::format("device {} {} image {}: {}", device.device_id,
                                          image.state, image.image_id, image.reason);
            }
          }
        }
        if (!o.failed && !o.succeeded) ++pending;
      }
      const auto devices = static_cast<std::int64_t>(stage->size());
      if (failed * 100 > d.rollout.failure_threshold * devices) {
        Deployment paused = d;
        paused.state = kPaused;
        paused.paused_by = kServiceActor;
        paused.reason = fmt::format(
            "stage {}: {} of {} devices failed, over the failure threshold of {} %; first: {}",
            d.stage, failed, devices, d.rollout.failure_threshold, first_failure);
        if (auto ok = Move(store, d, paused); !ok) return std::unexpected(ok.error());
        d = std::move(paused);
        return "deployment.pause";
      }
      if (pending > 0) return change;
    }
    auto opened = OpenNext(store, d, now);
    if (!opened) return std::unexpected(opened.error());
    change = std::move(*opened);
  }
  return change;
}

}  // namespace

Expected<void> Create(store::Store& store, Deployment& deployment, std::int64_t now) {
  auto older = store.ListDeployments(deployment.tenant_id, deployment.device_group_id, 20);
  if (!older) return std::unexpected(older.error());
  for (const auto& d : *older) {
    if (d.state != kRolling && d.state != kPaused) continue;
    Deployment stopped = d;
    stopped.state = kStopped;
    stopped.reason = "superseded by deployment " + deployment.id;
    if (auto ok = Move(store, d, stopped); !ok) return ok;
  }
  deployment.state = deployment.rollout.staged() ? kRolling : kComplete;
  deployment.stage = 0;
  if (auto ok = store.AddDeployment(deployment); !ok) return ok;
  auto decided = Decide(store, deployment, now);
  if (!decided) return std::unexpected(decided.error());
  return {};
}

Expected<Change> Advance(store::Store& store, std::string_view tenant, std::string_view group,
                         std::int64_t now) {
  auto newest = store.ListDeployments(tenant, group, 1);
  if (!newest) return std::unexpected(newest.error());
  if (newest->empty() || newest->front().state != kRolling) return Change{};
  return Decide(store, newest->front(), now);
}

Expected<void> Pause(store::Store& store, const Deployment& deployment, std::string_view actor) {
  if (deployment.state != kRolling) {
    return Fail(store::StoreErrc::kConflict,
                "only a rolling deployment can be paused; this one is " + deployment.state);
  }
  Deployment paused = deployment;
  paused.state = kPaused;
  paused.paused_by = actor;
  paused.reason = "paused by " + std::string(actor);
  return Move(store, deployment, paused);
}

Expected<void> Resume(store::Store& store, const Deployment& deployment, std::int64_t now) {
  if (deployment.state != kPaused) {
    return Fail(store::StoreErrc::kConflict,
                "only a paused deployment can be resumed; this one is " + deployment.state);
  }
  Deployment resumed = deployment;
  resumed.state = kRolling;
  resumed.paused_by.clear();
  resumed.reason.clear();
  if (auto ok = Move(store, deployment, resumed); !ok) return ok;
  if (deployment.paused_by == kServiceActor) {  // the operator accepts the failed stage
    if (auto opened = OpenNext(store, resumed, now); !opened) {
      return std::unexpected(opened.error());
    }
  }
  auto decided = Decide(store, resumed, now);
  if (!decided) return std::unexpected(decided.error());
  return {};
}

Expected<void> Stop(store::Store& store, const Deployment& deployment, std::string_view actor) {
  if (deployment.state != kRolling && deployment.state != kPaused) {
    return Fail(
        store::StoreErrc::kConflict,
        "only a rolling or paused deployment can be stopped; this one is " + deployment.state);
  }
  Deployment stopped = deployment;
  stopped.state = kStopped;
  stopped.reason = "stopped by " + std::string(actor);
  return Move(store, deployment, stopped);
}

Expected<bool> Applies(store::Store& store, const Deployment& deployment, std::string_view device) {
  if (deployment.state == kComplete) return true;
  if (deployment.state == kStopped) return false;
  return store.Admitted(deployment.id, device);
}

Expected<std::vector<StageProgress>> Progress(store::Store& store, const Deployment& deployment) {
  auto devices = store.ListRolloutDevices(deployment);
  if (!devices) return std::unexpected(devices.error());
  std::vector<StageProgress> stages;
  for (std::int64_t s = 1; s <= deployment.stage; ++s) stages.push_back({s, 0, 0, 0});
  for (const auto& device : *devices) {
    if (device.stage < 1 || device.stage > deployment.stage) continue;
    StageProgress& p = stages[static_cast<std::size_t>(device.stage - 1)];
    const Outcome o = OutcomeOf(deployment, device);
    ++p.devices;
    p.succeeded += o.succeeded ? 1 : 0;
    p.failed += o.failed ? 1 : 0;
  }
  return stages;
}

}  // namespace aspis::service::deploy
