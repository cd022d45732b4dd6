#include "device/daemon/credentials.hpp"

#include <functional>

#include "core/file.hpp"
#include "core/log.hpp"

namespace aspis::device {

namespace {

namespace fs = std::filesystem;

constexpr char kRuntimeKey[] = "runtime.key";
constexpr char kRuntimeTpmKey[] = "runtime.tpm-key";
constexpr char kRuntimeCertificate[] = "runtime-certificate.pem";
constexpr char kAppKey[] = "app/key.pem";
constexpr char kAppCertificate[] = "app/certificate.pem";

// Loads the key at `path` with `load`, or makes one with `make` and stores it durably (0600).
Expected<crypto::PrivateKey> LoadOrMakeKey(
    file::FileSystem& files, const fs::path& path,
    const std::function<Expected<crypto::PrivateKey>(std::string_view)>& load,
    const std::function<Expected<crypto::PrivateKey>()>& make) {
  auto pem = files.Read(path, file::kSmallFileLimit);
  if (pem) {
    if (auto private_only = file::RequireOwnerOnly(path); !private_only) {
      return std::unexpected(private_only.error());
    }
    auto key = load(AsString(*pem));
    if (!key) {
      return std::unexpected(std::move(key.error()).WithContext("reading " + path.string()));
    }
    return key;
  }
  if (pem.error() != CoreErrc::kNotFound) return std::unexpected(pem.error());
  auto key = make();
  if (!key) return key;
  auto text = key->ToPem();
  if (!text) return std::unexpected(text.error());
  if (auto ok = file::WriteDurably(files, path, AsBytes(*text), 0600); !ok) {
    return std::unexpected(ok.error());
  }
  return key;
}

Expected<crypto::PrivateKey> LoadOrMakeSoftwareKey(file::FileSystem& files, const fs::path& path) {
  return LoadOrMakeKey(files, path, crypto::PrivateKey::FromPem, crypto::PrivateKey::GenerateP256);
}

Expected<crypto::PrivateKey> LoadOrMakeRuntimeKey(file::FileSystem& files,
                                                  const fs::path& state_dir,
                                                  const crypto::TpmKeyStore* tpm) {
  if (tpm == nullptr) return LoadOrMakeSoftwareKey(files, state_dir / kRuntimeKey);
  auto key = LoadOrMakeKey(
      files, state_dir / kRuntimeTpmKey, [tpm](std::string_view pem) { return tpm->Load(pem); },
      [tpm] { return tpm->Generate(); });
  if (!key) return key;
  std::error_code ec;
  if (fs::remove(state_dir / kRuntimeKey, ec)) {
    log::Info("removed the software runtime key: the TPM now holds the runtime key");
  }
  if (ec) {
    return Fail(CoreErrc::kIo,
                "cannot remove " + (state_dir / kRuntimeKey).string() + ": " + ec.message());
  }
  return key;
}

std::vector<crypto::Certificate> LoadChain(file::FileSystem& files, const fs::path& path) {
  auto pem = files.Read(path, file::kSmallFileLimit);
  if (!pem) return {};
  auto chain = crypto::Certificate::ChainFromPem(AsString(*pem));
  if (!chain) {
    log::Warning("ignoring unreadable certificate {}: {}", path.string(), chain.error().message());
    return {};
  }
  return *chain;
}

// The chain when its first certificate is for `key`; empty otherwise (a certificate for a key that
// was replaced, say when the runtime key moved into the TPM).
std::vector<crypto::Certificate> ForKey(std::vector<crypto::Certificate> chain,
                                        const crypto::PrivateKey& key, const fs::path& path) {
  if (!chain.empty() && !(chain.front().SubjectPublicKey() == key.Public())) {
    log::Warning("ignoring {}: it is not for the current key", path.string());
    return {};
  }
  return chain;
}

std::optional<crypto::Certificate> First(const std::vector<crypto::Certificate>& chain) {
  return chain.empty() ? std::nullopt : std::optional(chain.front());
}

}  // namespace

Expected<Credentials> Credentials::Open(const fs::path& state_dir, const crypto::TpmKeyStore* tpm,
                                        file::FileSystem& files) {
  if (auto ok = file::EnsureDirectory(state_dir / "app", 0700); !ok) {
    return std::unexpected(ok.error());
  }
  auto runtime_key = LoadOrMakeRuntimeKey(files, state_dir, tpm);
  if (!runtime_key) return std::unexpected(runtime_key.error());
  auto app_key = LoadOrMakeSoftwareKey(files, state_dir / kAppKey);
  if (!app_key) return std::unexpected(app_key.error());
  Credentials credentials(state_dir, files, std::move(*runtime_key), std::move(*app_key));
  credentials.runtime_chain_ = ForKey(LoadChain(files, state_dir / kRuntimeCertificate),
                                      credentials.runtime_key_, state_dir / kRuntimeCertificate);
  credentials.runtime_cert_ = First(credentials.runtime_chain_);
  credentials.app_cert_ = First(ForKey(LoadChain(files, state_dir / kAppCertificate),
                                       credentials.app_key_, state_dir / kAppCertificate));
  return credentials;
}

Expected<void> Credentials::Store(const attest::Certificates& issued) {
  // The app certificate first: a crash in between leaves the runtime certificate older, so the
  // next start renews rather than trusting a half-updated pair.
  if (auto ok = file::WriteDurably(
          *files_, dir_ / kAppCertificate,
          AsBytes(issued.result.app_certificate_pem + issued.result.ca_chain_pem), 0600);
      !ok) {
    return ok;
  }
  if (auto ok = file::WriteDurably(
          *files_, dir_ / kRuntimeCertificate,
          AsBytes(issued.result.runtime_certificate_pem + issued.result.ca_chain_pem), 0600);
      !ok) {
    return ok;
  }
  runtime_cert_ = issued.runtime;
  app_cert_ = issued.app;
  runtime_chain_ = {issued.runtime};
  if (auto chain = crypto::Certificate::ChainFromPem(issued.result.ca_chain_pem)) {
    runtime_chain_.insert(runtime_chain_.end(), chain->begin(), chain->end());
  }
  return {};
}

Expected<void> Credentials::Drop() {
  for (const char* name : {kRuntimeCertificate, kAppCertificate}) {
    const fs::path path = dir_ / name;
    files_->Remove(path);
    std::error_code ec;
    if (fs::exists(fs::symlink_status(path, ec))) {
      return Fail(CoreErrc::kIo, "cannot remove " + path.string());
    }
    if (auto ok = files_->SyncDirectory(path.parent_path()); !ok) return ok;
  }
  runtime_cert_.reset();
  app_cert_.reset();
  runtime_chain_.clear();
  return {};
}

}  // namespace aspis::device
