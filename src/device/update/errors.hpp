#pragma once

#include <system_error>

#include "core/error.hpp"

namespace aspis::device::update {

enum class UpdateErrc {
  kRollback = 1,  // the security version is below the root of trust's anti-rollback counter
  kBadState,      // asked of a slot, a boot or an agent in another state
  kInstall,       // writing or checking a slot or an app version failed
  kUnhealthy,     // the new software did not come up healthy
};

const std::error_category& UpdateCategory();
inline std::error_code make_error_code(UpdateErrc e) {
  return {static_cast<int>(e), UpdateCategory()};
}

}  // namespace aspis::device::update

template <>
struct std::is_error_code_enum<aspis::device::update::UpdateErrc> : std::true_type {};
