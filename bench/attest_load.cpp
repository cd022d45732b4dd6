// Attestation load: N simulated devices (software root of trust) attest against a running
// aspis-service, each attestation on a new TLS connection as real devices do. Prints
// attestations/s, p50/p99 latency and the service's peak RSS, for SQLite and PostgreSQL, beside
// the limits measured in the same run: bare TLS handshakes/s against a trivial server (server
// certificate only, as attestation uses) and ECDSA P-256 sign and verify per second.
//   build/release/bench/attest_load --devices 1000 --concurrency 1000 --attestations 4000
#include <CLI/CLI.hpp>

#include <csignal>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "crypto/key.hpp"
#include "crypto/tls.hpp"
#include "device/attest/attester.hpp"
#include "rot/root_of_trust.hpp"
#include "service/http/router.hpp"
#include "service/http/server.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "wire/https_client.hpp"

namespace {

using namespace aspis;
using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;
using SteadyClock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "attest_load: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Must(Expected<T> value, const std::string& what) {
  if (!value) Die(what + ": " + value.error().message());
  return std::move(*value);
}

crypto::Digest Hash(std::string_view s) { return *crypto::Sha256Of(AsBytes(s)); }

struct Device {
  std::unique_ptr<rot::RootOfTrust> rot;
  std::vector<wire::MeasurementEvent> events;
  crypto::PrivateKey runtime_key;
  crypto::PrivateKey app_key;
};

Device MakeDevice(const std::filesystem::path& dir) {
  auto rot = Must(rot::Initialize({.backend = "software", .state_dir = dir}), "device");
  std::vector<wire::MeasurementEvent> events;
  for (const std::string_view component : wire::kLaunchComponents) {
    events.push_back({std::string(component), Hash(component)});
  }
  for (const auto& e : events) {
    if (auto ok = rot->Extend(e.digest); !ok) Die("extend: " + ok.error().message());
  }
  return {std::move(rot), std::move(events), Must(crypto::PrivateKey::GenerateP256(), "key"),
          Must(crypto::PrivateKey::GenerateP256(), "key")};
}

struct Latencies {
  std::vector<double> ms;
  double seconds = 0;
  std::size_t failures = 0;
  std::string first_failure;

  double Rate() const { return static_cast<double>(ms.size()) / seconds; }
  double Percentile(double p) {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[std::min(ms.size() - 1,
                       static_cast<std::size_t>(p * static_cast<double>(ms.size())))];
  }
};

