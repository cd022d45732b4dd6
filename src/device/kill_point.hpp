#pragma once

#include <string_view>

// Fault injection for the kill tests: named points where aspisd dies by SIGKILL, so that tests
// show a real process killed at each step boundary resumes or reverts. With ASPIS_KILL_AT=<name>
// and ASPIS_KILL_MARKS=<dir> in its environment, aspisd kills itself the first time it reaches
// that point, after leaving the marker <dir>/<name> (so it dies there once, not again after its
// restart). Without them a point costs a comparison.
namespace aspis::device {

void KillPoint(std::string_view name);

}  // namespace aspis::device
