#pragma once

#include <string>
#include <string_view>

namespace aspis::testing {

// A board definition (device/board/board_definition.hpp) for the simulator named `name`, with
// no peripherals.
inline std::string BoardJson(std::string_view name) {
  return R"({"Metadata": {"Type": "Aspis Board Definition", "Version": 1}, "Description": {"Name": ")" +
         std::string(name) + R"("}, "Backend": "sim"})";
}

}  // namespace aspis::testing
