#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/x509.hpp"

namespace aspis::service {

inline constexpr std::chrono::seconds kMaxCertificateLifetime = std::chrono::hours(24 * 7);

struct ServiceConfig {
  std::filesystem::path data_dir;
  std::string listen = "127.0.0.1:8443";  // HOST:PORT; port 0 picks a free one
  std::string database;                   // empty: sqlite:DATA_DIR/aspis.db
  std::size_t database_connections = 8;   // PostgreSQL pool size per instance
  // Required; outside data_dir (see DataDirOptions), created there on first start.
  std::filesystem::path master_key_file;
  std::vector<std::string> server_names = {"localhost", "127.0.0.1"};
  unsigned threads = 0;
  std::chrono::seconds certificate_lifetime = std::chrono::hours(24);  // device certificates
  // PEM files (*.pem, *.crt) of the TPM manufacturer CAs that EK certificates must chain to;
  // empty: no TPM device can prove its hardware.
  std::filesystem::path tpm_ca_dir;
  // A PEM file of the platform's OS publisher public keys (the ones in devices' trust bundles);
  // OS and board images must be signed by one. Empty: no OS or board image can be added.
  std::filesystem::path os_publisher_keys;
  // Unauthenticated routes (attestation, /healthz, /metrics), per client address; 0: unlimited.
  double client_requests_per_second = 10;
  double client_burst = 20;
  // Device routes (check-in), per device; 0: unlimited.
  double device_requests_per_second = 2;
  double device_burst = 10;
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_client = 256;  // per client address
  // Where the first start also writes the platform administrator token (0600, durably), for
  // automation; must be outside data_dir. Empty: new_admin_token() alone has it.
  std::filesystem::path admin_token_file;
  // How often the scheduled work runs (see Service::RunMaintenance); it also runs at start.
  std::chrono::seconds maintenance_interval = std::chrono::hours(1);
};

// aspis-service: the data directory, the store, the API and the HTTPS server, running.
class Service {
 public:
  // Opens (or on first start creates) everything and starts serving. The first start (the store
  // holds no platform administrator token, revoked or not) creates a platform administrator token,
  // stored hashed, returned by new_admin_token() and written to admin_token_file when named; it is
  // never written inside data_dir. Fails before creating anything when master_key_file or
  // admin_token_file resolves inside data_dir.
  static Expected<std::unique_ptr<Service>> Start(const ServiceConfig& config, const Clock& clock);
  virtual ~Service() = default;

  virtual std::uint16_t port() const = 0;
  virtual const crypto::Certificate& root_ca() const = 0;
  // The platform administrator token made on this start; empty when the data existed already.
  virtual const std::string& new_admin_token() const = 0;
  // The scheduled work, now: makes the successor of every tenant CA that expires within 90 days,
  // and drops image uploads not completed within a day.
  // Errors are logged; the first is returned after all tenants were tried.
  virtual Expected<void> RunMaintenance() = 0;
  // Graceful stop; idempotent.
  virtual void Stop() = 0;
};

// The aspis-service command line: serves until SIGTERM or SIGINT, or with `admin-token rotate`
// or `admin-token revoke` replaces or revokes the platform administrator tokens in the store
// (beside a running service, which looks tokens up on every request).
int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace aspis::service
