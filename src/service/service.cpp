#include "service/service.hpp"

#include <CLI/CLI.hpp>

#include <charconv>
#include <csignal>

#include "core/file.hpp"
#include "core/log.hpp"
#include "crypto/tls.hpp"
#include "service/api/api.hpp"
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
    return Fail(CoreErrc::kIo, "cannot read the TPM CA directory " + dir.string() + ": " +
                                   ec.message());
  }
  if (cas.empty()) {
    return Fail(CoreErrc::kInvalidArgument,
                "the TPM CA directory " + dir.string() + " holds no PEM certificates");
  }
  return cas;
}

class ServiceImpl final : public Service {
 public:
  ServiceImpl(DataDir data, std::unique_ptr<store::Store> store, const Clock& clock)
      : data_(std::move(data)), store_(std::move(store)), clock_(clock) {}

  ~ServiceImpl() override { Stop(); }

  Expected<void> Run(const ServiceConfig& config) {
    if (auto ok = EnsureAdminToken(); !ok) return ok;
    auto tpm_cas = LoadTpmCas(config.tpm_ca_dir);
    if (!tpm_cas) return std::unexpected(tpm_cas.error());
    auto listen = SplitListen(config.listen);
    if (!listen) return std::unexpected(listen.error());
    metrics_.Describe("aspis_http_requests_total", "HTTP requests by route and status", "counter");
    metrics_.Describe("aspis_http_request_duration_seconds", "Time to handle a request",
                      "histogram");
    metrics_.Describe("aspis_attestations_total", "Attestations by verdict", "counter");
    metrics_.Describe("aspis_certificates_issued_total", "Device certificates issued", "counter");
    http::Router router;
    api::AddRoutes(router, {*store_,
                            data_,
                            clock_,
                            metrics_,
                            {.certificate_lifetime = config.certificate_lifetime,
                             .tpm_cas = std::move(*tpm_cas)}});
    auto tls = crypto::tls::ServerContext(data_.server_chain, data_.server_key,
                                          std::vector<crypto::Certificate>{data_.root_ca});
    if (!tls) return std::unexpected(tls.error());
    auto server = http::Server::Start(
        {.host = listen->first, .port = listen->second, .tls = *tls, .threads = config.threads},
        std::move(router),
        [this](std::string_view method, std::string_view route, int status,
               std::chrono::nanoseconds latency) {
          const Metrics::Labels labels{{"method", std::string(method)},
                                       {"route", route.empty() ? "unmatched" : std::string(route)}};
          Metrics::Labels with_status = labels;
          with_status.emplace_back("status", std::to_string(status));
          metrics_.Increment("aspis_http_requests_total", with_status);
          metrics_.Observe("aspis_http_request_duration_seconds", labels, latency);
        });
    if (!server) return std::unexpected(server.error());
    server_ = std::move(*server);
    return {};
  }

  std::uint16_t port() const override { return server_ ? server_->port() : 0; }
  const crypto::Certificate& root_ca() const override { return data_.root_ca; }
  const std::string& new_admin_token() const override { return admin_token_; }

  void Stop() override {
    if (server_) server_->Stop();
  }

 private:
  // The first start makes the platform administrator's token.
  Expected<void> EnsureAdminToken() {
    const auto path = data_.path / "admin-token";
    if (std::filesystem::exists(path)) return {};
    auto token = api::CreateToken(*store_, clock_, "", store::Role::kAdministrator,
                                  "platform administrator (first start)");
    if (!token) return std::unexpected(token.error());
    if (auto ok = file::WriteDurably(path, AsBytes(*token + "\n"), 0600); !ok) return ok;
    admin_token_ = *token;
    return {};
  }

  DataDir data_;
  std::unique_ptr<store::Store> store_;
  const Clock& clock_;
  Metrics metrics_;
  std::unique_ptr<http::Server> server_;
  std::string admin_token_;
};

}  // namespace

Expected<std::unique_ptr<Service>> Service::Start(const ServiceConfig& config, const Clock& clock) {
  auto data = OpenDataDir(
      config.data_dir,
      {.master_key_file = config.master_key_file, .server_names = config.server_names}, clock);
  if (!data) return std::unexpected(data.error());
  const std::string url = config.database.empty()
                              ? "sqlite:" + (config.data_dir / "aspis.db").string()
                              : config.database;
  auto database = store::OpenDatabase(url, config.database_connections);
  if (!database) return std::unexpected(database.error());
  auto opened = store::Store::Open(std::move(*database));
  if (!opened) return std::unexpected(opened.error());
  auto service = std::make_unique<ServiceImpl>(std::move(*data), std::move(*opened), clock);
  if (auto ok = service->Run(config); !ok) return std::unexpected(ok.error());
  return service;
}

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app("aspis-service: the Aspis security service", "aspis-service");
  app.set_config("--config", "",
                 "TOML file holding any of these options by their long names "
                 "(data = \"/var/lib/aspis\"); flags given too take precedence");
  app.allow_config_extras(CLI::config_extras_mode::error);
  ServiceConfig config;
  std::string data_dir;
  std::string master_key;
  app.add_option("--data", data_dir, "Data directory (created on first start)")->required();
  app.add_option("--listen", config.listen, "HOST:PORT to serve HTTPS on")->capture_default_str();
  app.add_option("--db", config.database,
                 "sqlite:PATH or postgresql://... (default: sqlite:DATA/aspis.db)");
  app.add_option("--db-connections", config.database_connections,
                 "PostgreSQL connections this instance may open")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--master-key", master_key,
                 "Master key file (default: $ASPIS_MASTER_KEY_FILE, else DATA/master.key)");
  app.add_option("--server-name", config.server_names,
                 "Names for the server certificate (first start only)");
  app.add_option("--threads", config.threads, "I/O threads (default: one per core)");
  int lifetime_hours = 24;
  app.add_option("--certificate-hours", lifetime_hours,
                 "Lifetime of device certificates (at most 7 days)")
      ->check(CLI::Range(1, 24 * 7))
      ->capture_default_str();
  std::string tpm_ca_dir;
  app.add_option("--tpm-ca-dir", tpm_ca_dir,
                 "Directory of TPM manufacturer CA certificates (PEM) that EK certificates must "
                 "chain to");
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }
  config.data_dir = data_dir;
  config.master_key_file = master_key;
  config.certificate_lifetime = std::chrono::hours(lifetime_hours);
  config.tpm_ca_dir = tpm_ca_dir;

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
    out << "Platform administrator token (shown once; also in "
        << (config.data_dir / "admin-token").string() << "):\n  " << (*service)->new_admin_token()
        << "\n";
  }
  out.flush();
  int received = 0;
  sigwait(&signals, &received);
  log::Info("received signal {}; stopping", received);
  (*service)->Stop();
  return 0;
}

}  // namespace aspis::service
