#include "crypto/tpm_key.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "crypto/errors.hpp"
#include "crypto/key_library.hpp"

namespace aspis::crypto {

namespace {

constexpr char kProvider[] = "tpm2";
// Prefer the TPM for key management, signatures and key exchange; never for digests, ciphers or
// random numbers, which the default provider does far faster (and a TPM hash sequence cannot be
// copied the way TLS copies its transcript hash).
constexpr char kProperties[] = "?provider=tpm2,tpm2.digest!=yes,tpm2.cipher!=yes,tpm2.rand!=yes";

constexpr char kTctiVariable[] = "TPM2OPENSSL_TCTI";

// Sets an environment variable for the life of this object, then restores what was there. Not
// thread-safe (the environment is not): TpmKeyStore::Open's contract says so.
class ScopedVariable {
 public:
  ScopedVariable(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;  // NOLINT(concurrency-mt-unsafe)
    ::setenv(name, value.c_str(), 1);                     // NOLINT(concurrency-mt-unsafe)
  }
  ScopedVariable(const ScopedVariable&) = delete;
  ScopedVariable& operator=(const ScopedVariable&) = delete;
  ~ScopedVariable() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    } else {
      ::unsetenv(name_);  // NOLINT(concurrency-mt-unsafe)
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

bool HeldByTpm(EVP_PKEY* key) {
  const OSSL_PROVIDER* provider = EVP_PKEY_get0_provider(key);
  return provider != nullptr && std::string_view(OSSL_PROVIDER_get0_name(provider)) == kProvider;
}

}  // namespace

Expected<TpmKeyStore> TpmKeyStore::Open(std::string_view tcti) {
  if (tcti.empty()) return Fail(CryptoErrc::kInvalidArgument, "TPM TCTI configuration is empty");
  OSSL_LIB_CTX* raw = OSSL_LIB_CTX_new();
  if (raw == nullptr) return std::unexpected(OpenSslError("creating a library context"));
  auto library = std::make_shared<KeyLibrary>(raw, kProperties);
  // tpm2-openssl 1.1 reads its TCTI from the environment when it starts (its "tcti" configuration
  // setting is lost on the way), and connects then.
  const ScopedVariable variable(kTctiVariable, std::string(tcti));
  for (const char* name : {"default", kProvider}) {
    OSSL_PROVIDER* provider = OSSL_PROVIDER_load(library->context, name);
    if (provider == nullptr) {
      return std::unexpected(OpenSslError(std::string("loading the ") + name +
                                          " provider for the TPM at TCTI " + std::string(tcti)));
    }
    library->providers.push_back(provider);
  }
  return TpmKeyStore(std::move(library));
}

Expected<PrivateKey> TpmKeyStore::Wrap(EVP_PKEY* key) const {
  EvpPkeyPtr owned(key);
  if (!HeldByTpm(key)) {
    return Fail(CryptoErrc::kUnsupportedKey, "key is not held by the TPM");
  }
  // The public half in the default context, re-read from its SubjectPublicKeyInfo: verifying with
  // it never touches the TPM.
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return std::unexpected(OpenSslError("encoding TPM public key"));
  Bytes spki(der, der + len);
  OPENSSL_free(der);
  auto pub = PublicKey::FromDer(spki);
  if (!pub) return std::unexpected(std::move(pub.error()).WithContext("TPM key"));
  return PrivateKey(std::shared_ptr<EVP_PKEY>(owned.release(), EVP_PKEY_free), std::move(*pub),
                    library_);
}

Expected<PrivateKey> TpmKeyStore::Generate() const {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(library_->context, "EC", kProperties));
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") != 1 ||
      EVP_PKEY_generate(ctx.get(), &key) != 1) {
    return std::unexpected(OpenSslError("generating a P-256 key in the TPM"));
  }
  return Wrap(key);
}

Expected<PrivateKey> TpmKeyStore::Load(std::string_view pem) const {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::unexpected(OpenSslError("reading TPM key PEM"));
  EVP_PKEY* key = PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, nullptr, nullptr,
                                             library_->context, kProperties);
  if (key == nullptr) {
    return std::unexpected(OpenSslError("text is not a key this TPM can load", CryptoErrc::kParse));
  }
  return Wrap(key);
}

}  // namespace aspis::crypto
