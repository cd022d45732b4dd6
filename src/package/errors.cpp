#include "package/errors.hpp"

namespace aspis::package {

const std::error_category& PackageCategory() {
  static constexpr const char* kMessages[] = {
      "malformed image package",
      "image package not signed by a trusted publisher",
      "image package payload does not match its manifest",
      "image package exceeds a limit",
      "unsafe entry in an image package archive",
      "image package I/O failed",
      "paused",
  };
  static const NamedCategory category("aspis.package", kMessages);
  return category;
}

}  // namespace aspis::package
