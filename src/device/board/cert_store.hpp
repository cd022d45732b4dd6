#pragma once

#include <cstddef>
#include <expected>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <chrono>
#include "core/error.hpp"

// The device's certificate store (applibs' certstore.h): the root CA and client certificates that
// Wi-Fi networks authenticate with (EAP-TLS), shared by every app granted CertStore, kept as one
// owner-only PEM file per certificate that wpa_supplicant reads (PathOf). What an app gives is
// parsed and written back re-encoded: one certificate, and for a client certificate its private
// key, decrypted and checked to be the certificate's; nothing else an app wrote reaches the file.
// Errors are errno values, as applibs returns them: EINVAL for an identifier outside Azure
// Sphere's alphabet and for text that is not what it should be, ERANGE for sizes out of bounds,
// ENOSPC past kCertStoreCapacity (or when the disk is full), ENOENT for a certificate not
// installed, EIO when the store cannot be read or written.
namespace aspis::device::board {

inline constexpr std::size_t kCertStoreCapacity = std::size_t{24}
                                                  << 10;  // as an Azure Sphere device keeps
inline constexpr std::size_t kMaxCertificateText = 8192;  // CERTSTORE_MAX_CERT_SIZE
inline constexpr std::size_t kMaxCertIdentifier = 16;     // CERTSTORE_MAX_IDENTIFIER_LENGTH
inline constexpr std::size_t kMaxKeyPassword = 256;  // CERTSTORE_MAX_PRIVATE_KEY_PASSWORD_LENGTH

template <typename T>
using CertStoreResult = std::expected<T, int>;

struct StoredCertificate {
  std::string subject;  // RFC 2253
  std::string issuer;
  std::chrono::sys_seconds not_before;
  std::chrono::sys_seconds not_after;
  bool client = false;  // a client certificate (with its key), not a root CA
};

// EINVAL unless `identifier` is 1 to 16 of A-Z a-z 0-9 . - _ (ERANGE when longer).
CertStoreResult<void> CheckCertIdentifier(std::string_view identifier);

// Thread-safe.
class CertStore {
 public:
  // The store in `dir`, created (0700) when missing; files a write cut short left are removed.
  static Expected<std::unique_ptr<CertStore>> Open(std::filesystem::path dir);

  // Each replaces a certificate of the same identifier, whatever its kind. `pem` holds exactly
  // one certificate (1 to kMaxCertificateText bytes); `key_pem` one private key (as many bytes),
  // encrypted when `password` (at most kMaxKeyPassword bytes) is given.
  CertStoreResult<void> InstallRootCa(std::string_view identifier, std::string_view pem);
  CertStoreResult<void> InstallClient(std::string_view identifier, std::string_view pem,
                                      std::string_view key_pem,
                                      std::optional<std::string_view> password);
  CertStoreResult<void> Delete(std::string_view identifier);
  // Renames a certificate, replacing one named `to`.
  CertStoreResult<void> Move(std::string_view from, std::string_view to);
  // Every installed certificate's identifier, in byte order.
  CertStoreResult<std::vector<std::string>> Identifiers() const;
  CertStoreResult<std::size_t> AvailableSpace() const;
  CertStoreResult<StoredCertificate> Show(std::string_view identifier) const;

  // The file wpa_supplicant reads certificate `identifier` from, installed or not (a network
  // names a certificate that may come later).
  CertStoreResult<std::filesystem::path> PathOf(std::string_view identifier) const;
  // The identifier whose file `path` is; nullopt for any other path.
  std::optional<std::string> IdentifierOf(const std::filesystem::path& path) const;

 private:
  explicit CertStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  CertStoreResult<void> Install(std::string_view identifier, const std::string& contents);
  // Bytes used by every certificate but `except`'s.
  CertStoreResult<std::size_t> UsedExcept(std::string_view except) const;

  const std::filesystem::path dir_;
  mutable std::mutex mutex_;
};

}  // namespace aspis::device::board
