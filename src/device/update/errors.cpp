#include "device/update/errors.hpp"

namespace aspis::device::update {

const std::error_category& UpdateCategory() {
  static constexpr const char* kMessages[] = {
      "refused as a rollback",
      "not in the state this needs",
      "installing failed",
      "the update did not come up healthy",
  };
  static const NamedCategory category("aspis.update", kMessages);
  return category;
}

}  // namespace aspis::device::update