// Runs `total` operations on `workers` threads; worker w calls op(w) and returns its error, if any.
Latencies RunLoad(std::size_t workers, std::size_t total,
                  const std::function<std::optional<std::string>(std::size_t)>& op) {
  std::atomic<std::size_t> next{0};
  std::vector<std::vector<double>> per_worker(workers);
  std::atomic<std::size_t> failures{0};
  std::mutex failure_mutex;
  std::string first_failure;
  std::vector<std::thread> threads;
  const auto start = SteadyClock::now();
  for (std::size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      while (next.fetch_add(1) < total) {
        const auto began = SteadyClock::now();
        if (auto error = op(w)) {
          ++failures;
          const std::lock_guard lock(failure_mutex);
          if (first_failure.empty()) first_failure = *error;
          continue;
        }
        per_worker[w].push_back(
            std::chrono::duration<double, std::milli>(SteadyClock::now() - began).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  Latencies result;
  result.seconds = Seconds(SteadyClock::now() - start).count();
  for (auto& v : per_worker) result.ms.insert(result.ms.end(), v.begin(), v.end());
  result.failures = failures;
  result.first_failure = first_failure;
  return result;
}

double OpsPerSecond(const std::function<void()>& op) {
  std::size_t count = 0;
  const auto start = SteadyClock::now();
  while (SteadyClock::now() - start < 1s) {
    for (int i = 0; i < 50; ++i) op();
    count += 50;
  }
  return static_cast<double>(count) / Seconds(SteadyClock::now() - start).count();
}

// A TLS server that answers nothing but the handshake: the floor under every attestation.
double HandshakeRate(std::size_t workers, std::size_t total) {
  const auto key = Must(crypto::PrivateKey::GenerateP256(), "key");
  const auto now = std::chrono::system_clock::now();
  const auto root = Must(
      crypto::CreateSelfSigned(
          key,
          {.common_name = "bench root", .not_before = now - 1h, .lifetime = 24h, .is_ca = true}),
      "root");
  const auto server_key = Must(crypto::PrivateKey::GenerateP256(), "key");
  const auto server_cert = Must(crypto::Issue(root, key, server_key.Public(),
                                              {.common_name = "bench",
                                               .not_before = now - 1h,
                                               .lifetime = 2h,
                                               .server_auth = true,
                                               .san_ips = {"127.0.0.1"}}),
                                "server certificate");
  const std::vector<crypto::Certificate> chain{server_cert, root};
  auto server = Must(service::http::Server::Start(
                         {.host = "127.0.0.1",
                          .port = 0,
                          .tls = Must(crypto::tls::ServerContext(chain, server_key, {}), "tls")},
                         service::http::Router()),
                     "trivial server");
  const std::vector<crypto::Certificate> roots{root};
  const wire::HttpsClient client({"127.0.0.1", server->port()},
                                 Must(crypto::tls::ClientContext(roots), "tls"));
  auto load = RunLoad(workers, total, [&](std::size_t) -> std::optional<std::string> {
    auto connection = client.Connect();
    if (!connection) return connection.error().message();
    return std::nullopt;
  });
  server->Stop();
  if (load.failures > 0) Die("handshakes failed: " + load.first_failure);
  return load.Rate();
}

// CPU seconds (user + system) a process has used so far.
double CpuSeconds(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

long PeakRssKib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmHWM:")) return std::stol(line.substr(6));
  }
  return -1;
}

struct EngineResult {
  Latencies load;
  long peak_rss_kib = 0;
  double service_cpu_ms = 0;  // per attestation
  double client_cpu_ms = 0;   // per attestation, the simulated devices
};

EngineResult RunEngine(const std::string& engine, std::vector<Device>& devices, std::size_t workers,
                       std::size_t total) {
  testing::TempDir dir;
  std::unique_ptr<testing::PostgresServer> postgres;
  const int port = testing::FreePort();
  std::vector<std::string> argv = {ASPIS_SERVICE_BINARY, "--data", (dir / "data").string(),
                                   "--master-key", (dir / "master.key").string(),
                                   "--admin-token-file", (dir / "admin-token").string(), "--listen",
                                   "127.0.0.1:" + std::to_string(port),
                                   // Every simulated device attests from 127.0.0.1.
                                   "--client-rate", "0", "--max-connections", "100000"};
  if (engine == "postgresql") {
    postgres = std::make_unique<testing::PostgresServer>();
    argv.insert(argv.end(), {"--db", postgres->Url()});
  }
  testing::BackgroundProcess service(argv, std::nullopt, SIGTERM, (dir / "service.log").string());
  if (!testing::WaitForPort(port)) Die("aspis-service did not start; see its log");
  const auto root = Must(
      crypto::Certificate::FromPem(
          AsString(Must(file::Read(dir / "data/root-ca.pem", file::kSmallFileLimit), "root CA"))),
      "root CA");
  const std::string admin(
      AsString(Must(file::Read(dir / "admin-token", file::kSmallFileLimit), "admin token")));
  const std::vector<crypto::Certificate> roots{root};
  const wire::HttpsClient client({"127.0.0.1", static_cast<std::uint16_t>(port)},
                                 Must(crypto::tls::ClientContext(roots), "tls"));

  // Provisioning on one keep-alive connection: tenant, OS release, claims.
  auto connection = Must(client.Connect(), "connect");
  const std::vector<std::pair<std::string, std::string>> auth = {
      {"Authorization", "Bearer " + admin.substr(0, admin.find('\n'))}};
  auto call = [&](const std::string& target, const json::Json& body, int status = 201) {
    auto response = Must(connection.Send("POST", target, body.dump(), auth), target);
    if (response.status != status) Die(target + ": HTTP " + std::to_string(response.status));
    return response;
  };
  const auto tenant = json::Parse(call("/v1/tenants", {{"name", "bench"}}).body)->value("id", "");
  // The simulated devices have software roots of trust.
  call("/v1/tenants/" + tenant + "/attestation-policy", {{"allow_software_root_of_trust", true}},
       200);
  json::Json components = json::Json::object();
  for (const std::string_view component : wire::kLaunchComponents) {
    components[std::string(component)] = crypto::ToHex(Hash(component));
  }
  call("/v1/os-releases", {{"version", "24.10"}, {"feed", "retail"}, {"components", components}});
  for (const auto& d : devices) {
    call("/v1/tenants/" + tenant + "/devices",
         {{"device_id", Must(d.rot->GetIdentity(), "identity").device_id}});
  }

  // Worker w owns devices w, w + workers, ...: a root of trust serves one caller at a time.
  std::vector<std::size_t> turn(workers, 0);
  const double service_cpu = CpuSeconds(service.pid());
  const double client_cpu = CpuSeconds(::getpid());
  auto load = RunLoad(workers, total, [&](std::size_t w) -> std::optional<std::string> {
    const std::size_t owned = (devices.size() - w + workers - 1) / workers;
    Device& d = devices[w + workers * (turn[w]++ % owned)];
    auto attested = device::attest::Attest(client, *d.rot, d.events, d.runtime_key, d.app_key,
                                           roots, std::chrono::system_clock::now());
    if (!attested) return attested.error().message();
    return std::nullopt;
  });
  const double count = static_cast<double>(std::max<std::size_t>(load.ms.size(), 1));
  EngineResult result{.load = std::move(load),
                      .peak_rss_kib = PeakRssKib(service.pid()),
                      .service_cpu_ms = 1000 * (CpuSeconds(service.pid()) - service_cpu) / count,
                      .client_cpu_ms = 1000 * (CpuSeconds(::getpid()) - client_cpu) / count};
  service.Stop();
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("attest_load: attestation throughput and latency against aspis-service");
  std::size_t device_count = 1000;
  std::size_t concurrency = 1000;
  std::size_t attestations = 4000;
  std::vector<std::string> engines = {"sqlite", "postgresql"};
  app.add_option("--devices", device_count, "Simulated devices")->capture_default_str();
  app.add_option("--concurrency", concurrency, "Devices attesting at once")->capture_default_str();
  app.add_option("--attestations", attestations, "Attestations per engine")->capture_default_str();
  app.add_option("--engines", engines, "sqlite, postgresql")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  log::SetLevel(log::Level::kWarning);
  const std::size_t workers = std::min(concurrency, device_count);

  const auto key = Must(crypto::PrivateKey::GenerateP256(), "key");
  const Bytes message(32, 0x5a);
  const Bytes signature = Must(key.Sign(message), "sign");
  const double sign_rate = OpsPerSecond([&] { static_cast<void>(key.Sign(message)); });
  const double verify_rate =
      OpsPerSecond([&] { static_cast<void>(key.Public().Verify(message, signature)); });
  const unsigned cores = std::thread::hardware_concurrency();
  std::printf("limits (same run, %u cores):\n", cores);
  std::printf("  ECDSA P-256 sign   %9.0f /s per core\n", sign_rate);
  std::printf("  ECDSA P-256 verify %9.0f /s per core\n", verify_rate);
  const double cpu_before = CpuSeconds(::getpid());
  const double handshakes = HandshakeRate(workers, attestations);
  std::printf(
      "  bare TLS handshakes %8.0f /s (%zu at once; client and server in this process: %.2f ms "
      "CPU per handshake)\n",
      handshakes, workers,
      1000 * (CpuSeconds(::getpid()) - cpu_before) / static_cast<double>(attestations));

  testing::TempDir dir;
  std::vector<Device> devices;
  devices.reserve(device_count);
  const auto made = SteadyClock::now();
  for (std::size_t i = 0; i < device_count; ++i) {
    devices.push_back(MakeDevice(dir / ("device-" + std::to_string(i))));
  }
  std::printf("%zu simulated devices made in %.1f s\n", device_count,
              Seconds(SteadyClock::now() - made).count());

  for (const auto& engine : engines) {
    auto result = RunEngine(engine, devices, workers, attestations);
    auto& load = result.load;
    std::printf(
        "%-10s %zu devices, %zu at once: %7.0f attestations/s (%.0f%% of the handshake rate), "
        "p50 %.1f ms, p99 %.1f ms, service peak RSS %.1f MiB, CPU per attestation: service "
        "%.2f ms, devices %.2f ms; %zu failed%s%s\n",
        engine.c_str(), device_count, workers, load.Rate(), 100 * load.Rate() / handshakes,
        load.Percentile(0.50), load.Percentile(0.99),
        static_cast<double>(result.peak_rss_kib) / 1024, result.service_cpu_ms,
        result.client_cpu_ms, load.failures, load.failures > 0 ? ": " : "",
        load.first_failure.c_str());
  }
  return 0;
}
