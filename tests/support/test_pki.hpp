#pragma once

#include <chrono>
#include <string>

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

}  // namespace aspis::testing
