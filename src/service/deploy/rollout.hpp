#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "service/store/store.hpp"

// Staged rollouts (DESIGN section 5). A deployment without stages applies to every device of its
// group at once. A staged one admits devices stage by stage: a stage admits a share of the group
// (cumulative percents) or a batch, in an order fixed by a hash of the deployment and device IDs;
// the next stage opens once every device of the current one reported success (every image
// installed) or failure (an image failed or reverted); when the current stage's failures pass the
// threshold the rollout pauses itself, and the operator resumes (accepting that stage) or stops
// it. A device takes a rolling or paused deployment only once admitted; a stopped one applies to
// no device, so its devices fall back to the deployment before it.
//
// Every function changes state with compare-and-set on the deployment's (state, stage), so two
// service instances deciding at once cannot open a stage twice. Run them in a transaction.
namespace aspis::service::deploy {

inline constexpr std::string_view kRolling = "rolling";
inline constexpr std::string_view kPaused = "paused";
inline constexpr std::string_view kStopped = "stopped";
inline constexpr std::string_view kComplete = "complete";
// Who pauses a rollout whose failures passed the threshold.
inline constexpr std::string_view kServiceActor = "aspis-service";

// Where one opened stage stands: its devices now in the group and how many reported.
struct StageProgress {
  std::int64_t stage = 0;
  std::int64_t devices = 0;
  std::int64_t succeeded = 0;
  std::int64_t failed = 0;
};

// What a decision did to a rollout, for the audit log: "deployment.stage" (a stage opened),
// "deployment.complete", "deployment.pause"; nullopt when it changed nothing.
using Change = std::optional<std::string>;

// Stores a new deployment and starts its rollout; the group's unfinished deployments stop,
// superseded. `deployment.state` and `.stage` are set here. Errors: the store's.
Expected<void> Create(store::Store& store, store::Deployment& deployment, std::int64_t now);

// Decides the group's newest deployment again from its devices' reports: pause, open the next
// stage, or complete.
Expected<Change> Advance(store::Store& store, std::string_view tenant, std::string_view group,
                         std::int64_t now);

// Operator actions. Pause: a rolling rollout. Resume: a paused one; when the service paused it,
// the failed stage is accepted and the next one opens. Stop: a rolling or paused one, for good.
// Errors: kConflict (not in a state that allows it), kNotFound.
Expected<void> Pause(store::Store& store, const store::Deployment& deployment,
                     std::string_view actor);
Expected<void> Resume(store::Store& store, const store::Deployment& deployment, std::int64_t now);
Expected<void> Stop(store::Store& store, const store::Deployment& deployment,
                    std::string_view actor);

// Whether `device` takes `deployment` (see above).
Expected<bool> Applies(store::Store& store, const store::Deployment& deployment,
                       std::string_view device);

// The opened stages, first to last.
Expected<std::vector<StageProgress>> Progress(store::Store& store,
                                              const store::Deployment& deployment);

}  // namespace aspis::service::deploy
