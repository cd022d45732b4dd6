#include <iostream>

#include "device/cli/aspisd_cli.hpp"

int main(int argc, char** argv) {
  return aspis::device::Main(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
