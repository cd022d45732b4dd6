#pragma once

#include <string_view>

// aspisd's local admin socket: a Unix stream socket, root only (mode 0600 and the peer's
// credentials checked). A client sends one JSON object on one line, {"command": "status"}, and
// reads one JSON object back; errors are {"error": "..."}.
namespace aspis::wire::admin {

inline constexpr std::string_view kDefaultSocket = "/run/aspisd/admin.sock";

// Device ID, tenant, attestation verdict and reason, certificate expiry, last and next
// attestation, last check-in, measurement log.
inline constexpr std::string_view kStatus = "status";
// Attest now instead of at the scheduled time; answers once the attempt has finished.
inline constexpr std::string_view kAttest = "attest";
// The apps aspisd runs: {"apps": [status...]}, each {"component_id", "name", "state" ("running",
// "stopped", "waiting" to restart, "failed"), "pid", "memory_bytes", "memory_peak_bytes",
// "restarts", "last_exit"}.
inline constexpr std::string_view kAppList = "app-list";
// With "component_id": that app's status; start it (again); stop it until started.
inline constexpr std::string_view kAppStatus = "app-show-status";
inline constexpr std::string_view kAppStart = "app-start";
inline constexpr std::string_view kAppStop = "app-stop";
// With "component_id": its mutable storage, used and allowed ("storage_bytes", "storage_limit").
inline constexpr std::string_view kAppQuota = "app-show-quota";

}  // namespace aspis::wire::admin
