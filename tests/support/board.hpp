#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace aspis::testing {

// A board definition (device/board/board_definition.hpp) for the simulator named `name`, with
// no peripherals.
inline std::string BoardJson(std::string_view name) {
  return R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1}, "Description": {"Name": ")" +
         std::string(name) + R"("}, "Backend": "sim"})";
}

// The simulator's board definition as shipped (boards/mt3620-sim.json): the MT3620's GPIOs and
// pin blocks.
inline std::string SimBoardJson() {
  std::ifstream in(ASPIS_SIM_BOARD);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace aspis::testing
