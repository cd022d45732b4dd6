#include "rot/errors.hpp"

#include <string>

namespace aspis::rot {

namespace {

class RotCategoryImpl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "aspis.rot"; }
  std::string message(int value) const override {
    switch (static_cast<RotErrc>(value)) {
      case RotErrc::kTpm:
        return "TPM command failed";
      case RotErrc::kUnavailable:
        return "root of trust unavailable";
      case RotErrc::kBadState:
        return "root of trust state is damaged";
      case RotErrc::kPolicy:
        return "measurement register does not satisfy the policy";
      case RotErrc::kCounterBackwards:
        return "monotonic counter cannot go backwards";
      case RotErrc::kInvalidArgument:
        return "invalid argument";
    }
    return "unknown root-of-trust error";
  }
};

}  // namespace

const std::error_category& RotCategory() {
  static const RotCategoryImpl category;
  return category;
}

}  // namespace aspis::rot
