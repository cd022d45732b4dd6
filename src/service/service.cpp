#include "service/service.hpp"

#include <CLI/CLI.hpp>

#include <charconv>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <stop_token>
#include <thread>

#include "core/file.hpp"
#include "core/log.hpp"
#include "crypto/tls.hpp"
#include "service/api/api.hpp"
#include "service/ca/tenant_ca.hpp"
#include "service/data_dir.hpp"
#include "service/http/server.hpp"
#include "service/metrics.hpp"
#include "service/store/store.hpp"

namespace aspis::service {

namespace {

Expected<std::pair<std::string, std::uint16_t>> SplitListen(std::string_view listen) {
  const std::size_t colon = listen.rfind(':');
  std::uint16_t port = 0;
  if (colon == std::string_view::npos ||
      std::from_chars(listen.data() + colon + 1, listen.data() + listen.size(), port).ec !=
          std::errc()) {
    return Fail(CoreErrc::kInvalidArgument,
                "--listen \"" + std::string(listen) + "\" must be HOST:PORT");
  }
  return std::pair{std::string(listen.substr(0, colon)), port};
}

// Every certificate in the PEM files of `dir`; none when `dir` is empty.
Expected<std::vector<crypto::ForeignCertificate>> LoadTpmCas(const std::filesystem::path& dir) {
  std::vector<crypto::ForeignCertificate> cas;
  if (dir.empty()) return cas;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto extension = entry.path().extension();
    if (!entry.is_regular_file() || (extension != ".pem" && extension != ".crt")) continue;
    auto text = file::Read(entry.path(), file::kSmallFileLimit);
    if (!text) return std::unexpected(std::move(text.error()).WithContext("TPM CA"));
    auto certificates = crypto::ForeignCertificate::ChainFromPem(AsString(*text));
    if (!certificates) {
      return std::unexpected(
          std::move(certificates.error()).WithContext("TPM CA " + entry.path().string()));
    }
    cas.insert(cas.end(), certificates->begin(), certificates->end());
  }
  if (ec) {
    return Fail(CoreErrc::kIo,
                "cannot read the TPM CA directory " + dir.string() + ": " + ec.message());
  }
  if (cas.empty()) {
    return Fail(CoreErrc::kInvalidArgument,
                "the TPM CA directory " + dir.string() + " holds no PEM certificates");
  }
  return cas;
}

namespace fs = std::filesystem;

std::string DatabaseUrl(const fs::path& data_dir, const std::string& database) {
  return database.empty() ? "sqlite:" + (data_dir / "aspis.db").string() : database;
}

// The admin token file: outside the data directory, in a directory that exists.
Expected<void> CheckTokenFile(const fs::path& data_dir, const fs::path& token_file) {
  if (token_file.empty()) return {};
  if (auto ok = RequireOutsideDataDir(data_dir, token_file, "the admin token file"); !ok) {
    return ok;
  }
  if (std::error_code ec; !fs::is_directory(fs::absolute(token_file).parent_path(), ec)) {
    return Fail(CoreErrc::kNotFound,
                "the directory of the admin token file " + token_file.string() + " does not exist");
  }
  return {};
}

// Makes a platform administrator token, with its audit entry, and writes it to `token_file` when
// named. Call inside a PlatformTokenTransaction, so a failed write leaves no token behind.
Expected<std::string> IssuePlatformToken(store::Store& store, const Clock& clock,
                                         std::string_view why, const fs::path& token_file) {
  std::string id;
  auto token = api::CreateToken(store, clock, "", store::Role::kAdministrator,
                                "platform administrator (" + std::string(why) + ")", &id);
  if (!token) return token;
  if (auto seq = store.AppendAudit({0, "", "platform-admin:" + std::string(why), "token.create", id,
                                    UnixSeconds(clock.Now())});
      !seq) {
    return std::unexpected(seq.error());
  }
  if (!token_file.empty()) {
    if (auto ok = file::WriteDurably(token_file, AsBytes(*token + "\n"), 0600); !ok) {
      return std::unexpected(ok.error());
    }
  }
  return token;
}

http::RateLimits Limits(const ServiceConfig& config) {
  auto limit = [](double rate, double burst) -> std::optional<http::RateLimit> {
    if (rate <= 0) return std::nullopt;
    return http::RateLimit{.per_second = rate, .burst = std::max(burst, 1.0)};
  };
  http::RateLimits limits;
  limits.per_client = limit(config.client_requests_per_second, config.client_burst);
  limits.per_device = limit(config.device_requests_per_second, config.device_burst);
  return limits;
}

// The PUBLIC KEY blocks of a PEM file; none when `path` is empty.
Expected<crypto::dsse::TrustedKeys> LoadPublicKeys(const std::filesystem::path& path) {
  crypto::dsse::TrustedKeys keys;
  if (path.empty()) return keys;
  auto text = file::Read(path, file::kSmallFileLimit);
  if (!text) return std::unexpected(std::move(text.error()).WithContext("OS publisher keys"));
  auto found = crypto::PublicKey::AllFromPem(AsString(*text));
  if (!found) return std::unexpected(std::move(found.error()).WithContext(path.string()));
  if (found->empty()) {
    return Fail(CoreErrc::kInvalidArgument, path.string() + " holds no PEM public key");
  }
  for (const auto& key : *found) keys.Add(key);
  return keys;
}

class ServiceImpl final : public Service {
 public:
  ServiceImpl(DataDir data, std::unique_ptr<store::Store> store, const Clock& clock)
      : data_(std::move(data)),
        store_(std::move(store)),
        clock_(clock),
        cas_(*store_, data_, clock_) {}

