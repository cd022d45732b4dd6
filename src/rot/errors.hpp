#pragma once

#include <system_error>

#include "core/error.hpp"

namespace aspis::rot {

enum class RotErrc {
  kTpm = 1,           // the TPM refused or failed a command
  kUnavailable,       // the TPM (or its TCTI) cannot be reached
  kBadState,          // state files or TPM objects are damaged, missing or not ours
  kPolicy,            // the register does not hold the value a sealed blob requires
  kCounterBackwards,  // an attempt to lower a monotonic counter
  kInvalidArgument,
};

const std::error_category& RotCategory();
inline std::error_code make_error_code(RotErrc e) { return {static_cast<int>(e), RotCategory()}; }

}  // namespace aspis::rot

template <>
struct std::is_error_code_enum<aspis::rot::RotErrc> : std::true_type {};
