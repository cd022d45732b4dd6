#include "wire/errors.hpp"

#include <string>

namespace aspis::wire {

const std::error_category& WireCategory() {
  static constexpr const char* kMessages[] = {
      "service unavailable", "TLS handshake failed",   "timed out",
      "protocol error",      "refused by the service",
  };
  static const NamedCategory category("aspis.wire", kMessages);
  return category;
}

}  // namespace aspis::wire
