#include "service/attest/launch.hpp"

#include <algorithm>

#include "crypto/sha256.hpp"
#include "service/deploy/targets.hpp"

namespace aspis::service::attest {

namespace {

constexpr std::string_view kAppPrefix = "app:";

LaunchVerdict Untrusted(std::string reason) { return {Verdict::Invalid(std::move(reason)), {}}; }

LaunchVerdict StoreFailed(const Error& error) {
  return {Verdict::CouldNotCheck("reading the OS releases: " + error.message()), {}};
}

// The digest `release` lists for `component`, or empty.
std::string DigestIn(const store::OsRelease& release, std::string_view component) {
  for (const auto& [name, digest] : release.components) {
    if (name == component) return digest;
  }
  return {};
}

bool Matches(const store::OsRelease& release, const std::vector<wire::MeasurementEvent>& launch) {
  return std::all_of(launch.begin(), launch.end(), [&](const wire::MeasurementEvent& e) {
    return DigestIn(release, e.component) == crypto::ToHex(e.digest);
  });
}

// Exactly the launch components, in order, each once; then only apps.
Verdict CheckShape(const std::vector<wire::MeasurementEvent>& events) {
  for (std::size_t i = 0; i < wire::kLaunchComponents.size(); ++i) {
    const std::string_view want = wire::kLaunchComponents[i];
    if (i >= events.size()) {
      return Verdict::Invalid("the event log is not a complete launch: component " +
                              std::string(want) + " was not measured");
    }
    if (events[i].component != want) {
      return Verdict::Invalid("the event log is not a complete launch: component " +
                              std::string(want) + " must be measured at position " +
                              std::to_string(i + 1) + ", found " + events[i].component);
    }
  }
  for (std::size_t i = wire::kLaunchComponents.size(); i < events.size(); ++i) {
    const std::string& name = events[i].component;
    if (std::find(wire::kLaunchComponents.begin(), wire::kLaunchComponents.end(), name) !=
        wire::kLaunchComponents.end()) {
      return Verdict::Invalid("component " + name + " was measured more than once");
    }
    if (!name.starts_with(kAppPrefix)) {
      return Verdict::Invalid("component " + name + " is not part of a launch nor an app");
    }
  }
  return Verdict::Valid();
}

// Each app event names a component and the SHA-256 of a package of it deployed to the device's
// group that the device may be running (deploy::RecentlyDeployed).
LaunchVerdict CheckApps(const std::vector<wire::MeasurementEvent>& apps, store::Store& store,
                        const store::Device& device) {
  if (apps.empty()) return {Verdict::Valid(), {}};
  auto deployed = deploy::RecentlyDeployed(store, device);
  if (!deployed) return StoreFailed(deployed.error());
  for (const auto& event : apps) {
    const std::string_view component = std::string_view(event.component).substr(kAppPrefix.size());
    const std::string digest = crypto::ToHex(event.digest);
    const bool known = std::any_of(deployed->begin(), deployed->end(), [&](const auto& image) {
      return image.component_id == component && image.sha256 == digest;
    });
    if (!known) {
      return Untrusted("component " + event.component + " with digest " + digest +
                       " is not an app deployed to the device's group");
    }
  }
  return {Verdict::Valid(), {}};
}

// Why no release matches: the first component whose digest the release of `os` does not list,
// and where that digest comes from.
LaunchVerdict Mismatch(const store::OsRelease& release,
                       const std::vector<wire::MeasurementEvent>& launch, store::Store& store) {
  for (const auto& event : launch) {
    const std::string digest = crypto::ToHex(event.digest);
    if (DigestIn(release, event.component) == digest) continue;
    auto elsewhere = store.FindOsReleasesListing(event.component, digest);
    if (!elsewhere) return StoreFailed(elsewhere.error());
    if (elsewhere->empty()) {
      return Untrusted("unknown measurement: component " + event.component + " reported digest " +
                       digest + ", which no registered OS release lists (os is from release " +
                       release.version + ")");
    }
    return Untrusted("component " + event.component + " is from release " +
                     elsewhere->front().version + ", os from " + release.version +
                     ": a launch must be one release");
  }
  return Untrusted("no OS release matches the launch");
}

}  // namespace

LaunchVerdict CheckLaunch(const std::vector<wire::MeasurementEvent>& events, store::Store& store,
                          const store::Device& device) {
  if (Verdict shape = CheckShape(events); !shape.valid()) return {std::move(shape), {}};
  const auto launch_end =
      events.begin() + static_cast<std::ptrdiff_t>(wire::kLaunchComponents.size());
  const std::vector<wire::MeasurementEvent> launch(events.begin(), launch_end);
  if (LaunchVerdict apps = CheckApps({launch_end, events.end()}, store, device);
      !apps.verdict.valid()) {
    return apps;
  }
  const std::string os_digest = crypto::ToHex(launch.front().digest);
  auto candidates = store.FindOsReleasesListing("os", os_digest);
  if (!candidates) return StoreFailed(candidates.error());
  if (candidates->empty()) {
    return Untrusted("unknown measurement: component os reported digest " + os_digest +
                     ", which no registered OS release lists");
  }
  const store::OsRelease* retired = nullptr;
  for (const auto& release : *candidates) {
    if (!Matches(release, launch)) continue;
    if (release.retired_reason.empty()) return {Verdict::Valid(), release.version};
    retired = &release;
  }
  if (retired != nullptr) {
    return {Verdict::Invalid("OS release " + retired->version +
                             " is retired: " + retired->retired_reason),
            retired->version};
  }
  return Mismatch(candidates->back(), launch, store);
}

}  // namespace aspis::service::attest
