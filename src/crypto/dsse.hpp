#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/key.hpp"

// DSSE (Dead Simple Signing Envelope) v1: every signed document in Aspis (package manifests,
// update manifests, publisher key sets) travels in one. Signatures cover PAE(type, payload), so a
// payload cannot be replayed under another type.
namespace aspis::crypto::dsse {

struct Signature {
  std::string keyid;  // lowercase hex SHA-256 of the signer's DER SubjectPublicKeyInfo
  Bytes sig;          // DER ECDSA-SHA256 over PAE
};

struct Envelope {
  std::string payload_type;
  Bytes payload;
  std::vector<Signature> signatures;
};

// Limits that bound the work a hostile envelope can cause.
inline constexpr std::size_t kMaxEnvelopeSize = 4u << 20;
inline constexpr std::size_t kMaxSignatures = 16;

// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal.
Bytes Pae(std::string_view payload_type, ByteView payload);

// Signs with every key in `keys` (at least one).
Expected<Envelope> Sign(std::string_view payload_type, ByteView payload,
                        std::span<const PrivateKey> keys);

std::string Serialize(const Envelope& envelope);
// Parses the JSON form; enforces kMaxEnvelopeSize and kMaxSignatures. Verifies nothing.
Expected<Envelope> Parse(std::string_view json);

// Trusted keys by key ID.
class TrustedKeys {
 public:
  void Add(const PublicKey& key) { keys_.insert_or_assign(key.Fingerprint(), key); }
  const PublicKey* Find(std::string_view keyid) const;
  bool empty() const { return keys_.empty(); }

 private:
  std::map<std::string, PublicKey, std::less<>> keys_;
};

// Returns the payload when the envelope has type `expected_type` and valid signatures from at
// least `threshold` distinct trusted keys. Errors: kUntrusted (wrong type, too few valid
// signatures: invalid), kOpenSsl (a signature could not be checked).
Expected<Bytes> Verify(const Envelope& envelope, std::string_view expected_type,
                       const TrustedKeys& trusted, std::size_t threshold = 1);

}  // namespace aspis::crypto::dsse
