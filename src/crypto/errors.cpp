#include "crypto/errors.hpp"

#include <openssl/err.h>

#include <string>

namespace aspis::crypto {

const std::error_category& CryptoCategory() {
  static constexpr const char* kMessages[] = {
      "OpenSSL failure",
      "malformed cryptographic object",
      "unsupported key type",
      "bad signature",
      "untrusted",
      "invalid argument",
  };
  static const NamedCategory category("aspis.crypto", kMessages);
  return category;
}

Error OpenSslError(std::string_view what, CryptoErrc code) {
  std::string message(what);
  bool first = true;
  while (const unsigned long e = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(e, buffer, sizeof buffer);
    message += first ? " (" : "; ";
    message += buffer;
    first = false;
  }
  if (!first) message += ")";
  return Error(code, std::move(message));
}

}  // namespace aspis::crypto
