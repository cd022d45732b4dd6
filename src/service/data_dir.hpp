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
// (root-ca.pem; its key sealed with the master key), the HTTPS server certificate and key, and the
// master key for secrets at rest (master.key, 0600) unless the master key comes from elsewhere.
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
  // The master key file; when empty, $ASPIS_MASTER_KEY_FILE, else DIR/master.key (created on
  // first start). Keeping it outside DIR means a copy of DIR alone reveals no tenant key.
  std::filesystem::path master_key_file;
  // Names the server certificate carries (DNS names or IP addresses).
  std::vector<std::string> server_names = {"localhost", "127.0.0.1"};
};

// Opens `dir`, creating what is missing. Fails, naming the file, when something present is
// damaged, or when the master key does not open the root CA key (a wrong master key).
Expected<DataDir> OpenDataDir(const std::filesystem::path& dir, const DataDirOptions& options,
                              const Clock& clock);

// Seals and opens secrets at rest (base64 text of AES-256-GCM with the master key). `context`
// binds a sealed secret to its use ("tenant/t1/ca"), so one cannot be swapped for another.
Expected<std::string> SealSecret(ByteView master_key, ByteView secret, std::string_view context);
Expected<Bytes> OpenSecret(ByteView master_key, std::string_view sealed, std::string_view context);

}  // namespace aspis::service
