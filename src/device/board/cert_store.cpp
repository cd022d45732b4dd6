#include "device/board/cert_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "core/log.hpp"
#include "crypto/foreign_key.hpp"
#include "crypto/x509.hpp"

namespace aspis::device::board {

namespace {

constexpr std::string_view kSuffix = ".pem";
constexpr std::string_view kKeyBegin = "-----BEGIN PRIVATE KEY-----";

bool IdentifierCharacter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// The identifier a store file's name gives, or nullopt for any other name.
std::optional<std::string> IdentifierOfName(const std::string& name) {
  if (!name.ends_with(kSuffix)) return std::nullopt;
  std::string identifier = name.substr(0, name.size() - kSuffix.size());
  if (!CheckCertIdentifier(identifier)) return std::nullopt;
  return identifier;
}

// The one certificate `pem` holds (EINVAL for none, several, or text that is not PEM).
CertStoreResult<crypto::ForeignCertificate> OneCertificate(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxCertificateText) return std::unexpected(ERANGE);
  auto chain = crypto::ForeignCertificate::ChainFromPem(pem);
  if (!chain || chain->size() != 1) return std::unexpected(EINVAL);
  return std::move(chain->front());
}

}  // namespace

CertStoreResult<void> CheckCertIdentifier(std::string_view identifier) {
  if (identifier.size() > kMaxCertIdentifier) return std::unexpected(ERANGE);
  if (identifier.empty() ||
      !std::all_of(identifier.begin(), identifier.end(), IdentifierCharacter)) {
    return std::unexpected(EINVAL);
  }
  return {};
}

Expected<std::unique_ptr<CertStore>> CertStore::Open(std::filesystem::path dir) {
  // Absolute: wpa_supplicant, which reads the files, runs from another directory.
  dir = std::filesystem::absolute(dir);
  if (auto made = file::EnsureDirectory(dir, 0700); !made) return std::unexpected(made.error());
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!IdentifierOfName(name) || !entry.is_regular_file(ec)) {
      std::filesystem::remove_all(entry.path(), ec);
    }
  }
  if (ec) return Fail(CoreErrc::kIo, "reading the certificate store " + dir.string());
  return std::unique_ptr<CertStore>(new CertStore(std::move(dir)));
}

CertStoreResult<std::filesystem::path> CertStore::PathOf(std::string_view identifier) const {
  if (auto valid = CheckCertIdentifier(identifier); !valid) return std::unexpected(valid.error());
  return dir_ / (std::string(identifier) + std::string(kSuffix));
}

std::optional<std::string> CertStore::IdentifierOf(const std::filesystem::path& path) const {
  if (path.parent_path() != dir_) return std::nullopt;
  return IdentifierOfName(path.filename().string());
}

CertStoreResult<std::vector<std::string>> CertStore::Identifiers() const {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> identifiers;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    auto identifier = IdentifierOfName(entry.path().filename().string());
    if (identifier && entry.is_regular_file(ec)) identifiers.push_back(std::move(*identifier));
  }
  if (ec) return std::unexpected(EIO);
  std::sort(identifiers.begin(), identifiers.end());
  return identifiers;
}

CertStoreResult<std::size_t> CertStore::UsedExcept(std::string_view except) const {
  std::size_t used = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const auto identifier = IdentifierOfName(entry.path().filename().string());
    if (!identifier || *identifier == except) continue;
    const auto size = entry.file_size(ec);
    if (ec) return std::unexpected(EIO);
    used += size;
  }
  if (ec) return std::unexpected(EIO);
  return used;
}

CertStoreResult<std::size_t> CertStore::AvailableSpace() const {
  const std::lock_guard lock(mutex_);
  const auto used = UsedExcept("");
  if (!used) return std::unexpected(used.error());
  return kCertStoreCapacity - std::min(*used, kCertStoreCapacity);
}