  ~ServiceImpl() override { Stop(); }

  Expected<void> Run(const ServiceConfig& config) {
    if (auto ok = EnsureAdminToken(config.admin_token_file); !ok) return ok;
    auto tpm_cas = LoadTpmCas(config.tpm_ca_dir);
    if (!tpm_cas) return std::unexpected(tpm_cas.error());
    auto os_publishers = LoadPublicKeys(config.os_publisher_keys);
    if (!os_publishers) return std::unexpected(os_publishers.error());
    os_publishers_ = std::move(*os_publishers);
    auto listen = SplitListen(config.listen);
    if (!listen) return std::unexpected(listen.error());
    metrics_.Describe("aspis_http_requests_total", "HTTP requests by route and status", "counter");
    metrics_.Describe("aspis_http_request_duration_seconds", "Time to handle a request",
                      "histogram");
    metrics_.Describe("aspis_http_connections_refused_total",
                      "Connections closed unserved because too many were open", "counter");
    metrics_.Describe("aspis_attestations_total", "Attestations by verdict", "counter");
    metrics_.Describe("aspis_certificates_issued_total", "Device certificates issued", "counter");
    http::Router router;
    deltas_ = std::make_unique<deploy::Deltas>(data_.path);
    if (auto ok = RunMaintenance(); !ok) {
      log::Warning("scheduled work at start failed (retried every {} s): {}",
                   config.maintenance_interval.count(), ok.error().message());
    }
    api::AddRoutes(router, {*store_,
                            data_,
                            clock_,
                            metrics_,
                            cas_,
                            os_publishers_,
                            {.certificate_lifetime = config.certificate_lifetime,
                             .tpm_cas = std::move(*tpm_cas)},
                            deltas_.get()});
    auto tls = crypto::tls::ServerContext(data_.server_chain, data_.server_key,
                                          std::vector<crypto::Certificate>{data_.root_ca});
    if (!tls) return std::unexpected(tls.error());
    auto server = http::Server::Start(
        {.host = listen->first,
         .port = listen->second,
         .tls = *tls,
         .threads = config.threads,
         .max_connections = config.max_connections,
         .max_connections_per_client = config.max_connections_per_client,
         .limits = Limits(config)},
        std::move(router),
        {.request =
             [this](std::string_view method, std::string_view route, int status,
                    std::chrono::nanoseconds latency) {
               // The server passes labels from fixed sets only (see http::Observer).
               const Metrics::Labels labels{{"method", std::string(method)},
                                            {"route", std::string(route)}};
               Metrics::Labels with_status = labels;
               with_status.emplace_back("status", std::to_string(status));
               metrics_.Increment("aspis_http_requests_total", with_status);
               metrics_.Observe("aspis_http_request_duration_seconds", labels, latency);
             },
         .connection_refused =
             [this] { metrics_.Increment("aspis_http_connections_refused_total"); }});
    if (!server) return std::unexpected(server.error());
    server_ = std::move(*server);
    maintenance_ =
        std::jthread([this, interval = config.maintenance_interval](const std::stop_token& stop) {
          std::mutex mutex;
          std::condition_variable_any wake;
          std::unique_lock lock(mutex);
          while (true) {
            // Wakes at the interval, or at once when stop is requested.
            wake.wait_for(lock, stop, interval, [] { return false; });
            if (stop.stop_requested()) return;
            if (auto ok = RunMaintenance(); !ok) {
              log::Warning("scheduled work failed: {}", ok.error().message());
            }
          }
        });
    return {};
  }

