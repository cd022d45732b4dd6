// Rollout load: the service's CPU to roll an app update out to N simulated devices (software roots
// of trust, in this process) in three stages (10 %, 50 %, 100 %), as aspisd does it: every device
// attests, then checks in over mutual TLS in rounds, each check-in on a new connection reporting
// its targets' states; a device told to fetch the app downloads it (in 1 MiB ranges), checks its
// SHA-256 and reports it installed at its next check-in, until the deployment is complete.
// Reports the rounds, check-ins and downloads it took, and the service's CPU per check-in and in
// all, beside the limit measured in the same run: what one check-in cannot cost less than, a TLS
// handshake (from the bare handshake rate) plus one ECDSA signature (the update manifest's) and
// one verification (the device's certificate).
//   build/release/bench/rollout_load --devices 100
#include <CLI/CLI.hpp>

#include "crypto/dsse.hpp"
#include "crypto/encoding.hpp"
#include "device/attest/attester.hpp"
#include "load_support.hpp"
#include "package/archive.hpp"
#include "package/package.hpp"
#include "package/publisher_keys.hpp"
#include "wire/check_in.hpp"
#include "wire/device_api.hpp"

namespace {

using namespace aspis;
using namespace aspis::bench;
namespace fs = std::filesystem;

constexpr char kComponent[] = "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b";

// An app package of `size` random bytes, signed by `publisher`; its path.
fs::path MakeApp(const fs::path& dir, const crypto::PrivateKey& publisher, std::size_t size) {
  const fs::path tree = dir / "app";
  fs::create_directories(tree / "bin");
  std::ofstream(tree / "bin/app") << "#!/bin/sh\necho blink\n";
  fs::permissions(tree / "bin/app", fs::perms::owner_all);
  if (auto ok =
          file::WriteDurably(tree / "data.bin", Must(crypto::RandomBytes(size), "data"), 0644);
      !ok) {
    Die(ok.error().message());
  }
  const auto packed = Must(package::PackDirectory(tree, dir / "payload"), "pack");
  package::Manifest m;
  m.image_id = Must(crypto::RandomUuid(), "uuid");
  m.component_id = kComponent;
  m.name = "blink";
  m.kind = package::Kind::kApp;
  m.version = "1.1";
  m.security_version = 1;
  m.payload.compression = package::Compression::kZstd;
  m.payload.unpacked_size = packed.unpacked_size;
  m.app_manifest = std::string(R"({"Name": "blink", "ComponentId": ")") + kComponent + "\"}";
  Must(package::Write(m, dir / "payload", std::span(&publisher, 1), dir / "app.aspkg"), "write");
  return dir / "app.aspkg";
}

// A device that attested: its mutual-TLS client and what it reports at check-in.
struct Attested {
  std::string id;
  std::unique_ptr<wire::HttpsClient> client;
  std::vector<wire::TargetStatus> statuses;
  bool installed = false;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli("rollout_load: service CPU to roll an app update out in stages");
  std::size_t device_count = 100;
  std::size_t workers = 8;
  std::size_t app_size = std::size_t{512} << 10;
  std::string engine = "sqlite";
  cli.add_option("--devices", device_count, "Simulated devices")->capture_default_str();
  cli.add_option("--workers", workers, "Devices checking in at once")->capture_default_str();
  cli.add_option("--app-bytes", app_size, "Size of the app's data")->capture_default_str();
  cli.add_option("--engine", engine, "sqlite or postgresql")->capture_default_str();
  CLI11_PARSE(cli, argc, argv);
  log::SetLevel(log::Level::kWarning);
  SetProgramName("rollout_load");

