#include "device/apps/errors.hpp"

namespace aspis::device::apps {

const std::error_category& AppsCategory() {
  static constexpr const char* kMessages[] = {
      "the app's sandbox failed", "a control group failed",
      "the app is not running",   "no such app",
      "no such event is pending", "not permitted by the app manifest",
  };
  static const NamedCategory category("aspis.apps", kMessages);
  return category;
}

}  // namespace aspis::device::apps
