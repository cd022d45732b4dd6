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

// The virtual board (`aspis dev board`); on other boards each answers an error. With "button"
// (a name, "A", or GPIO number): hold it down, let it go.
inline constexpr std::string_view kBoardPress = "board-press";
inline constexpr std::string_view kBoardRelease = "board-release";
// {"leds": [{"name", "gpio", "lit"}]}
inline constexpr std::string_view kBoardLeds = "board-leds";
// With "controller" (a block name; default the first ADC), "channel" and "value" (0 to 4095).
inline constexpr std::string_view kBoardSetAdc = "board-set-adc";
// {"channels": [{"controller", "channel", "period_ns", "duty_ns", "inverted", "enabled"}]}
inline constexpr std::string_view kBoardPwm = "board-pwm";
// With "uart" (a block name, "ISU0", or the UART's ID, "4"): {"uart", "path"}, the pseudo-terminal
// a program opens to be the far end of an app's UART.
inline constexpr std::string_view kBoardUartPath = "board-uart-path";

// The device's certificate store (`aspis dev certificate`, as `azsphere device certificate`); on
// a board without Wi-Fi each answers an error. With "certificate" (its identifier), "type"
// ("rootca" or "client"), "public_key" (PEM), and for a client "private_key" (PEM) and, when it
// is encrypted, "password": installs it, replacing one of that identifier.
inline constexpr std::string_view kCertificateAdd = "certificate-add";
// With "certificate".
inline constexpr std::string_view kCertificateDelete = "certificate-delete";
// {"certificates": [identifier...]}
inline constexpr std::string_view kCertificateList = "certificate-list";
// With "certificate": {"certificate", "type", "subject", "issuer", "not_before", "not_after"}
// (Unix seconds).
inline constexpr std::string_view kCertificateShow = "certificate-show";
// {"available_bytes", "capacity_bytes"}
inline constexpr std::string_view kCertificateQuota = "certificate-show-quota";

}  // namespace aspis::wire::admin
