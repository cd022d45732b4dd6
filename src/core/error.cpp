#include "core/error.hpp"

namespace aspis {

Error Error::WithContext(std::string_view context) && {
  message_ = std::string(context) + ": " + message_;
  return std::move(*this);
}

Error Error::WithContext(std::string_view context) const& {
  return Error(code_, std::string(context) + ": " + message_);
}

namespace {

class CoreCategoryImpl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "aspis.core"; }
  std::string message(int value) const override {
    switch (static_cast<CoreErrc>(value)) {
      case CoreErrc::kInvalidArgument:
        return "invalid argument";
      case CoreErrc::kNotFound:
        return "not found";
      case CoreErrc::kAlreadyExists:
        return "already exists";
      case CoreErrc::kIo:
        return "input/output error";
      case CoreErrc::kPermission:
        return "permission denied";
      case CoreErrc::kCorrupt:
        return "corrupt data";
      case CoreErrc::kParse:
        return "parse error";
    }
    return "unknown core error";
  }
};

}  // namespace

const std::error_category& CoreCategory() {
  static const CoreCategoryImpl category;
  return category;
}

}  // namespace aspis
