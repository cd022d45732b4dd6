#include "rot/errors.hpp"

#include <string>

namespace aspis::rot {

const std::error_category& RotCategory() {
  static constexpr const char* kMessages[] = {
      "TPM command failed",
      "root of trust unavailable",
      "root of trust state is damaged",
      "measurement register does not satisfy the policy",
      "monotonic counter cannot go backwards",
      "invalid argument",
  };
  static const NamedCategory category("aspis.rot", kMessages);
  return category;
}

}  // namespace aspis::rot
