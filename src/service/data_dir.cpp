#include "service/data_dir.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <functional>

#include "core/file.hpp"
#include "core/log.hpp"
#include "crypto/aead.hpp"
#include "crypto/encoding.hpp"

namespace aspis::service {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool IsIpAddress(const std::string& name) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, name.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, name.c_str(), buffer) == 1;
}

// The files older versions kept inside the data directory, refused until the operator moves them.
Expected<void> RefuseLegacySecrets(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dir / "master.key", ec))) {
    const std::string legacy = (dir / "master.key").string();
    return Fail(CoreErrc::kInvalidArgument,
                legacy +
                    ": an older aspis-service kept the master key inside the data directory, "
                    "where any copy of the directory carries it; move it out (for example "
                    "`mv " +
                    legacy +
                    " /etc/aspis/master.key`) and start with --master-key and its new path");
  }
  if (fs::exists(fs::symlink_status(dir / "admin-token", ec))) {
    return Fail(CoreErrc::kInvalidArgument,
                (dir / "admin-token").string() +
                    ": an older aspis-service kept the platform administrator token here in "
                    "plaintext; run `aspis-service admin-token rotate --data " +
                    dir.string() +
                    "` (it revokes that token, prints a new one and deletes the file), or keep "
                    "the token elsewhere and delete the file");
  }
  return {};
}

Expected<void> RequireMasterKeyOutside(const fs::path& dir, const fs::path& path) {
  if (path.empty()) {
    return Fail(CoreErrc::kInvalidArgument,
                "no master key file: name one outside the data directory with --master-key FILE "
                "(or $ASPIS_MASTER_KEY_FILE); the first start creates it there");
  }
  return RequireOutsideDataDir(dir, path, "the master key file");
}

Expected<Bytes> LoadMasterKey(const fs::path& path) {
  auto key = file::Read(path, 1024);
  if (!key && key.error() == CoreErrc::kNotFound) {
    const fs::path parent = fs::absolute(path).parent_path();
    if (std::error_code ec; !fs::is_directory(parent, ec)) {
      return Fail(CoreErrc::kNotFound, "cannot create the master key " + path.string() + ": " +
                                           parent.string() + " is not a directory");
    }
    auto fresh = crypto::RandomBytes(crypto::aead::kKeySize);
    if (!fresh) return fresh;
    if (auto ok = file::WriteDurably(path, *fresh, 0600); !ok) return std::unexpected(ok.error());
    log::Info("created master key {}; back it up apart from the data directory", path.string());
    return fresh;
  }
  if (!key) return key;
  if (auto ok = file::RequireOwnerOnly(path); !ok) return std::unexpected(ok.error());
  if (key->size() != crypto::aead::kKeySize) {
    return Fail(CoreErrc::kCorrupt, "master key " + path.string() + " is not 32 bytes");
  }
  return key;
}

// Reads PATH, or makes it with `make` when missing.
Expected<std::string> ReadOrMake(const fs::path& path, mode_t mode,
                                 const std::function<Expected<std::string>()>& make) {
  auto existing = file::Read(path, file::kSmallFileLimit);
  if (existing) return std::string(AsString(*existing));
  if (existing.error() != CoreErrc::kNotFound) return std::unexpected(existing.error());
  auto made = make();
  if (!made) return made;
  if (auto ok = file::WriteDurably(path, AsBytes(*made), mode); !ok) {
    return std::unexpected(ok.error());
  }
  return made;
}

}  // namespace

namespace {

// The P-256 key sealed with the master key in `path`, made on first use.
Expected<crypto::PrivateKey> SealedKey(const fs::path& path, const Bytes& master,
                                       std::string_view context) {
  auto sealed = ReadOrMake(path, 0600, [&]() -> Expected<std::string> {
    auto key = crypto::PrivateKey::GenerateP256();
    if (!key) return std::unexpected(key.error());
    auto pem = key->ToPem();
    if (!pem) return std::unexpected(pem.error());
    return SealSecret(master, AsBytes(*pem), context);
  });
  if (!sealed) return std::unexpected(sealed.error());
  auto pem = OpenSecret(master, *sealed, context);
  if (!pem) {
    return Fail(CoreErrc::kPermission, "the master key does not open " + path.string() +
                                           ": wrong master key, or the file was altered");
  }
  auto key = crypto::PrivateKey::FromPem(AsString(*pem));
  if (!key) return std::unexpected(std::move(key.error()).WithContext(path.string()));
  return key;
}

// Older versions kept the server key in plaintext (server.key): it is sealed, then removed.
Expected<void> SealLegacyServerKey(const fs::path& dir, const Bytes& master) {
  const fs::path legacy = dir / "server.key";
  auto pem = file::Read(legacy, file::kSmallFileLimit);
  if (!pem)
    return pem.error() == CoreErrc::kNotFound ? Expected<void>() : std::unexpected(pem.error());
  if (!fs::exists(dir / "server.key.sealed")) {
    auto sealed = SealSecret(master, *pem, "platform/server");
    if (!sealed) return std::unexpected(sealed.error());
    if (auto ok = file::WriteDurably(dir / "server.key.sealed", AsBytes(*sealed), 0600); !ok) {
      return ok;
    }
  }
  std::error_code ec;
  fs::remove(legacy, ec);
  if (ec) return Fail(CoreErrc::kIo, "removing " + legacy.string() + ": " + ec.message());
  return {};
}

}  // namespace

