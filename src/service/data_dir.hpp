#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/key.hpp"
#include "crypto/x509.hpp"

// The service's data directory: on first start it is created with the platform root CA
// (root-ca.pem; its key sealed with the master key) and the HTTPS server certificate and key. The
// master key for secrets at rest never lives inside it, so a copy of the directory alone opens
// nothing.
namespace aspis::service {

struct DataDir {
  std::filesystem::path path;
  Bytes master_key;  // 32 bytes
  crypto::Certificate root_ca;
  crypto::PrivateKey root_key;
  std::vector<crypto::Certificate> server_chain;  // server certificate, then the root
  crypto::PrivateKey server_key;
};

struct DataDirOptions {
  // The master key file (32 bytes, 0600); required. It must resolve (after `..` and symlinks)
  // outside DIR. Created where it points on first start; its directory must exist.
  std::filesystem::path master_key_file;
  // Names the server certificate carries (DNS names or IP addresses).
  std::vector<std::string> server_names = {"localhost", "127.0.0.1"};
};

// Opens `dir`, creating what is missing. Fails, naming the file, when something present is
// damaged, or when the master key does not open the root CA key (a wrong master key). Fails
// (kInvalidArgument) before creating anything when no master key file is named, when it resolves
// inside `dir`, or when `dir` holds a master.key from an older version (which kept it there).
// Fails (kInvalidArgument) too when `dir` holds an admin-token file from an older version (the
// platform administrator token in plaintext).
Expected<DataDir> OpenDataDir(const std::filesystem::path& dir, const DataDirOptions& options,
                              const Clock& clock);

// Fails (kInvalidArgument, naming `what`) when `path` resolves inside `dir` or is `dir`: both are
// made absolute and resolved through every symlink and `..` that exists, so neither
// `DIR/../DIR/x` nor a symlink into DIR passes. Neither needs to exist.
Expected<void> RequireOutsideDataDir(const std::filesystem::path& dir,
                                     const std::filesystem::path& path, std::string_view what);

// Seals and opens secrets at rest (base64 text of AES-256-GCM with the master key). `context`
// binds a sealed secret to its use ("tenant/t1/ca"), so one cannot be swapped for another.
Expected<std::string> SealSecret(ByteView master_key, ByteView secret, std::string_view context);
Expected<Bytes> OpenSecret(ByteView master_key, std::string_view sealed, std::string_view context);

}  // namespace aspis::service