  Expected<void> RunMaintenance() override {
    auto made = cas_.MakeDueSuccessors();
    auto purged = PurgeStaleUploads();
    if (!made) return std::unexpected(made.error());
    return purged;
  }

  std::uint16_t port() const override { return server_ ? server_->port() : 0; }
  const crypto::Certificate& root_ca() const override { return data_.root_ca; }
  const std::string& new_admin_token() const override { return admin_token_; }

  void Stop() override {
    if (maintenance_.joinable()) {
      maintenance_.request_stop();
      maintenance_.join();
    }
    if (server_) server_->Stop();
    deltas_.reset();
  }

 private:
  // Uploads not completed within a day are dropped, with their files.
  Expected<void> PurgeStaleUploads() {
    auto stale =
        store_->ListUploadsCreatedBefore(UnixSeconds(clock_.Now() - std::chrono::hours(24)));
    if (!stale) return std::unexpected(stale.error());
    for (const auto& upload : *stale) {
      std::error_code ec;
      std::filesystem::remove(data_.path / "uploads" / upload.id, ec);
      if (auto gone = store_->DeleteUpload(upload.id); !gone) return gone;
      log::Info("dropped upload {}, not completed within a day", upload.id);
    }
    return {};
  }

  // The first start (no platform administrator token in the store, revoked or not) makes one. So
  // after `admin-token revoke`, a restart makes none: only `admin-token rotate` does.
  Expected<void> EnsureAdminToken(const fs::path& token_file) {
    std::string made;
    auto ok = store_->PlatformTokenTransaction([&]() -> Expected<void> {
      auto existing = store_->ListPlatformTokens();
      if (!existing) return std::unexpected(existing.error());
      if (!existing->empty()) return {};
      auto token = IssuePlatformToken(*store_, clock_, "first-start", token_file);
      if (!token) return std::unexpected(token.error());
      made = std::move(*token);
      return {};
    });
    if (!ok) return ok;
    admin_token_ = std::move(made);
    return {};
  }

  DataDir data_;
  std::unique_ptr<store::Store> store_;
  const Clock& clock_;
  Metrics metrics_;
  ca::TenantCas cas_;
  crypto::dsse::TrustedKeys os_publishers_;
  std::unique_ptr<deploy::Deltas> deltas_;
  std::unique_ptr<http::Server> server_;
  std::jthread maintenance_;
  std::string admin_token_;
};

}  // namespace

Expected<std::unique_ptr<Service>> Service::Start(const ServiceConfig& config, const Clock& clock) {
  if (config.certificate_lifetime <= std::chrono::seconds(0) ||
      config.certificate_lifetime > kMaxCertificateLifetime) {
    return Fail(CoreErrc::kInvalidArgument,
                "device certificates live at most 7 days, so that a revoked device loses them "
                "soon even where no one reads the CRL");
  }
  if (auto ok = CheckTokenFile(config.data_dir, config.admin_token_file); !ok) {
    return std::unexpected(ok.error());
  }
  auto data = OpenDataDir(
      config.data_dir,
      {.master_key_file = config.master_key_file, .server_names = config.server_names}, clock);
  if (!data) return std::unexpected(data.error());
  auto database = store::OpenDatabase(DatabaseUrl(config.data_dir, config.database),
                                      config.database_connections);
  if (!database) return std::unexpected(database.error());
  auto opened = store::Store::Open(std::move(*database));
  if (!opened) return std::unexpected(opened.error());
  auto service = std::make_unique<ServiceImpl>(std::move(*data), std::move(*opened), clock);
  if (auto ok = service->Run(config); !ok) return std::unexpected(ok.error());
  return service;
}

