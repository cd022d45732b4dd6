#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/verdict.hpp"

struct evp_pkey_st;
struct X509_pubkey_st;

// ECDSA P-256 keys, the only kind Aspis uses. Keys are immutable and cheap to copy (shared,
// reference-counted OpenSSL objects); all methods are thread-safe.
namespace aspis::crypto {

class PublicKey {
 public:
  // DER SubjectPublicKeyInfo; other key types and curves are kUnsupportedKey.
  static Expected<PublicKey> FromDer(ByteView spki);
  // Only the one canonical encoding of a P-256 key: a named-curve SubjectPublicKeyInfo with an
  // uncompressed point. Any other (a compressed point, explicit curve parameters) is kParse, so
  // that one key has exactly one DER form, and one fingerprint.
  static Expected<PublicKey> FromCanonicalDer(ByteView spki);
  static Expected<PublicKey> FromPem(std::string_view pem);
  // Every "PUBLIC KEY" block of a PEM bundle, in order, skipping blocks of other types (a trust
  // bundle holds certificates too). Errors: kParse for a malformed key block.
  static Expected<std::vector<PublicKey>> AllFromPem(std::string_view pem);
  // An uncompressed P-256 point given as big-endian coordinates (as a TPM reports it).
  static Expected<PublicKey> FromEcPoint(ByteView x, ByteView y);
  // Takes a reference on `key` (which must be an EC P-256 key).
  static Expected<PublicKey> FromNative(evp_pkey_st* key);
  // The key of a parsed SubjectPublicKeyInfo (of a certificate or request); takes a reference on
  // its key. Cheaper than FromNative: the DER comes from the parsed structure, not an encoder.
  static Expected<PublicKey> FromSpki(X509_pubkey_st* spki);

  const Bytes& Der() const { return der_; }
  Expected<std::string> ToPem() const;
  // Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo: the key ID of DSSE signatures and the
  // device ID of an identity key.
  const std::string& Fingerprint() const { return fingerprint_; }

  // Verifies an ECDSA-SHA256 signature in DER over `data`. A signature that is not strict DER is
  // invalid, not "could not check".
  Verdict Verify(ByteView data, ByteView der_signature) const;

  evp_pkey_st* native() const { return key_.get(); }

  friend bool operator==(const PublicKey& a, const PublicKey& b) { return a.der_ == b.der_; }

 private:
  // An uncompressed P-256 point (0x04 || x || y); the DER is built from it.
  static Expected<PublicKey> FromPoint(ByteView point);
  PublicKey(std::shared_ptr<evp_pkey_st> key, Bytes der, std::string fingerprint)
      : key_(std::move(key)), der_(std::move(der)), fingerprint_(std::move(fingerprint)) {}

  std::shared_ptr<evp_pkey_st> key_;
  Bytes der_;
  std::string fingerprint_;
};

// The OpenSSL library context (and its property query) that a key held by a device lives in; the
// definition is crypto-internal (crypto/key_library.hpp).
struct KeyLibrary;

// A P-256 private key: in memory (software), or held by a TPM (TpmKeyStore), in which case the
// private part never leaves the TPM and every operation runs there.
class PrivateKey {
 public:
  static Expected<PrivateKey> GenerateP256();
  // Unencrypted PKCS#8 (or SEC1 "EC PRIVATE KEY") PEM.
  static Expected<PrivateKey> FromPem(std::string_view pem);

  // A software key: unencrypted PKCS#8 PEM; store it only in an owner-only (0600) file. A TPM-held
  // key: the TPM's wrapped copy ("TSS2 PRIVATE KEY"), which only that TPM can load.
  Expected<std::string> ToPem() const;
  const PublicKey& Public() const { return public_; }

  // ECDSA-SHA256 over `data`, DER-encoded.
  Expected<Bytes> Sign(ByteView data) const;

  bool tpm_held() const { return library_ != nullptr; }
  evp_pkey_st* native() const { return key_.get(); }

 private:
  friend class TpmKeyStore;
  friend const std::shared_ptr<const KeyLibrary>& LibraryOf(const PrivateKey& key);
  PrivateKey(std::shared_ptr<evp_pkey_st> key, PublicKey pub,
             std::shared_ptr<const KeyLibrary> library = nullptr)
      : library_(std::move(library)), key_(std::move(key)), public_(std::move(pub)) {}
  static Expected<PrivateKey> Adopt(evp_pkey_st* key);

  // Declared first: the key must be freed before the library context it lives in.
  std::shared_ptr<const KeyLibrary> library_;
  std::shared_ptr<evp_pkey_st> key_;
  PublicKey public_;
};

// ECDSA signature encodings: DER (X.509, OpenSSL) and the fixed-width r || s pair (TPM, P1363).
struct EcdsaRs {
  Bytes r;  // 32 bytes, big-endian
  Bytes s;  // 32 bytes, big-endian
};
Expected<EcdsaRs> EcdsaDerToRs(ByteView der);
Expected<Bytes> EcdsaRsToDer(ByteView r, ByteView s);

// Keys of PKIs outside Aspis (a TPM's endorsement key), by DER SubjectPublicKeyInfo.
// The SubjectPublicKeyInfo of the RSA public key with big-endian `modulus` and `exponent`.
Expected<Bytes> RsaPublicKeySpki(ByteView modulus, std::uint32_t exponent);
// Whether two SubjectPublicKeyInfos hold the same key, whatever their encodings; an unreadable
// one is an error.
Expected<bool> SamePublicKey(ByteView spki_a, ByteView spki_b);

}  // namespace aspis::crypto
