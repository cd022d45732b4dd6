#pragma once

#include <string>
#include <vector>

#include "core/error.hpp"
#include "service/store/store.hpp"

// Which images a device should run (DESIGN section 5), decided in one place for the update
// manifest, for the device's downloads and for the attestation of its apps.
namespace aspis::service::deploy {

struct Targets {
  std::string os_feed;               // "retail" or "retail-eval"
  std::vector<store::Image> images;  // the OS and board images, then the apps
  bool apps_complete = false;        // the apps are the group's: any other is removed
};

// By the device's group (a device in none follows Retail and takes no apps):
//  - the OS feed's newest release published from packages, not retired, and for the board the
//    device reported (Retail Evaluation sees Retail's releases too, since it gets each release
//    first), with its board image, unless the update policy is NoUpdates;
//  - the images of the newest deployment of the group that applies to the device (rollout.hpp)
//    when the group takes cloud app updates (Development does not) and its policy is UpdateAll;
//    those are then every app the device should run (apps_complete). Before any deployment
//    applies to it, its apps are left alone.
Expected<Targets> TargetsFor(store::Store& store, const store::Device& device);

// The app images the device may be running: those of every deployment of its group that
// applied to it, newest first, down to the second newest complete one (so a device that
// reverted an update, or whose rollout stopped, still attests).
Expected<std::vector<store::Image>> RecentlyDeployed(store::Store& store,
                                                     const store::Device& device);

}  // namespace aspis::service::deploy