namespace {

// The options of `aspis-service admin-token rotate|revoke`.
struct AdminTokenOptions {
  std::string data_dir;
  std::string database;
  std::string token_file;
};

void AddAdminTokenOptions(CLI::App& command, AdminTokenOptions& options, bool writes_token) {
  command.add_option("--data", options.data_dir,
                     "The service's data directory (default: aspis-service --data or --config)");
  command.add_option("--db", options.database,
                     "The service's database, if not sqlite:DATA/aspis.db (default: aspis-service "
                     "--db or --config)");
  if (writes_token) {
    command.add_option("--admin-token-file", options.token_file,
                       "Also write the new token to this file (0600), outside DATA (default: "
                       "aspis-service --admin-token-file or --config)");
  }
}

// Revokes every platform administrator token and with `rotate` makes a new one, in one
// transaction with the audit entries. Then deletes DATA/admin-token of older versions, whose token
// is revoked now.
int RunAdminToken(const AdminTokenOptions& options, bool rotate, std::ostream& out,
                  std::ostream& err) {
  auto fail = [&](const Error& error) {
    err << "aspis-service admin-token: " << error.message() << "\n";
    return 1;
  };
  const fs::path data_dir = options.data_dir;
  if (std::error_code ec; !fs::is_directory(data_dir, ec) ||
                          (options.database.empty() && !fs::exists(data_dir / "aspis.db", ec))) {
    return fail(Error(CoreErrc::kNotFound, "no service data in " + data_dir.string() +
                                               " (start aspis-service there first)"));
  }
  if (auto ok = CheckTokenFile(data_dir, options.token_file); !ok) return fail(ok.error());
  auto database = store::OpenDatabase(DatabaseUrl(data_dir, options.database), 1);
  if (!database) return fail(database.error());
  auto store = store::Store::Open(std::move(*database));
  if (!store) return fail(store.error());
  const std::string actor = rotate ? "platform-admin:rotate" : "platform-admin:revoke";
  const Clock& clock = SystemClock::Instance();
  std::size_t revoked = 0;
  std::string token;
  auto ok = (*store)->PlatformTokenTransaction([&]() -> Expected<void> {
    auto ids = (*store)->RevokePlatformTokens();
    if (!ids) return std::unexpected(ids.error());
    for (const auto& id : *ids) {
      auto seq =
          (*store)->AppendAudit({0, "", actor, "token.revoke", id, UnixSeconds(clock.Now())});
      if (!seq) return std::unexpected(seq.error());
    }
    revoked = ids->size();
    if (!rotate) return {};
    auto made = IssuePlatformToken(**store, clock, "rotate", options.token_file);
    if (!made) return std::unexpected(made.error());
    token = std::move(*made);
    return {};
  });
  if (!ok) return fail(ok.error());
  out << "Revoked " << revoked << " platform administrator token(s).\n";
  if (rotate) {
    out << "New platform administrator token (shown once"
        << (options.token_file.empty() ? "" : "; also in " + options.token_file) << "):\n  "
        << token << "\n";
  }
  if (std::error_code ec; fs::remove(data_dir / "admin-token", ec)) {
    out << "Deleted " << (data_dir / "admin-token").string() << " (an older version's copy).\n";
  }
  return 0;
}

// Serves until SIGTERM or SIGINT.
int RunService(const ServiceConfig& config, std::ostream& out, std::ostream& err) {
  // Block the stop signals before any thread starts, then wait for one of them here.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto service = Service::Start(config, SystemClock::Instance());
  if (!service) {
    err << "aspis-service: " << service.error().message() << "\n";
    return 1;
  }
  out << "aspis-service listening on port " << (*service)->port() << "\n";
  if (!(*service)->new_admin_token().empty()) {
    out << "Platform administrator token (shown once"
        << (config.admin_token_file.empty() ? "" : "; also in " + config.admin_token_file.string())
        << "):\n  " << (*service)->new_admin_token() << "\n";
  }
  out.flush();
  int received = 0;
  sigwait(&signals, &received);
  log::Info("received signal {}; stopping", received);
  (*service)->Stop();
  return 0;
}

// The serving options, as parsed; `Apply` puts them into a ServiceConfig.
struct ServiceFlags {
  std::string data_dir, master_key, admin_token_file, tpm_ca_dir, os_publisher_keys;
  int lifetime_hours = 24;

