// End to end: aspis-service and aspisd as separate processes, as an operator runs them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/tls.hpp"
#include "e2e/processes.hpp"
#include "package/measure.hpp"
#include "support/swtpm.hpp"
#include "support/tabrmd.hpp"
#include "support/temp_dir.hpp"
#include "wire/attestation.hpp"
#include "wire/check_in.hpp"
#include "wire/https_client.hpp"

namespace aspis {
namespace {

using e2e::DeviceProcess;
using e2e::ReadText;
using e2e::ServiceProcess;
using e2e::WriteText;
using json::Json;
using namespace std::chrono_literals;
using testing::TempDir;

class DeviceEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_unique<ServiceProcess>(dir_ / "service");
    const auto created = service_->CallJson("POST", "/v1/tenants", {{"name", "Contoso"}});
    tenant_ = created.value("id", "");
    ASSERT_FALSE(tenant_.empty()) << created.dump();
    // Most devices here have software roots of trust, which the tenant must accept.
    ASSERT_EQ(service_
                  ->Call("POST", "/v1/tenants/" + tenant_ + "/attestation-policy",
                         {{"allow_software_root_of_trust", true}})
                  .status,
              200);
  }

  // Registers the OS release the device's measurements describe.
  // Registers the OS release the device's measurements describe, with the digests that
  // `aspisd measure` prints (as an operator would).
  void RegisterRelease(const DeviceProcess& device, const std::string& version) {
    auto measured =
        testing::RunProcess({ASPISD_BINARY, "measure", "--os-image", (device.dir() / "os").string(),
                             "--board", (device.dir() / "board.json").string(), "--trust-bundle",
                             service_->root_ca().string(), "--output", "json"});
    ASSERT_EQ(measured.exit_code, 0) << measured.output;
    const Json components =
        json::Parse(measured.output.substr(measured.output.find('{'))).value_or(Json::object());
    ASSERT_EQ(components.size(), 4u) << measured.output;
    EXPECT_EQ(components.value("os", ""),
              crypto::ToHex(*package::MeasurePath(device.dir() / "os")));
    const auto response =
        service_->Call("POST", "/v1/os-releases",
                       {{"version", version}, {"feed", "retail"}, {"components", components}});
    ASSERT_EQ(response.status, 201) << response.body;
  }

  void Claim(const DeviceProcess& device) {
    const auto response =
        service_->Call("POST", "/v1/tenants/" + tenant_ + "/devices", {{"device_id", device.id()}});
    ASSERT_EQ(response.status, 201) << response.body;
  }

  // A claimed device running the registered release, started, and trusted.
  std::unique_ptr<DeviceProcess> TrustedDevice() {
    auto device = std::make_unique<DeviceProcess>(dir_ / "d1", *service_);
    RegisterRelease(*device, "24.10");
    Claim(*device);
    device->Start();
    device->WaitForVerdict("trusted");
    return device;
  }

  Json ServiceView(const DeviceProcess& device) {
    return service_->CallJson("GET", "/v1/tenants/" + tenant_ + "/devices/" + device.id());
  }

  TempDir dir_;
  std::unique_ptr<ServiceProcess> service_;
  std::string tenant_;
};

