#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "crypto/x509.hpp"

// Private keys of PKIs outside Aspis that the device keeps for others (the certificate store's
// client certificates, for EAP-TLS Wi-Fi), given by an app that may be hostile: parsing one must
// cost little whatever it says, so only the key types and encryptions such networks use are read.
namespace aspis::crypto {

inline constexpr std::uint64_t kMaxKeyDerivationIterations = 10'000;
inline constexpr int kMaxRsaKeyBits = 4096;

// The private key of `certificate` from PEM, decrypted with `password` when it is encrypted, as
// unencrypted PKCS#8 PEM for a store that keeps it in an owner-only file. Read: PKCS#8
// ("PRIVATE KEY"), PKCS#8 encrypted with PBES2 and PBKDF2 of at most kMaxKeyDerivationIterations
// ("ENCRYPTED PRIVATE KEY"), and OpenSSL's legacy "RSA PRIVATE KEY" and "EC PRIVATE KEY" (with
// their "DEK-Info" encryption); keys RSA of up to kMaxRsaKeyBits, or EC on P-256, P-384 or P-521.
// Errors: kUnsupportedKey for another type, size, curve or encryption; kParse for text that holds
// no key, one `password` does not open, or a key that is not the certificate's.
Expected<std::string> KeyOfCertificatePem(std::string_view key_pem,
                                          std::optional<std::string_view> password,
                                          const ForeignCertificate& certificate);

}  // namespace aspis::crypto
