#pragma once

// The attestation tests' fixture: aspis-service in this process over HTTPS, a tenant that accepts
// software roots of trust, an OS release, and simulated devices (software root of trust, or the
// TPM behind a TCTI).
#include <gtest/gtest.h>
#include <tss2/tss2_mu.h>

#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/tls.hpp"
#include "device/attest/attester.hpp"
#include "rot/quote.hpp"
#include "rot/root_of_trust.hpp"
#include "service/attest/attestation.hpp"
#include "service/data_dir.hpp"
#include "service/service.hpp"
#include "support/evidence.hpp"
#include "support/process.hpp"
#include "support/service_client.hpp"
#include "support/swtpm.hpp"
#include "support/temp_dir.hpp"
#include "wire/attestation.hpp"
#include "wire/errors.hpp"
#include "wire/https_client.hpp"

namespace aspis::service::attestation_test {

using json::Json;
using testing::TempDir;

inline crypto::Digest Hash(std::string_view s) { return *crypto::Sha256Of(AsBytes(s)); }

// What a release's components contain; the digests are their hashes.
using Contents = std::map<std::string, std::string>;

inline Contents ReleaseContents(const std::string& os, const std::string& aspisd) {
  return {{"os", os}, {"aspisd", aspisd}, {"board", "board mt3620-sim"}, {"trust-bundle", "root"}};
}

inline const Contents kRelease2410 = ReleaseContents("os image 24.10", "aspisd 0.1");

inline std::string OsReleaseBody(const std::string& version,
                                 const Contents& contents = kRelease2410) {
  Json components = Json::object();
  for (const auto& [name, content] : contents) components[name] = crypto::ToHex(Hash(content));
  return Json{{"version", version}, {"feed", "retail"}, {"components", components}}.dump();
}

// A device: a root of trust that measured a launch (by default, release 24.10's).
struct SimDevice {
  // The software root of trust, or the TPM behind `tcti`.
  // Measures `launch` in launch order; nullopt measures nothing.
  explicit SimDevice(std::string tcti = {}, const std::optional<Contents>& launch = kRelease2410)
      : tcti_(std::move(tcti)) {
    Open(true);
    if (!launch) return;
    for (const char* component : {"os", "aspisd", "board", "trust-bundle"}) {
      Measure(component, launch->at(component));
    }
  }

  void Open(bool create) {
    const rot::Config config{
        .backend = tcti_.empty() ? "software" : "tpm2", .state_dir = dir / "rot", .tcti = tcti_};
    auto opened = create ? rot::Initialize(config) : rot::Open(config.state_dir);
    EXPECT_TRUE(opened) << opened.error().message();
    rot = std::move(*opened);
    identity = *rot->GetIdentity();
  }

  void Measure(const std::string& component, std::string_view content) {
    EXPECT_TRUE(rot->Extend(Hash(content)));
    events.push_back({component, Hash(content)});
  }

  std::string Id() const { return identity->device_id; }

  // Evidence as aspisd builds it, with the CSRs; `sign` false leaves the signed parts empty.
  wire::Evidence Unsigned(const Bytes& nonce) const {
    wire::Evidence e;
    e.device_id = Id();
    e.identity_public_key = identity->public_key.Der();
    e.root_of_trust = tcti_.empty() ? wire::kRootOfTrustSoftware : wire::kRootOfTrustTpm;
    e.event_log = events;
    e.nonce = nonce;
    e.runtime_csr = crypto::CertificateRequest::Create(runtime_key, "runtime")->Der();
    e.app_csr = crypto::CertificateRequest::Create(app_key, "app")->Der();
    return e;
  }

  static Bytes Binding(const wire::Evidence& e) {
    const auto binding = *wire::EvidenceBinding(e.nonce, e.runtime_csr, e.app_csr);
    return Bytes(binding.begin(), binding.end());
  }

  wire::Evidence Evidence(const Bytes& nonce) const {
    wire::Evidence e = Unsigned(nonce);
    auto attestation = rot->Attest(Binding(e));
    EXPECT_TRUE(attestation) << attestation.error().message();
    e.quote = testing::ToWire(attestation->quote);
    e.boot_pcrs = std::move(attestation->boot_pcrs);
    if (attestation->register_certification) {
      e.register_certification = testing::ToWire(*attestation->register_certification);
    }
    return e;
  }

