#include "wire/errors.hpp"

#include <string>

namespace aspis::wire {

namespace {

class WireCategoryImpl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "aspis.wire"; }
  std::string message(int value) const override {
    switch (static_cast<WireErrc>(value)) {
      case WireErrc::kUnavailable:
        return "service unavailable";
      case WireErrc::kTls:
        return "TLS handshake failed";
      case WireErrc::kTimeout:
        return "timed out";
      case WireErrc::kProtocol:
        return "protocol error";
    }
    return "unknown wire error";
  }
};

}  // namespace

const std::error_category& WireCategory() {
  static const WireCategoryImpl category;
  return category;
}

}  // namespace aspis::wire
