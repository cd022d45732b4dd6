#include "service/deploy/targets.hpp"

#include <algorithm>

#include "core/json.hpp"
#include "service/deploy/rollout.hpp"

namespace aspis::service::deploy {

namespace {

// How many of a group's newest deployments are searched for the one a device takes.
constexpr std::int64_t kWalked = 20;

// Whether the release's board image is for `board` (any board when it is unknown).
Expected<bool> ForBoard(store::Store& store, const store::OsRelease& release,
                        std::string_view board) {
  if (board.empty()) return true;
  auto image = store.GetImage("", release.board_image_id);
  if (!image) return std::unexpected(image.error());
  auto manifest = json::Parse(image->manifest);
  if (!manifest) return std::unexpected(manifest.error());
  for (const auto& b : manifest->value("target_boards", json::Json::array())) {
    if (b.is_string() && b.get<std::string>() == board) return true;
  }
  return false;
}

// The newest offered release that a device of `board` on `feed` may install, or nullptr.
Expected<const store::OsRelease*> NewestFor(store::Store& store,
                                            const std::vector<store::OsRelease>& offered,
                                            std::string_view feed, std::string_view board) {
  for (auto r = offered.rbegin(); r != offered.rend(); ++r) {  // newest first
    if (feed == "retail" && r->feed != "retail") continue;
    auto fits = ForBoard(store, *r, board);
    if (!fits) return std::unexpected(fits.error());
    if (*fits) return &*r;
  }
  return nullptr;
}

Expected<std::vector<store::Image>> ImagesOf(store::Store& store, const std::string& tenant,
                                             const std::vector<store::Deployment>& deployments) {
  std::vector<store::Image> images;
  for (const auto& deployment : deployments) {
    for (const auto& id : deployment.image_ids) {
      auto image = store.GetImage(tenant, id);
      if (!image) return std::unexpected(image.error());
      images.push_back(std::move(*image));
    }
  }
  return images;
}

}  // namespace

Expected<Targets> TargetsFor(store::Store& store, const store::Device& device) {
  Targets targets{.os_feed = "retail", .images = {}};
  std::optional<store::DeviceGroup> group;
  if (!device.device_group_id.empty()) {
    auto found = store.GetDeviceGroup(device.tenant_id, device.device_group_id);
    if (!found) return std::unexpected(found.error());
    group = std::move(*found);
    targets.os_feed = group->os_feed;
  }
  if (group && group->update_policy == "NoUpdates") return targets;

  auto releases = store.ListOfferedOsReleases();
  if (!releases) return std::unexpected(releases.error());
  auto newest = NewestFor(store, *releases, targets.os_feed, device.board);
  if (!newest) return std::unexpected(newest.error());
  if (const store::OsRelease* release = *newest) {
    for (const std::string& id : {release->image_id, release->board_image_id}) {
      if (id.empty()) continue;
      auto image = store.GetImage("", id);
      if (!image) return std::unexpected(image.error());
      targets.images.push_back(std::move(*image));
    }
  }

  if (!group || !group->app_updates || group->update_policy != "UpdateAll") return targets;
  auto recent = store.ListDeployments(device.tenant_id, group->id, kWalked);
  if (!recent) return std::unexpected(recent.error());
  std::vector<store::Deployment> current;
  for (auto& deployment : *recent) {
    auto applies = Applies(store, deployment, device.id);
    if (!applies) return std::unexpected(applies.error());
    if (*applies) {
      current.push_back(std::move(deployment));
      break;
    }
  }
  auto apps = ImagesOf(store, device.tenant_id, current);
  if (!apps) return std::unexpected(apps.error());
  targets.apps_complete = !current.empty();
  for (auto& app : *apps) {
    const bool listed = std::any_of(targets.images.begin(), targets.images.end(),
                                    [&](const store::Image& i) { return i.id == app.id; });
    if (!listed)
      targets.images.push_back(std::move(app));  // each ID once, whatever the store holds
  }
  return targets;
}

Expected<std::vector<store::Image>> RecentlyDeployed(store::Store& store,
                                                     const store::Device& device) {
  if (device.device_group_id.empty()) return std::vector<store::Image>{};
  auto recent = store.ListDeployments(device.tenant_id, device.device_group_id, kWalked);
  if (!recent) return std::unexpected(recent.error());
  std::vector<store::Deployment> taken;
  int completes = 0;
  for (auto& deployment : *recent) {
    const bool complete = deployment.state == kComplete;
    auto admitted = complete ? Expected<bool>(true) : store.Admitted(deployment.id, device.id);
    if (!admitted) return std::unexpected(admitted.error());
    if (!*admitted) continue;
    taken.push_back(std::move(deployment));
    if (complete && ++completes == 2) break;
  }
  return ImagesOf(store, device.tenant_id, taken);
}

}  // namespace aspis::service::deploy