  void Apply(ServiceConfig& config) const {
    config.data_dir = data_dir;
    config.master_key_file = master_key;
    config.admin_token_file = admin_token_file;
    config.certificate_lifetime = std::chrono::hours(lifetime_hours);
    config.tpm_ca_dir = tpm_ca_dir;
    config.os_publisher_keys = os_publisher_keys;
  }
};

void AddServiceOptions(CLI::App& app, ServiceConfig& config, ServiceFlags& flags) {
  app.add_option("--data", flags.data_dir, "Data directory (created on first start; required)");
  app.add_option("--listen", config.listen, "HOST:PORT to serve HTTPS on")->capture_default_str();
  app.add_option("--db", config.database,
                 "sqlite:PATH or postgresql://... (default: sqlite:DATA/aspis.db)");
  app.add_option("--db-connections", config.database_connections,
                 "PostgreSQL connections this instance may open")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--master-key", flags.master_key,
                 "Master key file (required; or $ASPIS_MASTER_KEY_FILE), outside DATA so that a "
                 "copy of DATA alone opens nothing; created there (0600) on first start")
      ->envname("ASPIS_MASTER_KEY_FILE");
  app.add_option("--admin-token-file", flags.admin_token_file,
                 "Also write the first start's platform administrator token here (0600), outside "
                 "DATA");
  app.add_option("--server-name", config.server_names,
                 "Names for the server certificate (first start only)");
  app.add_option("--threads", config.threads, "I/O threads (default: one per core)");
  app.add_option("--certificate-hours", flags.lifetime_hours,
                 "Lifetime of device certificates (at most 7 days)")
      ->check(CLI::Range(1, 24 * 7))
      ->capture_default_str();
  app.add_option("--os-publisher-keys", flags.os_publisher_keys,
                 "PEM file of the platform's OS publisher public keys (those in devices' trust "
                 "bundles); OS and board images must be signed by one");
  app.add_option("--tpm-ca-dir", flags.tpm_ca_dir,
                 "Directory of TPM manufacturer CA certificates (PEM) that EK certificates must "
                 "chain to");
  app.add_option("--client-rate", config.client_requests_per_second,
                 "Requests per second each client address may make to the unauthenticated routes "
                 "(attestation, /healthz, /metrics); 0: unlimited")
      ->capture_default_str();
  app.add_option("--client-burst", config.client_burst, "Burst above --client-rate")
      ->capture_default_str();
  app.add_option("--device-rate", config.device_requests_per_second,
                 "Requests per second each device may make to the device routes; 0: unlimited")
      ->capture_default_str();
  app.add_option("--device-burst", config.device_burst, "Burst above --device-rate")
      ->capture_default_str();
  app.add_option("--max-connections", config.max_connections, "Connections open at once")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--max-connections-per-client", config.max_connections_per_client,
                 "Connections open at once from one client address (an IPv6 /64 counts as one)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
}

}  // namespace

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app("aspis-service: the Aspis security service", "aspis-service");
  app.set_config("--config", "",
                 "TOML file holding any of these options by their long names "
                 "(data = \"/var/lib/aspis\"); flags given too take precedence");
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.require_subcommand(0, 1);
  ServiceConfig config;
  ServiceFlags flags;
  AddServiceOptions(app, config, flags);

  auto* admin_token =
      app.add_subcommand("admin-token", "Platform administrator tokens, beside a running service");
  admin_token->require_subcommand(1);
  AdminTokenOptions token_options;
  auto* rotate = admin_token->add_subcommand(
      "rotate", "Revoke every platform administrator token and print a new one (once)");
  AddAdminTokenOptions(*rotate, token_options, true);
  auto* revoke = admin_token->add_subcommand("revoke", "Revoke every platform administrator token");
  AddAdminTokenOptions(*revoke, token_options, false);

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
    // admin-token's own flags first, then the service's (given before it, or by --config).
    if (token_options.data_dir.empty()) token_options.data_dir = flags.data_dir;
    if (token_options.database.empty()) token_options.database = config.database;
    if (rotate->parsed() && token_options.token_file.empty()) {
      token_options.token_file = flags.admin_token_file;
    }
    if (token_options.data_dir.empty()) throw CLI::RequiredError("--data");
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }
  if (admin_token->parsed()) return RunAdminToken(token_options, rotate->parsed(), out, err);
  flags.Apply(config);
  return RunService(config, out, err);
}

}  // namespace aspis::service
