#pragma once

#include "rot/root_of_trust.hpp"
#include "wire/attestation.hpp"

// What aspisd's attester does between its root of trust and the wire, for tests that build
// evidence by hand.
namespace aspis::testing {

inline wire::Quote ToWire(const rot::Quote& q) { return {q.attest, q.signature}; }

inline wire::Endorsement ToWire(const rot::Endorsement& e) {
  return {e.ek_certificate, e.ek_public, e.identity_public};
}

}  // namespace aspis::testing
