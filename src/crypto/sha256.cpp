#include "crypto/sha256.hpp"

#include <openssl/evp.h>

#include <utility>

#include "crypto/errors.hpp"

namespace aspis::crypto {

Expected<Sha256> Sha256::Create() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    return std::unexpected(OpenSslError("starting SHA-256"));
  }
  return Sha256(ctx);
}

Sha256::Sha256(Sha256&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  std::swap(ctx_, other.ctx_);
  return *this;
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

Expected<void> Sha256::Update(ByteView data) {
  if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) {
    return std::unexpected(OpenSslError("hashing with SHA-256"));
  }
  return {};
}

Expected<Digest> Sha256::Finish() {
  Digest digest{};
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx_, digest.data(), &size) != 1 || size != digest.size() ||
      EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    return std::unexpected(OpenSslError("finishing SHA-256"));
  }
  return digest;
}

Expected<Digest> Sha256Of(ByteView data) {
  Digest digest{};
  std::size_t size = 0;
  if (EVP_Q_digest(nullptr, "SHA256", nullptr, data.data(), data.size(), digest.data(), &size) !=
          1 ||
      size != digest.size()) {
    return std::unexpected(OpenSslError("computing SHA-256"));
  }
  return digest;
}

}  // namespace aspis::crypto
