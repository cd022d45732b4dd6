#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/key.hpp"
#include "crypto/x509.hpp"
#include "service/data_dir.hpp"
#include "service/store/store.hpp"

// Tenant CAs (DESIGN section 4): each tenant's CA is issued by the platform root for two years.
// Ninety days before it expires a successor is made; the successor signs from 45 days after it was
// made, and until then relying parties (brokers, clouds) can add it beside the current one. Every
// unexpired generation stays trusted, so certificates issued just before a switch keep working.
namespace aspis::service::ca {

using namespace std::chrono_literals;
inline constexpr std::chrono::seconds kLifetime = 24h * 730;
inline constexpr std::chrono::seconds kSuccessorLead = 24h * 90;
inline constexpr std::chrono::seconds kActivationDelay = 24h * 45;

enum class State { kActive, kInactive, kExpired };
std::string_view StateName(State state);  // "Active", "Inactive", "Expired"

struct Generation {
  std::int64_t number = 1;
  crypto::Certificate certificate;
  std::int64_t activates_at = 0;  // Unix seconds
  State state = State::kInactive;
  std::string thumbprint;  // lowercase hex SHA-256 of the certificate's DER
};

// The CA that signs now, with its private key (unsealed for this use only).
struct Signer {
  Generation generation;
  crypto::PrivateKey key;
};

// A new tenant's first CA generation and its deployment key (certified by that CA), sealed for the
// store; the caller writes them in the transaction that creates the tenant.
struct NewTenantKeys {
  store::TenantCa ca;
  store::TenantKey deployment;
};

// Thread-safe. Reads never write: successors are made only by MakeDueSuccessors, which the service
// runs at start and on a schedule. Several service instances may share the store: a successor is
// made at most once per generation (the store refuses a duplicate, and the loser's is dropped).
// Parsed certificates and unsealed keys are cached per generation, checked against the stored text
// on every use, because attestation issues certificates at a high rate.
class TenantCas {
 public:
  TenantCas(store::Store& store, const DataDir& data, const Clock& clock)
      : store_(store), data_(data), clock_(clock) {}

  Expected<NewTenantKeys> MakeFirst(const store::Tenant& tenant) const;

  // Makes the successor of every tenant's newest generation that expires within kSuccessorLead.
  // Returns how many were made. One tenant's failure does not stop the others; the first error is
  // returned after all were tried.
  Expected<std::size_t> MakeDueSuccessors() const;

  // Every generation, oldest first, with its state now.
  Expected<std::vector<Generation>> List(std::string_view tenant) const;
  // The certificates of the unexpired generations: device certificates may chain to any of them.
  Expected<std::vector<crypto::Certificate>> Trusted(std::string_view tenant) const;
  // The active generation and its key. Errors: kNotFound for an unknown tenant.
  Expected<Signer> Active(std::string_view tenant) const;
  // Generation `number` and its key (for its CRL). Errors: kNotFound.
  Expected<Signer> SignerOf(std::string_view tenant, std::int64_t number) const;

 private:
  Expected<Signer> Find(std::string_view tenant,
                        const std::function<bool(const Generation&)>& which) const;
  // `records` receives the stored rows, aligned with the generations returned.
  Expected<std::vector<Generation>> Load(std::string_view tenant,
                                         std::vector<store::TenantCa>* records) const;
  // Whether a successor was made (false: another instance made it first).
  Expected<bool> MakeSuccessor(const store::TenantCa& latest) const;

  struct Parsed {
    std::string certificate_pem;  // what `certificate` was parsed from
    crypto::Certificate certificate;
    std::string thumbprint;
    std::string sealed_key;  // what `key` was unsealed from
    std::optional<crypto::PrivateKey> key;
  };
  Expected<Parsed> Parse(const store::TenantCa& record) const;

  store::Store& store_;
  const DataDir& data_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  mutable std::map<std::pair<std::string, std::int64_t>, Parsed> cache_;
};

}  // namespace aspis::service::ca
