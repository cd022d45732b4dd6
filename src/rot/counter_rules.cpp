#include "rot/counter_rules.hpp"

#include <string>

#include "rot/errors.hpp"
#include "rot/root_of_trust.hpp"

namespace aspis::rot {

Expected<void> CheckCounterIndex(std::uint32_t counter) {
  if (counter < kCounterCount) return {};
  return Fail(RotErrc::kInvalidArgument, "counter " + std::to_string(counter) +
                                             " does not exist (there are " +
                                             std::to_string(kCounterCount) + ")");
}

Expected<void> CheckCounterAdvance(std::uint32_t counter, std::uint64_t current,
                                   std::uint64_t value) {
  const std::string name = "counter " + std::to_string(counter);
  if (value < current) {
    return Fail(RotErrc::kCounterBackwards, name + " is at " + std::to_string(current) +
                                                "; refusing to lower it to " +
                                                std::to_string(value));
  }
  if (value - current > kMaxCounterStep) {
    return Fail(RotErrc::kInvalidArgument, name + ": advancing from " + std::to_string(current) +
                                               " to " + std::to_string(value) +
                                               " exceeds the step limit of " +
                                               std::to_string(kMaxCounterStep));
  }
  return {};
}

}  // namespace aspis::rot
