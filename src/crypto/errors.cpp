#include "crypto/errors.hpp"

#include <openssl/err.h>

#include <string>

namespace aspis::crypto {

namespace {

class CryptoCategoryImpl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "aspis.crypto"; }
  std::string message(int value) const override {
    switch (static_cast<CryptoErrc>(value)) {
      case CryptoErrc::kOpenSsl:
        return "OpenSSL failure";
      case CryptoErrc::kParse:
        return "malformed cryptographic object";
      case CryptoErrc::kUnsupportedKey:
        return "unsupported key type";
      case CryptoErrc::kBadSignature:
        return "bad signature";
      case CryptoErrc::kUntrusted:
        return "untrusted";
      case CryptoErrc::kInvalidArgument:
        return "invalid argument";
    }
    return "unknown crypto error";
  }
};

}  // namespace

const std::error_category& CryptoCategory() {
  static const CryptoCategoryImpl category;
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
