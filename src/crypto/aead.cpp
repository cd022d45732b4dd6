#include "crypto/aead.hpp"

#include <openssl/err.h>

#include <limits>

#include "crypto/encoding.hpp"
#include "crypto/errors.hpp"
#include "crypto/openssl_ptr.hpp"

namespace aspis::crypto::aead {

namespace {

constexpr std::size_t kNonceSize = 12;
constexpr std::size_t kTagSize = 16;
constexpr std::size_t kMaxInput = std::numeric_limits<int>::max() - kNonceSize - kTagSize;

Expected<EvpCipherCtxPtr> Start(ByteView key, ByteView nonce, bool encrypt) {
  if (key.size() != kKeySize) {
    return Fail(CryptoErrc::kInvalidArgument, "AES-256-GCM key must be 32 bytes");
  }
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data(),
                                encrypt ? 1 : 0) != 1) {
    return std::unexpected(OpenSslError("starting AES-256-GCM"));
  }
  return ctx;
}

}  // namespace

Expected<Bytes> Seal(ByteView key, ByteView plaintext, ByteView aad) {
  if (plaintext.size() > kMaxInput || aad.size() > kMaxInput) {
    return Fail(CryptoErrc::kInvalidArgument, "AES-256-GCM input is too large");
  }
  auto nonce = RandomBytes(kNonceSize);
  if (!nonce) return std::unexpected(nonce.error());
  auto ctx = Start(key, *nonce, true);
  if (!ctx) return std::unexpected(ctx.error());
  Bytes out = std::move(*nonce);
  out.resize(kNonceSize + plaintext.size() + kTagSize);
  int len = 0;
  if (EVP_EncryptUpdate(ctx->get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx->get(), out.data() + kNonceSize, &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx->get(), out.data() + kNonceSize + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx->get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                          out.data() + kNonceSize + plaintext.size()) != 1) {
    return std::unexpected(OpenSslError("sealing with AES-256-GCM"));
  }
  return out;
}

Expected<Bytes> Open(ByteView key, ByteView sealed, ByteView aad) {
  if (sealed.size() < kNonceSize + kTagSize || sealed.size() > kMaxInput ||
      aad.size() > kMaxInput) {
    return Fail(CryptoErrc::kParse, "sealed blob has an impossible size");
  }
  auto ctx = Start(key, sealed.first(kNonceSize), false);
  if (!ctx) return std::unexpected(ctx.error());
  const ByteView body = sealed.subspan(kNonceSize, sealed.size() - kNonceSize - kTagSize);
  Bytes tag(sealed.end() - kTagSize, sealed.end());
  Bytes out(body.size());
  int len = 0;
  if (EVP_DecryptUpdate(ctx->get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx->get(), out.data(), &len, body.data(), static_cast<int>(body.size())) !=
          1 ||
      EVP_CIPHER_CTX_ctrl(ctx->get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) != 1) {
    return std::unexpected(OpenSslError("opening AES-256-GCM blob"));
  }
  if (EVP_DecryptFinal_ex(ctx->get(), out.data() + len, &len) != 1) {
    ERR_clear_error();
    return Fail(CryptoErrc::kBadSignature,
                "sealed blob does not authenticate: wrong key, altered blob, or other context");
  }
  return out;
}

}  // namespace aspis::crypto::aead
