#include <iostream>

#include "service/service.hpp"

int main(int argc, char** argv) {
  return aspis::service::Main(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                              std::cerr);
}