CertStoreResult<void> CertStore::Install(std::string_view identifier, const std::string& contents) {
  const auto path = PathOf(identifier);
  if (!path) return std::unexpected(path.error());
  const std::lock_guard lock(mutex_);
  const auto used = UsedExcept(identifier);
  if (!used) return std::unexpected(used.error());
  if (*used + contents.size() > kCertStoreCapacity) return std::unexpected(ENOSPC);
  if (auto written = file::WriteDurably(*path, AsBytes(contents), 0600); !written) {
    log::Warning("the certificate store: {}", written.error().message());
    return std::unexpected(file::ErrnoOf(written.error()));
  }
  return {};
}

CertStoreResult<void> CertStore::InstallRootCa(std::string_view identifier, std::string_view pem) {
  if (auto valid = CheckCertIdentifier(identifier); !valid) return valid;
  const auto certificate = OneCertificate(pem);
  if (!certificate) return std::unexpected(certificate.error());
  const auto encoded = certificate->ToPem();
  if (!encoded) return std::unexpected(EIO);
  return Install(identifier, *encoded);
}

CertStoreResult<void> CertStore::InstallClient(std::string_view identifier, std::string_view pem,
                                               std::string_view key_pem,
                                               std::optional<std::string_view> password) {
  if (auto valid = CheckCertIdentifier(identifier); !valid) return valid;
  const auto certificate = OneCertificate(pem);
  if (!certificate) return std::unexpected(certificate.error());
  if (key_pem.empty() || key_pem.size() > kMaxCertificateText) return std::unexpected(ERANGE);
  if (password && password->size() > kMaxKeyPassword) return std::unexpected(ERANGE);
  const auto key = crypto::KeyOfCertificatePem(key_pem, password, *certificate);
  if (!key) return std::unexpected(EINVAL);
  const auto encoded = certificate->ToPem();
  if (!encoded) return std::unexpected(EIO);
  // One file holds both: wpa_supplicant reads the certificate and the key from it.
  return Install(identifier, *encoded + *key);
}

CertStoreResult<void> CertStore::Delete(std::string_view identifier) {
  const auto path = PathOf(identifier);
  if (!path) return std::unexpected(path.error());
  const std::lock_guard lock(mutex_);
  if (::unlink(path->c_str()) != 0) return std::unexpected(errno == ENOENT ? ENOENT : EIO);
  if (!file::RealFileSystem().SyncDirectory(dir_)) return std::unexpected(EIO);
  return {};
}

CertStoreResult<void> CertStore::Move(std::string_view from, std::string_view to) {
  const auto source = PathOf(from);
  if (!source) return std::unexpected(source.error());
  const auto destination = PathOf(to);
  if (!destination) return std::unexpected(destination.error());
  const std::lock_guard lock(mutex_);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(*source, ec)) return std::unexpected(ENOENT);
  if (from == to) return {};
  if (std::rename(source->c_str(), destination->c_str()) != 0) return std::unexpected(EIO);
  if (!file::RealFileSystem().SyncDirectory(dir_)) return std::unexpected(EIO);
  return {};
}

CertStoreResult<StoredCertificate> CertStore::Show(std::string_view identifier) const {
  const auto path = PathOf(identifier);
  if (!path) return std::unexpected(path.error());
  const std::lock_guard lock(mutex_);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(*path, ec)) return std::unexpected(ENOENT);
  const auto contents = file::Read(*path, file::kSmallFileLimit);
  if (!contents) return std::unexpected(EIO);
  const std::string_view text = AsString(*contents);
  const auto certificate = crypto::ForeignCertificate::ChainFromPem(
      text.substr(0, std::min(text.find(kKeyBegin), text.size())));
  if (!certificate || certificate->size() != 1) return std::unexpected(EIO);
  const auto& c = certificate->front();
  return StoredCertificate{.subject = c.SubjectName(),
                           .issuer = c.IssuerName(),
                           .not_before = c.NotBefore(),
                           .not_after = c.NotAfter(),
                           .client = text.find(kKeyBegin) != std::string_view::npos};
}

}  // namespace aspis::device::board
