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
#include "load_support.hpp"
#include "rot/root_of_trust.hpp"
#include "service/http/router.hpp"
#include "service/http/server.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "wire/https_client.hpp"

namespace {

using namespace aspis;
using namespace aspis::bench;
using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;
using SteadyClock = std::chrono::steady_clock;

struct EngineResult {
  Latencies load;
  long peak_rss_kib = 0;
  double service_cpu_ms = 0;  // per attestation
  double client_cpu_ms = 0;   // per attestation, the simulated devices
};

EngineResult RunEngine(const std::string& engine, std::vector<Device>& devices, std::size_t workers,
                       std::size_t total) {
  ServiceUnderLoad service(engine);
  for (const auto& d : devices) {
    service.Call("/v1/tenants/" + service.tenant + "/devices",
                 {{"device_id", Must(d.rot->GetIdentity(), "identity").device_id}});
  }
  const auto& client = service.client;
  const auto& roots = service.roots;

  // Worker w owns devices w, w + workers, ...: a root of trust serves one caller at a time.
  std::vector<std::size_t> turn(workers, 0);
  const double service_cpu = CpuSeconds(service.process.pid());
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
  EngineResult result{
      .load = std::move(load),
      .peak_rss_kib = PeakRssKib(service.process.pid()),
      .service_cpu_ms = 1000 * (CpuSeconds(service.process.pid()) - service_cpu) / count,
      .client_cpu_ms = 1000 * (CpuSeconds(::getpid()) - client_cpu) / count};
  service.process.Stop();
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
  SetProgramName("attest_load");
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
