#pragma once

#include <chrono>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/key.hpp"
#include "crypto/x509.hpp"

// A small platform PKI for device tests: a root, a tenant CA under it, and signers certified by
// the CA, named as the service names them.
namespace aspis::testing {

struct Issuer {
  crypto::PrivateKey key;
  crypto::Certificate cert;
};

inline Issuer MakeRoot(Clock::TimePoint now,
                       std::chrono::seconds lifetime = std::chrono::hours(48)) {
  using namespace std::chrono_literals;
  auto key = *crypto::PrivateKey::GenerateP256();
  auto cert = *crypto::CreateSelfSigned(
      key, {.common_name = "root", .not_before = now - 1h, .lifetime = lifetime, .is_ca = true});
  return {key, cert};
}

inline Issuer MakeTenantCa(const Issuer& root, const std::string& tenant, Clock::TimePoint now,
                           std::chrono::seconds lifetime = std::chrono::hours(24)) {
  using namespace std::chrono_literals;
  auto key = *crypto::PrivateKey::GenerateP256();
  auto cert = *crypto::Issue(root.cert, root.key, key.Public(),
                             {.common_name = "Aspis Tenant CA " + tenant,
                              .not_before = now - 1h,
                              .lifetime = lifetime,
                              .is_ca = true,
                              .path_length = 0});
  return {key, cert};
}

// A signer certified by `ca` with `name` and `policy`.
inline Issuer MakeSigner(const Issuer& ca, const std::string& name, const std::string& policy,
                         Clock::TimePoint now) {
  using namespace std::chrono_literals;
  auto key = *crypto::PrivateKey::GenerateP256();
  auto cert = *crypto::Issue(
      ca.cert, ca.key, key.Public(),
      {.common_name = name, .not_before = now - 1h, .lifetime = 12h, .policy_oids = {policy}});
  return {key, cert};
}

// `key` as encrypted PKCS#8 PEM (AES-256-CBC) opened with `password`, as a publisher ships one.
inline std::string EncryptedKeyPem(const crypto::PrivateKey& key, const std::string& password) {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string pem;
  if (PEM_write_bio_PKCS8PrivateKey(bio, key.native(), EVP_aes_256_cbc(), password.data(),
                                    static_cast<int>(password.size()), nullptr, nullptr) == 1) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<std::size_t>(size));
  }
  BIO_free(bio);
  return pem;
}

}  // namespace aspis::testing
