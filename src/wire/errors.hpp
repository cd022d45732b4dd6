#pragma once

#include <system_error>

#include "core/error.hpp"

namespace aspis::wire {

enum class WireErrc {
  kUnavailable = 1,  // could not connect
  kTls,              // the TLS handshake failed (for example an untrusted server certificate)
  kTimeout,
  kProtocol,  // a malformed response or URL
  kRefused,   // the service understood and said no (an untrusted attestation, a forbidden route)
};

const std::error_category& WireCategory();
inline std::error_code make_error_code(WireErrc e) { return {static_cast<int>(e), WireCategory()}; }

}  // namespace aspis::wire

template <>
struct std::is_error_code_enum<aspis::wire::WireErrc> : std::true_type {};