TEST_F(DeviceEndToEnd, DevicesAttestAndReportTheirStatus) {
  testing::Tabrmd tpm_broker({.endorsed = true});
  service_->TrustTpmManufacturer(tpm_broker.tpm().ManufacturerCaDir());
  DeviceProcess first(dir_ / "d1", *service_);
  DeviceProcess second(dir_ / "d2", *service_);
  DeviceProcess tpm(dir_ / "d3", *service_, tpm_broker.Tcti());
  RegisterRelease(first, "24.10");
  for (auto* device : {&first, &second, &tpm}) {
    Claim(*device);
    device->Start();
  }
  for (auto* device : {&first, &second, &tpm}) {
    const Json status = device->WaitForVerdict("trusted");
    EXPECT_EQ(status.value("device_id", ""), device->id());
    EXPECT_EQ(status.value("tenant", ""), tenant_);
    EXPECT_GT(status.value("certificate_expiry", 0), 0);
    ASSERT_EQ(status["measurements"].size(), 4u);
    EXPECT_EQ(status["measurements"][1].value("component", ""), "aspisd");
    EXPECT_EQ(ServiceView(*device)["attestation"].value("verdict", ""), "trusted");
    // Check-in follows attestation; the update manifest is verified and its sequence kept.
    const Json checked = device->WaitFor(
        [](const Json& s) { return s.is_object() && s.value("manifest_sequence", 0) >= 1; });
    EXPECT_GT(checked.value("last_check_in", 0), 0);
    EXPECT_EQ(checked.value("check_in_error", "?"), "");
    const Json seen = ServiceView(*device);
    EXPECT_GT(seen.value("last_check_in", 0), 0);
    EXPECT_EQ(seen.value("os_version", ""), "24.10");
  }
  EXPECT_EQ(tpm.Status().value("rot", ""), "tpm2");
  EXPECT_EQ(ServiceView(tpm).value("root_of_trust", ""), "tpm (EK issuer: CN=swtpm-localca)");
  EXPECT_EQ(ServiceView(first).value("root_of_trust", ""), "software (no hardware protection)");
  struct stat st {};
  ASSERT_EQ(::stat((first.dir() / "state/runtime.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(first.Status().value("runtime_key", ""), "file");
  EXPECT_TRUE(std::filesystem::exists(first.dir() / "state/app/certificate.pem"));
  // The TPM device's runtime key (which signed its request and its check-in handshakes) is the
  // TPM's: only the TPM-wrapped blob is on disk.
  EXPECT_EQ(tpm.Status().value("runtime_key", ""), "tpm");
  EXPECT_FALSE(std::filesystem::exists(tpm.dir() / "state/runtime.key"));
  ASSERT_EQ(::stat((tpm.dir() / "state/runtime.tpm-key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(ReadText(tpm.dir() / "state/runtime.tpm-key")
                  .starts_with("-----BEGIN TSS2 PRIVATE KEY-----"));
  for (auto* device : {&first, &second, &tpm}) EXPECT_EQ(device->Stop(), 0) << "SIGTERM";
}

TEST_F(DeviceEndToEnd, TpmWithoutResourceManagerIsRefusedAtStartInsteadOfHanging) {
  testing::Swtpm swtpm;
  DeviceProcess device(dir_ / "d", *service_, swtpm.Tcti());
  const auto result = testing::RunProcess(device.RunArgv());
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("use a resource manager"), std::string::npos) << result.output;
}

// An HTTP request over `openssl s_client` with a client certificate; returns what came back.
std::string OpensslRequest(const std::string& url, const std::filesystem::path& cert_chain,
                           const std::filesystem::path& key, const std::filesystem::path& root,
                           const std::string& body, const std::filesystem::path& scratch) {
  const std::string host_port = url.substr(std::string("https://").size());
  WriteText(scratch,
            "POST /v1/device/check-in HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  auto result = testing::RunProcess(
      {"sh", "-c",
       "openssl s_client -quiet -connect \"$1\" -cert \"$2\" -cert_chain \"$2\" -key \"$3\" "
       "-CAfile \"$4\" -verify_return_error < \"$5\"",
       "sh", host_port, cert_chain.string(), key.string(), root.string(), scratch.string()});
  return result.output;
}

TEST_F(DeviceEndToEnd, OutsideTlsClientsCheckInWithTheRuntimeCertificateButNotTheAppOne) {
  auto started = TrustedDevice();
  DeviceProcess& device = *started;
  // After the device's own first check-in, so that the one below is the last the service sees.
  device.WaitFor(
      [](const Json& s) { return s.is_object() && s.value("manifest_sequence", 0) >= 1; });
  const std::string body = Json{
      {"device_id", device.id()},
      {"os_version", "24.10"},
      {"runtime_version", "openssl"},
      {"images", Json::array()},
      {"health", "ok"}}.dump();
  const auto state = device.dir() / "state";
  const std::string runtime =
      OpensslRequest(service_->url(), state / "runtime-certificate.pem", state / "runtime.key",
                     service_->root_ca(), body, dir_ / "request.txt");
  EXPECT_NE(runtime.find("HTTP/1.1 200"), std::string::npos) << runtime;
  EXPECT_NE(runtime.find(wire::kManifestPayloadType), std::string::npos) << runtime;
  const std::string app =
      OpensslRequest(service_->url(), state / "app/certificate.pem", state / "app/key.pem",
                     service_->root_ca(), body, dir_ / "request.txt");
  EXPECT_NE(app.find("HTTP/1.1 403"), std::string::npos) << app;
  EXPECT_NE(app.find("only the device runtime certificate"), std::string::npos) << app;
  EXPECT_EQ(ServiceView(device).value("runtime_version", ""), "openssl");
  EXPECT_EQ(device.Stop(), 0);
}

TEST_F(DeviceEndToEnd, RestartWithoutRebootKeepsMeasurementsAndCertificates) {
  auto started = TrustedDevice();
  DeviceProcess& device = *started;
  const Json before = device.Status();
  ASSERT_EQ(device.Stop(), 0);
  device.Start();
  const Json after = device.WaitForVerdict("trusted");
  EXPECT_EQ(after["measurements"], before["measurements"]);
  EXPECT_EQ(after.value("certificate_expiry", 0), before.value("certificate_expiry", 0))
      << "the stored certificates are still valid: no new attestation";
  EXPECT_EQ(device.Stop(), 0);
}

TEST_F(DeviceEndToEnd, KilledDeviceRestartsFromItsStateWithoutReextending) {
  auto started = TrustedDevice();
  DeviceProcess& device = *started;
  const Json before = device.Status();
  device.Stop(SIGKILL);
  device.Start();
  const Json after = device.WaitForVerdict("trusted");
  EXPECT_EQ(after["measurements"], before["measurements"]);
  EXPECT_EQ(after.value("certificate_expiry", 0), before.value("certificate_expiry", 0));
  // The register still matches the log: a fresh attestation is trusted.
  EXPECT_EQ(device.Attest()["attestation"].value("verdict", ""), "trusted");
  EXPECT_EQ(device.Stop(), 0);
}

// The service's database is restored from a backup, so it offers manifests whose sequence the
// device has passed (signed by the genuine deployment key: a replay). Restoring the device's own
// state files from the same time does not help the replay: the sequence lives in a TPM counter.
TEST_F(DeviceEndToEnd, ReplayAttackRestoredServiceAndDeviceStateCannotLowerTheManifestSequence) {
  testing::Tabrmd tpm_broker({.endorsed = true});
  service_->TrustTpmManufacturer(tpm_broker.tpm().ManufacturerCaDir());
  DeviceProcess device(dir_ / "d", *service_, tpm_broker.Tcti());
  RegisterRelease(device, "24.10");
  Claim(device);
  device.Start();
  auto sequence = [](const Json& s) { return s.is_object() ? s.value("manifest_sequence", 0) : 0; };
  const int first = sequence(device.WaitFor([&](const Json& s) { return sequence(s) >= 1; }));
  ASSERT_EQ(device.Stop(), 0);
  ASSERT_EQ(service_->Stop(), 0);
  const auto backup = dir_ / "backup";
  std::filesystem::create_directories(backup);
  std::filesystem::copy(dir_ / "service/data", backup / "data",
                        std::filesystem::copy_options::recursive);
  std::filesystem::copy(device.dir() / "state", backup / "state",
                        std::filesystem::copy_options::recursive);
  service_->Start();
  device.Start();
  // The check-in at start and one after each of two attestations move the sequence on. (An
  // attestation is answered before the check-in that follows it.)
  device.WaitFor([&](const Json& s) { return sequence(s) >= first + 1; });
  for (int i = 0; i < 2; ++i) device.Attest();
  const int later =
      sequence(device.WaitFor([&](const Json& s) { return sequence(s) >= first + 3; }));
  ASSERT_EQ(device.Stop(), 0);
  ASSERT_EQ(service_->Stop(), 0);
  for (const auto& [from, to] : {std::pair{backup / "data", dir_ / "service/data"},
                                 std::pair{backup / "state", device.dir() / "state"}}) {
    std::filesystem::remove_all(to);
    std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  }
  service_->Start();
  device.Start();
  const Json refused = device.WaitFor(
      [](const Json& s) { return s.is_object() && !s.value("check_in_error", "").empty(); });
  EXPECT_NE(refused.value("check_in_error", "").find("replay"), std::string::npos)
      << refused.dump();
  EXPECT_EQ(sequence(refused), later) << "the counter, not the restored file, holds the sequence";
  EXPECT_EQ(device.Stop(), 0);
}

TEST_F(DeviceEndToEnd, RevokedDeviceLosesItsCertificatesAtRenewal) {
  auto started = TrustedDevice();
  DeviceProcess& device = *started;
  ASSERT_EQ(service_->Call("POST", "/v1/tenants/" + tenant_ + "/devices/" + device.id() + "/revoke")
                .status,
            200);
  const Json status = device.Attest();
  EXPECT_EQ(status["attestation"].value("verdict", ""), "untrusted") << status.dump();
  // The device hears one generic refusal; its tenant sees why.
  EXPECT_NE(status["attestation"].value("reason", "").find(wire::kAttestationRefused),
            std::string::npos);
  EXPECT_NE(ServiceView(device)["attestation"].value("reasons", "").find("revoked"),
            std::string::npos);
  EXPECT_EQ(status.value("certificate_expiry", -1), 0);
  EXPECT_FALSE(std::filesystem::exists(device.dir() / "state/runtime-certificate.pem"));
  EXPECT_EQ(device.Stop(), 0);
}

TEST_F(DeviceEndToEnd, ChangedOsImageIsRefusedAndTheOperatorSeesWhy) {
  auto started = TrustedDevice();
  DeviceProcess& device = *started;
  ASSERT_EQ(device.Stop(), 0);
  // Someone changes the OS image and the device reboots into it.
  WriteText(device.dir() / "os/bin/init", "aspis os 24.10 with a backdoor");
  WriteText(device.dir() / "boot_id", "boot-2\n");
  std::filesystem::remove(device.dir() / "state/runtime-certificate.pem");
  device.Start();
  device.WaitForVerdict("untrusted");
  const Json seen = ServiceView(device);
  EXPECT_EQ(seen["attestation"].value("verdict", ""), "untrusted");
  EXPECT_NE(seen["attestation"].value("reasons", "").find("unknown measurement: component os"),
            std::string::npos)
      << seen.dump();
  EXPECT_EQ(device.Stop(), 0);
}

TEST_F(DeviceEndToEnd, DeviceBacksOffWhileTheServiceIsDownAndComesBack) {
  auto started = TrustedDevice();
  DeviceProcess& device = *started;
  ASSERT_EQ(service_->Stop(), 0);
  const Json down = device.Attest();
  EXPECT_EQ(down["attestation"].value("verdict", ""), "unreachable") << down.dump();
  service_->Start();
  // Trusted again means an attempt after the failed one succeeded (within the same second,
  // possibly: the first retry may come at once under full jitter).
  const Json back = device.WaitForVerdict("trusted");
  EXPECT_GE(back["attestation"].value("last_attempt", 0),
            down["attestation"].value("last_attempt", 0));
  EXPECT_EQ(device.Stop(), 0);
}

}  // namespace
}  // namespace aspis
