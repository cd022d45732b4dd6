#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace aspis::device {

// The aspisd command line. `args` excludes the program name. Writes results to `out` and errors
// (one line a person can act on) to `err`; returns the process exit code.
int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace aspis::device
