#pragma once

#include <cstdint>

#include "core/error.hpp"

// Internal to src/rot: the counter rules every backend enforces in the same words.
namespace aspis::rot {

// kInvalidArgument unless 0 <= counter < kCounterCount.
Expected<void> CheckCounterIndex(std::uint32_t counter);
// kCounterBackwards when `value` < `current`; kInvalidArgument when the step exceeds
// kMaxCounterStep.
Expected<void> CheckCounterAdvance(std::uint32_t counter, std::uint64_t current,
                                   std::uint64_t value);

}  // namespace aspis::rot