  std::string tcti_;
  TempDir dir;
  std::unique_ptr<rot::RootOfTrust> rot;
  std::optional<rot::Identity> identity;
  std::vector<wire::MeasurementEvent> events;
  crypto::PrivateKey runtime_key = *crypto::PrivateKey::GenerateP256();
  crypto::PrivateKey app_key = *crypto::PrivateKey::GenerateP256();
};

class Attestation : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceConfig config = testing::ServiceConfig(dir_.path());
    config.tpm_ca_dir = tpm_ca_dir_;
    auto service = Service::Start(config, clock_);
    ASSERT_TRUE(service) << service.error().message();
    service_ = std::move(*service);
    admin_ = service_->new_admin_token();
    auto tenant = Call("POST", "/v1/tenants", Json{{"name", "Contoso"}}.dump(), admin_);
    ASSERT_EQ(tenant.status, 201);
    tenant_ = json::Parse(tenant.body)->value("id", "");
    // The simulated devices here have software roots of trust, which a tenant must accept.
    ASSERT_EQ(Policy(R"({"allow_software_root_of_trust": true})").status, 200);
    auto release = Call("POST", "/v1/os-releases", OsReleaseBody("24.10"), admin_);
    ASSERT_EQ(release.status, 201) << release.body;
    Claim(device_);
  }

  void Claim(const SimDevice& device) { Claim(device.Id()); }
  void Claim(const std::string& id) {
    ASSERT_EQ(
        Call("POST", "/v1/tenants/" + tenant_ + "/devices", Json{{"device_id", id}}.dump(), admin_)
            .status,
        201);
  }

  wire::HttpResponse Call(const std::string& method, const std::string& target,
                          const std::string& body = {}, const std::string& token = {}) const {
    return testing::CallService(*service_, token, method, target, body);
  }

  Bytes Nonce() const {
    auto response = Call("POST", "/v1/attestation/challenge");
    EXPECT_EQ(response.status, 200);
    auto challenge = wire::ParseChallenge(response.body);
    EXPECT_TRUE(challenge);
    return challenge ? challenge->nonce : Bytes{};
  }

  wire::HttpResponse Policy(const std::string& body) const {
    return Call("POST", "/v1/tenants/" + tenant_ + "/attestation-policy", body, admin_);
  }

  wire::HttpResponse Attest(const wire::Evidence& evidence) const {
    return Call("POST", "/v1/attestation", wire::Serialize(evidence));
  }

  // The device's attestation as its tenant sees it: verdict, what it proved, and the attempts.
  Json AttestationView(const std::string& device_id) const {
    auto response = Call("GET", "/v1/tenants/" + tenant_ + "/devices/" + device_id + "/attestation",
                         {}, admin_);
    EXPECT_EQ(response.status, 200) << response.body;
    return json::Parse(response.body).value_or(Json::object());
  }

  // The device's attestation view once it logged `attempts` attempts. Unproven attempts are
  // logged in the background (attest::AttemptLog): this waits for them, for at most 10 s.
  Json AttestationViewWith(const std::string& device_id, std::size_t attempts) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    Json view = AttestationView(device_id);
    while (view["attempts"].size() < attempts && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      view = AttestationView(device_id);
    }
    return view;
  }

  // Expects the one generic refusal, and that the tenant sees `reason` for the newest attempt.
  void ExpectUntrusted(const wire::Evidence& evidence, std::string_view reason) const {
    const std::size_t before = AttestationView(evidence.device_id)["attempts"].size();
    const auto response = Attest(evidence);
    EXPECT_EQ(response.status, 403) << response.body;
    EXPECT_EQ(response.content_type, "application/problem+json");
    EXPECT_NE(response.body.find(wire::kAttestationRefused), std::string::npos) << response.body;
    // The log keeps 20 proven and 20 unproven attempts; these tests stay below that.
    ASSERT_LT(before, 20u) << "the log may be full, so a new attempt would not be seen";
    const Json view = AttestationViewWith(evidence.device_id, before + 1);
    ASSERT_GT(view["attempts"].size(), before) << view.dump();
    const std::string seen = view["attempts"][0].value("reasons", "");
    EXPECT_NE(seen.find(reason), std::string::npos) << seen;
  }

  Json DeviceRecord(const SimDevice& device) const {
    auto response = Call("GET", "/v1/tenants/" + tenant_ + "/devices/" + device.Id(), {}, admin_);
    return json::Parse(response.body).value_or(Json::object());
  }

  std::string Metrics() const { return Call("GET", "/metrics").body; }

  FakeClock clock_{std::chrono::system_clock::now()};
  TempDir dir_;
  std::filesystem::path tpm_ca_dir_;  // set by fixtures with TPM devices, before SetUp
  std::unique_ptr<Service> service_;
  std::string admin_;
  std::string tenant_;
  SimDevice device_;
};

}  // namespace aspis::service::attestation_test
