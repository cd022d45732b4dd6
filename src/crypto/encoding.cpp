#include "crypto/encoding.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <limits>

#include "crypto/errors.hpp"

namespace aspis::crypto {

std::string Base64Encode(ByteView data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  if (data.empty()) return out;
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Expected<Bytes> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return Fail(CryptoErrc::kParse, "base64 text length is not a multiple of 4");
  }
  if (text.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    return Fail(CryptoErrc::kParse, "base64 text is too long");
  }
  if (text.empty()) return Bytes{};
  // EVP_DecodeBlock tolerates surrounding whitespace; the strict form has none.
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      return Fail(CryptoErrc::kParse, "base64 text contains whitespace");
    }
  }
  std::size_t padding = 0;
  if (text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  if (text.substr(0, text.size() - padding).find('=') != std::string_view::npos) {
    return Fail(CryptoErrc::kParse, "base64 text has padding before its end");
  }
  Bytes out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return Fail(CryptoErrc::kParse, "text is not valid base64");
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

bool ConstantTimeEquals(ByteView a, ByteView b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Expected<Bytes> RandomBytes(std::size_t count) {
  Bytes out(count);
  if (count > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      RAND_bytes(out.data(), static_cast<int>(count)) != 1) {
    return std::unexpected(OpenSslError("generating random bytes"));
  }
  return out;
}

Expected<Bytes> HmacSha256(ByteView key, ByteView data) {
  Bytes out(32);
  std::size_t size = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), data.data(),
                data.size(), out.data(), out.size(), &size) == nullptr ||
      size != out.size()) {
    return std::unexpected(OpenSslError("computing HMAC-SHA256"));
  }
  return out;
}

Expected<std::string> RandomUuid() {
  auto bytes = RandomBytes(16);
  if (!bytes) return std::unexpected(bytes.error());
  (*bytes)[6] = static_cast<std::uint8_t>(((*bytes)[6] & 0x0f) | 0x40);  // version 4
  (*bytes)[8] = static_cast<std::uint8_t>(((*bytes)[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string hex = HexEncode(*bytes);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

}  // namespace aspis::crypto
