#pragma once

#include <string_view>
#include <system_error>

#include "core/error.hpp"

namespace aspis::crypto {

enum class CryptoErrc {
  kOpenSsl = 1,  // OpenSSL failed for a reason of its own (allocation, provider); could not check
  kParse,        // bytes that are not a valid key, certificate, request or envelope
  kUnsupportedKey,   // a well-formed key of a type Aspis does not use (only ECDSA P-256)
  kBadSignature,     // a signature that does not verify
  kUntrusted,        // no trusted key or chain vouches for the object
  kInvalidArgument,  // a caller's mistake (empty name, zero lifetime)
};

const std::error_category& CryptoCategory();
inline std::error_code make_error_code(CryptoErrc e) {
  return {static_cast<int>(e), CryptoCategory()};
}

// An Error for an OpenSSL failure during `what`, carrying (and clearing) OpenSSL's error queue.
Error OpenSslError(std::string_view what, CryptoErrc code = CryptoErrc::kOpenSsl);

}  // namespace aspis::crypto

template <>
struct std::is_error_code_enum<aspis::crypto::CryptoErrc> : std::true_type {};