  const auto key = Must(crypto::PrivateKey::GenerateP256(), "key");
  const Bytes message(32, 0x5a);
  const Bytes signature = Must(key.Sign(message), "sign");
  const double sign_rate = OpsPerSecond([&] { static_cast<void>(key.Sign(message)); });
  const double verify_rate =
      OpsPerSecond([&] { static_cast<void>(key.Public().Verify(message, signature)); });
  const double cpu_before = CpuSeconds(::getpid());
  constexpr std::size_t kHandshakes = 2000;
  const double handshake_rate = HandshakeRate(workers, kHandshakes);
  const double handshake_cpu_ms =
      1000 * (CpuSeconds(::getpid()) - cpu_before) / static_cast<double>(kHandshakes);
  // Client and server shared that CPU; the server's half is the floor's share.
  const double floor_ms = handshake_cpu_ms / 2 + 1000 / sign_rate + 1000 / verify_rate;

  ServiceUnderLoad service(engine);
  const std::string tenant_path = "/v1/tenants/" + service.tenant;
  testing::TempDir dir;

  // The tenant's publisher keys and the app.
  const auto root = Must(crypto::PrivateKey::GenerateP256(), "key");
  const auto publisher = Must(crypto::PrivateKey::GenerateP256(), "key");
  package::PublisherKeySet set;
  set.tenant = service.tenant;
  set.version = 1;
  set.expires = UnixSeconds(std::chrono::system_clock::now() + std::chrono::hours(24 * 30));
  set.root.keys = {root.Public()};
  set.publishers.keys = {publisher.Public()};
  service.Send("PUT", tenant_path + "/publisher-key-set",
               crypto::dsse::Serialize(Must(package::SignKeySet(set, std::span(&root, 1)), "set")),
               200);
  const Bytes app = Must(file::Read(MakeApp(dir.path(), publisher, app_size), 64 << 20), "app");
  const std::string upload =
      tenant_path + "/image-uploads/" +
      json::Parse(service.Call(tenant_path + "/image-uploads", json::Json::object()).body)
          ->value("id", "");
  for (std::size_t at = 0; at < app.size(); at += std::size_t{1} << 20) {
    const std::size_t n = std::min(app.size() - at, std::size_t{1} << 20);
    service.Send("POST", upload + "/parts", AsString(ByteView(app).subspan(at, n)), 200,
                 {{"Upload-Offset", std::to_string(at)}});
  }
  const auto image =
      json::Parse(service.Call(upload + "/complete", json::Json::object()).body)->value("id", "");
  service.Call(tenant_path + "/products", {{"name", "Coffee"}});
  std::string group;
  const json::Json groups =
      *json::Parse(service.Send("GET", tenant_path + "/device-groups", "", 200).body);
  for (const auto& g : groups) {
    if (g.value("name", "") == "Field Test") group = g.value("id", "");
  }

  // The devices: made, claimed, put in the group, attested.
  std::vector<Device> devices;
  std::vector<Attested> fleet(device_count);
  for (std::size_t i = 0; i < device_count; ++i) {
    devices.push_back(MakeDevice(dir / ("device-" + std::to_string(i))));
    fleet[i].id = Must(devices[i].rot->GetIdentity(), "identity").device_id;
    service.Call(tenant_path + "/devices", {{"device_id", fleet[i].id}});
    service.Call(tenant_path + "/devices/" + fleet[i].id + "/device-group",
                 {{"device_group_id", group}}, 200);
  }
  std::atomic<std::size_t> next{0};
  auto attested = RunLoad(workers, device_count, [&](std::size_t) -> std::optional<std::string> {
    const std::size_t i = next++;
    Device& d = devices[i];
    auto certificates =
        device::attest::Attest(service.client, *d.rot, d.events, d.runtime_key, d.app_key,
                               service.roots, std::chrono::system_clock::now());
    if (!certificates) return certificates.error().message();
    auto chain = crypto::Certificate::ChainFromPem(certificates->result.runtime_certificate_pem +
                                                   certificates->result.ca_chain_pem);
    if (!chain) return chain.error().message();
    auto tls = crypto::tls::ClientContext(service.roots, *chain, &d.runtime_key);
    if (!tls) return tls.error().message();
    fleet[i].client = std::make_unique<wire::HttpsClient>(
        wire::Endpoint{"127.0.0.1", static_cast<std::uint16_t>(service.port)}, std::move(*tls));
    return std::nullopt;
  });
  if (attested.failures > 0) Die("attestation failed: " + attested.first_failure);

