#pragma once

#include <openssl/crypto.h>
#include <openssl/provider.h>

#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "crypto/key.hpp"
#include "crypto/openssl_ptr.hpp"

// Crypto-internal: the library context that keys held by a device live in, and signing under it.
namespace aspis::crypto {

// An OpenSSL library context of its own with the providers a device key needs, and the property
// query that routes key operations to the device while digests, ciphers and random numbers stay
// with the default provider. Freed (providers unloaded) when the last key using it is gone.
struct KeyLibrary {
  KeyLibrary(OSSL_LIB_CTX* ctx, std::string query) : context(ctx), properties(std::move(query)) {}
  KeyLibrary(const KeyLibrary&) = delete;
  KeyLibrary& operator=(const KeyLibrary&) = delete;
  ~KeyLibrary() {
    for (auto it = providers.rbegin(); it != providers.rend(); ++it) OSSL_PROVIDER_unload(*it);
    OSSL_LIB_CTX_free(context);
  }

  OSSL_LIB_CTX* context;
  std::string properties;
  std::vector<OSSL_PROVIDER*> providers;  // loaded into `context`, unloaded before it is freed
};

// The library a key lives in; null for a software key (the default context). Whatever holds an
// OpenSSL object made for the key (a TLS context) keeps this alive as long.
const std::shared_ptr<const KeyLibrary>& LibraryOf(const PrivateKey& key);
inline OSSL_LIB_CTX* ContextOf(const PrivateKey& key) {
  return LibraryOf(key) ? LibraryOf(key)->context : nullptr;
}
inline const char* PropertiesOf(const PrivateKey& key) {
  return LibraryOf(key) ? LibraryOf(key)->properties.c_str() : nullptr;
}

// A digest context ready for ECDSA-SHA256 signing with `key`, in the key's library context.
Expected<EvpMdCtxPtr> BeginSigning(const PrivateKey& key);

}  // namespace aspis::crypto
