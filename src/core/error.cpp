#include "core/error.hpp"

namespace aspis {

Error Error::WithContext(std::string_view context) && {
  message_ = std::string(context) + ": " + message_;
  return std::move(*this);
}

Error Error::WithContext(std::string_view context) const& {
  return Error(code_, std::string(context) + ": " + message_);
}

std::string NamedCategory::message(int value) const {
  if (value >= 1 && static_cast<std::size_t>(value) <= messages_.size()) {
    return messages_[static_cast<std::size_t>(value) - 1];
  }
  return std::string(name_) + " error " + std::to_string(value);
}

const std::error_category& CoreCategory() {
  static constexpr const char* kMessages[] = {
      "invalid argument",  "not found",    "already exists", "input/output error",
      "permission denied", "corrupt data", "parse error",    "no space left"};
  static const NamedCategory category("aspis.core", kMessages);
  return category;
}

}  // namespace aspis
