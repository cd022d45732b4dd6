#include "service/deploy/targets.hpp"

#include <algorithm>

namespace aspis::service::deploy {

namespace {

// The newest release that devices on `feed` may install, or nullptr.
const store::OsRelease* NewestFor(const std::vector<store::OsRelease>& releases,
                                  std::string_view feed) {
  const store::OsRelease* newest = nullptr;
  for (const auto& r : releases) {  // oldest first
    if (r.image_id.empty() || !r.retired_reason.empty()) continue;
    if (feed == "retail" && r.feed != "retail") continue;
    newest = &r;
  }
  return newest;
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

  auto releases = store.ListOsReleases();
  if (!releases) return std::unexpected(releases.error());
  if (const store::OsRelease* release = NewestFor(*releases, targets.os_feed)) {
    for (const std::string& id : {release->image_id, release->board_image_id}) {
      if (id.empty()) continue;
      auto image = store.GetImage("", id);
      if (!image) return std::unexpected(image.error());
      targets.images.push_back(std::move(*image));
    }
  }

  if (!group || !group->app_updates || group->update_policy != "UpdateAll") return targets;
  auto current = store.ListDeployments(device.tenant_id, group->id, 1);
  if (!current) return std::unexpected(current.error());
  auto apps = ImagesOf(store, device.tenant_id, *current);
  if (!apps) return std::unexpected(apps.error());
  for (auto& app : *apps) {
    const bool listed = std::any_of(targets.images.begin(), targets.images.end(),
                                    [&](const store::Image& i) { return i.id == app.id; });
    if (!listed)
      targets.images.push_back(std::move(app));  // each ID once, whatever the store holds
  }
  return targets;
}

Expected<std::vector<store::Image>> RecentlyDeployed(store::Store& store, const std::string& tenant,
                                                     const std::string& group) {
  if (group.empty()) return std::vector<store::Image>{};
  auto recent = store.ListDeployments(tenant, group, 2);
  if (!recent) return std::unexpected(recent.error());
  return ImagesOf(store, tenant, *recent);
}

}  // namespace aspis::service::deploy
