#pragma once
// What the load benchmarks share: failing loudly, closed-loop load on worker threads, the limits
// measured beside the figures (ECDSA rate, bare TLS handshakes), a process's CPU time and peak
// RSS, simulated devices with software roots of trust, and aspis-service started on 127.0.0.1
// (SQLite, or a PostgreSQL server started for it) with a tenant that accepts such devices.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
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
#include "rot/root_of_trust.hpp"
#include "service/http/router.hpp"
#include "service/http/server.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "wire/attestation.hpp"
#include "wire/https_client.hpp"

namespace aspis::bench {

using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;
using SteadyClock = std::chrono::steady_clock;

inline std::string& ProgramName() {
  static std::string name = "bench";
  return name;
}
inline void SetProgramName(std::string name) { ProgramName() = std::move(name); }

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", ProgramName().c_str(), what.c_str());
  std::exit(1);
}

template <typename T>
T Must(Expected<T> value, const std::string& what) {
  if (!value) Die(what + ": " + value.error().message());
  return std::move(*value);
}

inline crypto::Digest Hash(std::string_view s) { return *crypto::Sha256Of(AsBytes(s)); }

struct Device {
  std::unique_ptr<rot::RootOfTrust> rot;
  std::vector<wire::MeasurementEvent> events;
  crypto::PrivateKey runtime_key;
  crypto::PrivateKey app_key;
};

inline Device MakeDevice(const std::filesystem::path& dir) {
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
inline Latencies RunLoad(std::size_t workers, std::size_t total,
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

inline double OpsPerSecond(const std::function<void()>& op) {
  std::size_t count = 0;
  const auto start = SteadyClock::now();
  while (SteadyClock::now() - start < 1s) {
    for (int i = 0; i < 50; ++i) op();
    count += 50;
  }
  return static_cast<double>(count) / Seconds(SteadyClock::now() - start).count();
}

// A TLS server that answers nothing but the handshake: the floor under every attestation.
inline double HandshakeRate(std::size_t workers, std::size_t total) {
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
inline double CpuSeconds(int pid) {
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

inline long PeakRssKib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmHWM:")) return std::stol(line.substr(6));
  }
  return -1;
}

// aspis-service on a free port of 127.0.0.1, on SQLite in a temporary directory or on a PostgreSQL
// server started for it, with a tenant whose devices may have software roots of trust and an OS
// release (24.10) whose reference digests are those of MakeDevice's launch.
struct ServiceUnderLoad {
  explicit ServiceUnderLoad(const std::string& engine)
      : postgres(engine == "postgresql" ? std::make_unique<testing::PostgresServer>() : nullptr),
        port(testing::FreePort()),
        process(Argv(), std::nullopt, SIGTERM, (dir / "service.log").string()),
        roots(StartedRoots()),
        client({"127.0.0.1", static_cast<std::uint16_t>(port)},
               Must(crypto::tls::ClientContext(roots), "tls")),
        connection(Must(client.Connect(), "connect")) {
    const std::string token(
        AsString(Must(file::Read(dir / "admin-token", file::kSmallFileLimit), "admin token")));
    admin = token.substr(0, token.find('\n'));
    tenant = json::Parse(Call("/v1/tenants", {{"name", "bench"}}).body)->value("id", "");
    Call("/v1/tenants/" + tenant + "/attestation-policy", {{"allow_software_root_of_trust", true}},
         200);
    json::Json components = json::Json::object();
    for (const std::string_view component : wire::kLaunchComponents) {
      components[std::string(component)] = crypto::ToHex(Hash(component));
    }
    Call("/v1/os-releases", {{"version", "24.10"}, {"feed", "retail"}, {"components", components}});
  }

  // POSTs `body` to `target` as the platform administrator, on one keep-alive connection; dies
  // unless the answer is `status`.
  wire::HttpResponse Call(const std::string& target, const json::Json& body, int status = 201) {
    return Send("POST", target, body.dump(), status);
  }
  wire::HttpResponse Send(const std::string& method, const std::string& target,
                          std::string_view body, int status,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("Authorization", "Bearer " + admin);
    auto response = Must(connection.Send(method, target, body, headers), target);
    if (response.status != status) {
      Die(method + " " + target + ": HTTP " + std::to_string(response.status) + " " +
          response.body);
    }
    return response;
  }

  std::string Url() const { return "https://127.0.0.1:" + std::to_string(port); }

  testing::TempDir dir;
  std::unique_ptr<testing::PostgresServer> postgres;
  int port;
  testing::BackgroundProcess process;
  std::vector<crypto::Certificate> roots;
  wire::HttpsClient client;
  wire::HttpsConnection connection;
  std::string admin;
  std::string tenant;

 private:
  std::vector<std::string> Argv() const {
    std::vector<std::string> argv = {
        ASPIS_SERVICE_BINARY, "--data", (dir / "data").string(), "--master-key",
        (dir / "master.key").string(), "--admin-token-file", (dir / "admin-token").string(),
        "--listen", "127.0.0.1:" + std::to_string(port),
        // Every simulated device connects from 127.0.0.1.
        "--client-rate", "0", "--device-rate", "0", "--max-connections", "100000"};
    if (postgres) argv.insert(argv.end(), {"--db", postgres->Url()});
    return argv;
  }
  std::vector<crypto::Certificate> StartedRoots() const {
    if (!testing::WaitForPort(port)) Die("aspis-service did not start; see its log");
    return {Must(crypto::Certificate::FromPem(AsString(
                     Must(file::Read(dir / "data/root-ca.pem", file::kSmallFileLimit), "root CA"))),
                 "root CA")};
  }
};

}  // namespace aspis::bench
