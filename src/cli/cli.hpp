#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace aspis::cli {

// The `aspis` command line for operators: noun then verb, like azsphere. `args` excludes the
// program name. The login is kept in $ASPIS_CONFIG, else $HOME/.config/aspis/config.json (0600).
// Errors print the service's own explanation; returns the exit code.
int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace aspis::cli
