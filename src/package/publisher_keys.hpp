#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/dsse.hpp"
#include "crypto/key.hpp"

// A tenant's publisher key set (TUF's root role, docs/formats/publisher-keys.md): the keys that
// sign the tenant's app packages, listed in a document its offline publisher root signs. The
// service stores and serves it but cannot make one: it holds no root key. A device pins the root
// the first time it sees a set, then accepts a new set only as a successor (Successor).
namespace aspis::package {

inline constexpr std::string_view kPublisherKeysType = "application/vnd.aspis.publisher-keys+json";

struct KeyRole {
  std::vector<crypto::PublicKey> keys;  // distinct
  std::size_t threshold = 1;            // signatures needed, 1..keys.size()
  crypto::dsse::TrustedKeys Trusted() const;
};

struct PublisherKeySet {
  std::string tenant;
  std::uint64_t version = 1;  // strictly increasing from one set to its successor
  std::int64_t expires = 0;   // Unix seconds; an expired set is refused
  KeyRole root;               // signs this set and its successor
  KeyRole publishers;         // sign app packages

  // Lowercase hex SHA-256 over the root keys' fingerprints (sorted) and the threshold: what a
  // device pins and reports.
  std::string RootFingerprint() const;
};

// Checks the set's own rules (distinct keys, thresholds in range, a tenant, a version, at most 16
// keys per role). Errors: kMalformed.
Expected<void> Validate(const PublisherKeySet& set);
std::string SerializeKeySet(const PublisherKeySet& set);
// Errors: kMalformed (unknown fields included).
Expected<PublisherKeySet> ParseKeySet(std::string_view json);

// The set, signed by every key in `keys`: at least set.root's threshold of its root keys, and for
// a root rotation the previous root's keys too. Errors: kMalformed, and kUntrusted when the keys
// do not reach set.root's threshold.
Expected<crypto::dsse::Envelope> SignKeySet(const PublisherKeySet& set,
                                            std::span<const crypto::PrivateKey> keys);

// A set that stands on its own: signed by its own root (to the threshold), for `tenant`, and not
// expired at `now`. This is what a device accepts the first time, and what the service checks on
// upload. Errors: kMalformed, kUntrusted (with the reason), kExpired as kUntrusted.
Expected<PublisherKeySet> VerifyKeySet(const crypto::dsse::Envelope& envelope,
                                       std::string_view tenant, Clock::TimePoint now);

// `candidate` verified as the successor of the trusted `current`: it verifies on its own (above),
// has a higher version, and is signed by `current`'s root to its threshold as well (so a root
// rotation needs both the old and the new root). Errors: kUntrusted naming the failed rule.
Expected<PublisherKeySet> Successor(const PublisherKeySet& current,
                                    const crypto::dsse::Envelope& candidate, Clock::TimePoint now);

}  // namespace aspis::package