Expected<void> RequireOutsideDataDir(const fs::path& dir, const fs::path& path,
                                     std::string_view what) {
  // Absolute, then through every symlink and `..` of the part that exists.
  auto resolve = [](const fs::path& p, std::error_code& ec) {
    const fs::path absolute = fs::absolute(p, ec);
    return ec ? absolute : fs::weakly_canonical(absolute, ec);
  };
  std::error_code ec;
  fs::path resolved_dir = resolve(dir, ec);
  const fs::path resolved = ec ? fs::path() : resolve(path, ec);
  if (ec) {
    return Fail(CoreErrc::kIo, "cannot resolve " + std::string(what) + " " + path.string() +
                                   " against the data directory: " + ec.message());
  }
  // "DIR/" resolves with an empty last element, which no path inside DIR shares.
  if (!resolved_dir.has_filename()) resolved_dir = resolved_dir.parent_path();
  const auto end_of_dir =
      std::mismatch(resolved_dir.begin(), resolved_dir.end(), resolved.begin(), resolved.end())
          .first;
  if (end_of_dir != resolved_dir.end()) return {};
  std::string shown = path.string();
  if (resolved != path) shown += " (" + resolved.string() + ")";
  return Fail(CoreErrc::kInvalidArgument,
              std::string(what) + " " + shown + " is inside the data directory " + dir.string() +
                  ", so any copy of the directory would carry it; keep it elsewhere");
}

Expected<std::string> SealSecret(ByteView master_key, ByteView secret, std::string_view context) {
  auto sealed = crypto::aead::Seal(master_key, secret, AsBytes(context));
  if (!sealed) return std::unexpected(sealed.error());
  return crypto::Base64Encode(*sealed);
}

Expected<Bytes> OpenSecret(ByteView master_key, std::string_view sealed, std::string_view context) {
  auto bytes = crypto::Base64Decode(sealed);
  if (!bytes) return std::unexpected(bytes.error());
  return crypto::aead::Open(master_key, *bytes, AsBytes(context));
}

Expected<DataDir> OpenDataDir(const fs::path& dir, const DataDirOptions& options,
                              const Clock& clock) {
  // Refused before the data directory is created.
  if (auto ok = RefuseLegacySecrets(dir); !ok) return std::unexpected(ok.error());
  if (auto ok = RequireMasterKeyOutside(dir, options.master_key_file); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = file::EnsureDirectory(dir, 0700); !ok) return std::unexpected(ok.error());
  auto master_key = LoadMasterKey(options.master_key_file);
  if (!master_key) return std::unexpected(std::move(master_key.error()).WithContext("master key"));
  const Bytes& master = *master_key;

  // The root CA: its key sealed at rest, its certificate public.
  auto root_key = SealedKey(dir / "root-ca.key.sealed", master, "platform/root-ca");
  if (!root_key) return std::unexpected(root_key.error());
  auto root_cert_pem = ReadOrMake(dir / "root-ca.pem", 0644, [&]() -> Expected<std::string> {
    auto cert = crypto::CreateSelfSigned(*root_key, {.common_name = "Aspis Platform Root CA",
                                                     .organization = "Aspis",
                                                     .not_before = clock.Now() - 1h,
                                                     .lifetime = 24h * 365 * 20,
                                                     .is_ca = true,
                                                     .path_length = 1});
    if (!cert) return std::unexpected(cert.error());
    return cert->ToPem();
  });
  if (!root_cert_pem) return std::unexpected(root_cert_pem.error());
  auto root_cert = crypto::Certificate::FromPem(*root_cert_pem);
  if (!root_cert) return std::unexpected(std::move(root_cert.error()).WithContext("root-ca.pem"));
  if (!(root_cert->SubjectPublicKey() == root_key->Public())) {
    return Fail(CoreErrc::kCorrupt, "root-ca.pem does not match the sealed root CA key");
  }

  // The HTTPS server identity, issued by the root CA that devices pin. Its key is sealed too: with
  // it and a copy of server.pem, anyone could pass for the service to devices and operators.
  if (auto ok = SealLegacyServerKey(dir, master); !ok) return std::unexpected(ok.error());
  auto server_key = SealedKey(dir / "server.key.sealed", master, "platform/server");
  if (!server_key) return std::unexpected(server_key.error());
  auto server_pem = ReadOrMake(dir / "server.pem", 0644, [&]() -> Expected<std::string> {
    crypto::CertificateProfile profile{.common_name = "aspis-service",
                                       .not_before = clock.Now() - 1h,
                                       .lifetime = 24h * 825,
                                       .server_auth = true};
    for (const auto& name : options.server_names) {
      (IsIpAddress(name) ? profile.san_ips : profile.san_dns).push_back(name);
    }
    auto cert = crypto::Issue(*root_cert, *root_key, server_key->Public(), profile);
    if (!cert) return std::unexpected(cert.error());
    return cert->ToPem();
  });
  if (!server_pem) return std::unexpected(server_pem.error());
  auto server_cert = crypto::Certificate::FromPem(*server_pem);
  if (!server_cert)
    return std::unexpected(std::move(server_cert.error()).WithContext("server.pem"));

  std::vector<crypto::Certificate> chain;
  chain.push_back(std::move(*server_cert));
  chain.push_back(*root_cert);
  return DataDir{dir,
                 std::move(*master_key),
                 std::move(*root_cert),
                 std::move(*root_key),
                 std::move(chain),
                 std::move(*server_key)};
}

}  // namespace aspis::service