  // The rollout, measured from its creation to its completion.
  const double service_cpu = CpuSeconds(service.process.pid());
  const auto started = SteadyClock::now();
  const std::string deployment =
      json::Parse(service
                      .Call(tenant_path + "/device-groups/" + group + "/deployments",
                            {{"images", {image}},
                             {"rollout", {{"stages", {10, 50, 100}}, {"failure_threshold", 10}}}})
                      .body)
          ->value("id", "");
  std::atomic<std::size_t> check_ins{0};
  std::atomic<std::size_t> downloads{0};
  std::size_t rounds = 0;
  std::string state;
  while (state != "complete" && rounds < 20) {
    ++rounds;
    next = 0;
    auto round = RunLoad(workers, device_count, [&](std::size_t) -> std::optional<std::string> {
      Attested& d = fleet[next++];
      const wire::CheckIn report{.device_id = d.id,
                                 .os_version = "24.10",
                                 .runtime_version = "0.1.0",
                                 .targets = d.statuses};
      auto answer = wire::PostCheckIn(*d.client, report, nullptr);
      ++check_ins;
      if (!answer) return answer.error().message();
      auto envelope = crypto::dsse::Parse(answer->manifest_envelope);
      if (!envelope) return envelope.error().message();
      auto manifest = wire::ParseUpdateManifest(AsString(envelope->payload));
      if (!manifest) return manifest.error().message();
      for (const auto& t : manifest->targets) {
        if (d.installed) continue;
        auto fetched = d.client->Connect();
        if (!fetched) return fetched.error().message();
        std::string bytes;
        while (bytes.size() < t.size) {
          const std::uint64_t last = std::min<std::uint64_t>(bytes.size() + (1 << 20), t.size) - 1;
          auto part = fetched->Send(
              "GET", t.url, {},
              {{"Range", "bytes=" + std::to_string(bytes.size()) + "-" + std::to_string(last)}});
          if (!part || part->status != 206) return "the download failed";
          bytes += part->body;
        }
        ++downloads;
        if (crypto::ToHex(*crypto::Sha256Of(AsBytes(bytes))) != t.sha256) return "wrong bytes";
        d.installed = true;
        d.statuses = {{t.image_id, std::string(wire::kInstalled), ""}};
      }
      return std::nullopt;
    });
    if (round.failures > 0) Die("a check-in failed: " + round.first_failure);
    state =
        json::Parse(service.Send("GET", tenant_path + "/deployments/" + deployment, "", 200).body)
            ->value("state", "");
  }
  const double seconds = Seconds(SteadyClock::now() - started).count();
  const double cpu = CpuSeconds(service.process.pid()) - service_cpu;
  if (state != "complete") Die("the rollout did not complete in 20 rounds: " + state);
  std::printf(
      "limits (same run): ECDSA P-256 sign %.0f/s, verify %.0f/s per core; bare TLS "
      "handshakes %.0f/s (%.2f ms CPU, client and server)\n",
      sign_rate, verify_rate, handshake_rate, handshake_cpu_ms);
  std::printf(
      "%s, %zu devices, app of %zu bytes (package %zu): rollout complete in %zu rounds, %.1f s; "
      "%zu check-ins, %zu downloads; service CPU %.2f s in all, %.2f ms per check-in (limit "
      "%.2f ms: half a handshake, a signature, a verification), peak RSS %.1f MiB\n",
      engine.c_str(), device_count, app_size, app.size(), rounds, seconds, check_ins.load(),
      downloads.load(), cpu, 1000 * cpu / static_cast<double>(check_ins.load()), floor_ms,
      static_cast<double>(PeakRssKib(service.process.pid())) / 1024);
  service.process.Stop();
  return 0;
}
