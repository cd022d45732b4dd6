#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/verdict.hpp"
#include "crypto/key.hpp"

struct x509_st;
struct X509_req_st;

// X.509 certificates and requests for the platform's PKI: the platform root CA, tenant CAs, device
// and server certificates. Objects are immutable and thread-safe.
namespace aspis::crypto {

// What a new certificate says. Strings are taken literally: they are never parsed as OpenSSL
// configuration, so a device-supplied name cannot smuggle in extensions.
struct CertificateProfile {
  std::string common_name;
  std::string organization;  // omitted when empty
  Clock::TimePoint not_before;
  std::chrono::seconds lifetime{0};
  bool is_ca = false;
  std::optional<int> path_length;  // CAs only
  bool client_auth = false;        // extended key usage
  bool server_auth = false;
  std::vector<std::string> san_uris;
  std::vector<std::string> san_dns;
  std::vector<std::string> san_ips;
  std::vector<std::string> policy_oids;  // dotted decimal
};

class Certificate {
 public:
  static Expected<Certificate> FromDer(ByteView der);
  // The first certificate in `pem`.
  static Expected<Certificate> FromPem(std::string_view pem);
  // Every certificate in `pem`, in order; text without any is an error.
  static Expected<std::vector<Certificate>> ChainFromPem(std::string_view pem);
  // Takes a reference on `cert`; the caller keeps its own.
  static Expected<Certificate> FromNative(x509_st* cert);

  const Bytes& Der() const { return der_; }
  Expected<std::string> ToPem() const;
  const PublicKey& SubjectPublicKey() const { return public_key_; }
  std::string SubjectCommonName() const;
  std::string IssuerCommonName() const;
  std::string SerialHex() const;
  Clock::TimePoint NotBefore() const;
  Clock::TimePoint NotAfter() const;
  bool IsCa() const;
  std::vector<std::string> SanUris() const;
  std::vector<std::string> PolicyOids() const;

  x509_st* native() const { return cert_.get(); }

 private:
  Certificate(std::shared_ptr<x509_st> cert, Bytes der, PublicKey key)
      : cert_(std::move(cert)), der_(std::move(der)), public_key_(std::move(key)) {}

  std::shared_ptr<x509_st> cert_;
  Bytes der_;
  PublicKey public_key_;
};

// A certificate of a PKI Aspis does not run, with a key of any type: a TPM manufacturer's EK
// certificates and CAs. Immutable and thread-safe.
class ForeignCertificate {
 public:
  static Expected<ForeignCertificate> FromDer(ByteView der);
  static Expected<std::vector<ForeignCertificate>> ChainFromPem(std::string_view pem);

  const Bytes& Der() const { return der_; }
  // The DER SubjectPublicKeyInfo, as encoded in the certificate.
  Expected<Bytes> SubjectPublicKeyInfo() const;
  // The subject's and issuer's distinguished names, RFC 2253.
  std::string SubjectName() const;
  std::string IssuerName() const;
  // In seconds: such a certificate may say 9999-12-31 ("no expiry"), past Clock's range.
  std::chrono::sys_seconds NotBefore() const;
  std::chrono::sys_seconds NotAfter() const;
  Expected<std::string> ToPem() const;
  x509_st* native() const { return cert_.get(); }

 private:
  ForeignCertificate(std::shared_ptr<x509_st> cert, Bytes der)
      : cert_(std::move(cert)), der_(std::move(der)) {}
  static Expected<ForeignCertificate> FromNative(x509_st* cert);

  std::shared_ptr<x509_st> cert_;
  Bytes der_;
};

class CertificateRequest {
 public:
  // A request signed by `key` with subject CN = `common_name`.
  static Expected<CertificateRequest> Create(const PrivateKey& key, std::string_view common_name);
  // Parsing checks structure and key type only; call VerifySignature for proof of possession.
  static Expected<CertificateRequest> FromDer(ByteView der);
  static Expected<CertificateRequest> FromPem(std::string_view pem);

  const Bytes& Der() const { return der_; }
  Expected<std::string> ToPem() const;
  const PublicKey& SubjectPublicKey() const { return public_key_; }
  std::string SubjectCommonName() const;
  // Proof that the requester holds the private key.
  Verdict VerifySignature() const;

 private:
  CertificateRequest(std::shared_ptr<X509_req_st> req, Bytes der, PublicKey key)
      : req_(std::move(req)), der_(std::move(der)), public_key_(std::move(key)) {}
  static Expected<CertificateRequest> Adopt(X509_req_st* req);

  std::shared_ptr<X509_req_st> req_;
  Bytes der_;
  PublicKey public_key_;
};

// A self-signed CA certificate for `key` (the platform root CA).
Expected<Certificate> CreateSelfSigned(const PrivateKey& key, const CertificateProfile& profile);

// A certificate for `subject` signed by `issuer_key`. Fails if `issuer` is not a CA, does not match
// `issuer_key`, or would expire before the new certificate.
Expected<Certificate> Issue(const Certificate& issuer, const PrivateKey& issuer_key,
                            const PublicKey& subject, const CertificateProfile& profile);

// A certificate revocation list of `issuer` (RFC 5280 v2 CRL with a CRL number).
struct CrlProfile {
  std::uint64_t number = 1;  // increases with every list the issuer publishes
  Clock::TimePoint this_update;
  Clock::TimePoint next_update;
  struct Entry {
    std::string serial_hex;  // as Certificate::SerialHex gives it
    Clock::TimePoint revoked_at;
  };
  std::vector<Entry> revoked;
};
// The CRL, PEM, signed by `issuer_key`. Fails if `issuer` is not a CA or does not match the key.
Expected<std::string> IssueCrl(const Certificate& issuer, const PrivateKey& issuer_key,
                               const CrlProfile& profile);

// Verifies that `leaf` chains to one of `roots` through `intermediates`, at time `at`. Each root is
// a trust anchor whether or not it is self-signed, so an intermediate CA can be pinned alone.
Verdict VerifyChain(const Certificate& leaf, std::span<const Certificate> intermediates,
                    std::span<const Certificate> roots, Clock::TimePoint at);
Verdict VerifyChain(const ForeignCertificate& leaf,
                    std::span<const ForeignCertificate> intermediates,
                    std::span<const ForeignCertificate> roots, Clock::TimePoint at);

// OpenSSL's X509_V_ERR_* code whose text (X509_verify_cert_error_string) is `text`, as other
// programs report a failed verification.
std::optional<int> VerifyErrorOfText(std::string_view text);

}  // namespace aspis::crypto
