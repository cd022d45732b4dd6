// Attestation end to end: simulated devices (software root of trust, and the TPM through swtpm)
// against aspis-service over HTTPS. Each attack on the protocol has a test named after it; the
// attester only ever hears one generic refusal, so each asserts the reason the tenant sees.
#include <gtest/gtest.h>
#include <tss2/tss2_mu.h>

#include <fstream>
#include <functional>

#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/tls.hpp"
#include "device/attest/attester.hpp"
#include "rot/quote.hpp"
#include "rot/root_of_trust.hpp"
#include "service/attest/attestation.hpp"
#include "service/service.hpp"
#include "support/evidence.hpp"
#include "support/process.hpp"
#include "support/service_client.hpp"
#include "support/swtpm.hpp"
#include "support/temp_dir.hpp"
#include "wire/attestation.hpp"
#include "wire/errors.hpp"
#include "wire/https_client.hpp"

namespace aspis::service {
namespace {

using json::Json;
using namespace std::chrono_literals;
using testing::TempDir;

crypto::Digest Hash(std::string_view s) { return *crypto::Sha256Of(AsBytes(s)); }

// What a release's components contain; the digests are their hashes.
using Contents = std::map<std::string, std::string>;

Contents ReleaseContents(const std::string& os, const std::string& aspisd) {
  return {{"os", os}, {"aspisd", aspisd}, {"board", "board mt3620-sim"}, {"trust-bundle", "root"}};
}

const Contents kRelease2410 = ReleaseContents("os image 24.10", "aspisd 0.1");

std::string OsReleaseBody(const std::string& version, const Contents& contents = kRelease2410) {
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
    const rot::Config config{.backend = tcti_.empty() ? "software" : "tpm2",
                             .state_dir = dir / "rot",
                             .tcti = tcti_};
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
    auto service = Service::Start({.data_dir = dir_ / "data",
                                   .listen = "127.0.0.1:0",
                                   .master_key_file = dir_ / "master.key",
                                   .threads = 2,
                                   .tpm_ca_dir = tpm_ca_dir_},
                                  clock_);
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
    auto response =
        Call("GET", "/v1/tenants/" + tenant_ + "/devices/" + device_id + "/attestation", {}, admin_);
    EXPECT_EQ(response.status, 200) << response.body;
    return json::Parse(response.body).value_or(Json::object());
  }

  // Expects the one generic refusal, and that the tenant sees `reason` for the newest attempt.
  void ExpectUntrusted(const wire::Evidence& evidence, std::string_view reason) const {
    const auto response = Attest(evidence);
    EXPECT_EQ(response.status, 403) << response.body;
    EXPECT_EQ(response.content_type, "application/problem+json");
    EXPECT_NE(response.body.find(wire::kAttestationRefused), std::string::npos) << response.body;
    const Json view = AttestationView(evidence.device_id);
    ASSERT_FALSE(view["attempts"].empty()) << view.dump();
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

TEST_F(Attestation, TrustedDeviceGetsRuntimeAndAppCertificatesFromItsTenantCa) {
  const auto response = Attest(device_.Evidence(Nonce()));
  ASSERT_EQ(response.status, 200) << response.body;
  auto result = wire::ParseAttestationResult(response.body);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->verdict, "trusted");
  auto runtime = crypto::Certificate::FromPem(result->runtime_certificate_pem);
  auto app = crypto::Certificate::FromPem(result->app_certificate_pem);
  ASSERT_TRUE(runtime && app);
  EXPECT_EQ(runtime->SubjectCommonName(), device_.Id());
  EXPECT_EQ(runtime->SubjectPublicKey(), device_.runtime_key.Public());
  EXPECT_EQ(app->SubjectPublicKey(), device_.app_key.Public());
  EXPECT_EQ(runtime->NotAfter() - runtime->NotBefore(), 24h);
  EXPECT_EQ(runtime->SanUris(),
            std::vector<std::string>{"urn:aspis:tenant:" + tenant_ + ":device:" + device_.Id()});
  EXPECT_EQ(runtime->PolicyOids(), std::vector<std::string>{wire::kRuntimeCertificatePolicy});
  EXPECT_EQ(app->PolicyOids(), std::vector<std::string>{wire::kAppCertificatePolicy});

  // An outside verifier accepts the certificate against the downloaded tenant chain.
  const auto chain = Call("GET", "/v1/tenants/" + tenant_ + "/ca-certificate", {}, admin_);
  auto certs = crypto::Certificate::ChainFromPem(chain.body);
  ASSERT_TRUE(certs);
  std::ofstream(dir_ / "tenant.pem") << *(*certs)[0].ToPem();
  std::ofstream(dir_ / "root.pem") << *(*certs)[1].ToPem();
  std::ofstream(dir_ / "runtime.pem") << result->runtime_certificate_pem;
  auto verified = testing::RunProcess(
      {"openssl", "verify", "-purpose", "sslclient", "-CAfile", (dir_ / "root.pem").string(),
       "-untrusted", (dir_ / "tenant.pem").string(), (dir_ / "runtime.pem").string()});
  EXPECT_EQ(verified.exit_code, 0) << verified.output;

  const Json record = DeviceRecord(device_);
  EXPECT_EQ(record["attestation"]["verdict"], "trusted");
  EXPECT_EQ(record["attestation"]["certificate_expiry"],
            std::chrono::duration_cast<std::chrono::seconds>(runtime->NotAfter().time_since_epoch())
                .count());
  EXPECT_EQ(record["root_of_trust"], "software (no hardware protection)");
  EXPECT_EQ(record["os_release"], "24.10");
  EXPECT_NE(Metrics().find("aspis_attestations_total{verdict=\"trusted\"} 1"), std::string::npos);
}

TEST_F(Attestation, DeviceAttesterGetsCertificatesForItsOwnKeysOnOneConnection) {
  const std::vector<crypto::Certificate> roots{service_->root_ca()};
  wire::HttpsClient client({"127.0.0.1", service_->port()}, *crypto::tls::ClientContext(roots));
  auto attested = device::attest::Attest(client, *device_.rot, device_.events, device_.runtime_key,
                                         device_.app_key, roots, clock_.Now());
  ASSERT_TRUE(attested) << attested.error().message();
  EXPECT_EQ(attested->runtime.SubjectPublicKey(), device_.runtime_key.Public());
  EXPECT_EQ(attested->app.SubjectPublicKey(), device_.app_key.Public());
  EXPECT_EQ(attested->runtime.SubjectCommonName(), device_.Id());

  device_.Measure("app:tampered", "an app nobody deployed");
  auto refused = device::attest::Attest(client, *device_.rot, device_.events, device_.runtime_key,
                                        device_.app_key, roots, clock_.Now());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), wire::WireErrc::kRefused);
  EXPECT_NE(refused.error().message().find(wire::kAttestationRefused), std::string::npos)
      << refused.error().message();
}

TEST_F(Attestation, DeviceAttesterPinsThePlatformRoot) {
  const auto other_key = *crypto::PrivateKey::GenerateP256();
  const auto other_root = *crypto::CreateSelfSigned(other_key, {.common_name = "Other Root",
                                                                .not_before = clock_.Now() - 1h,
                                                                .lifetime = 48h,
                                                                .is_ca = true});
  const std::vector<crypto::Certificate> roots{other_root};
  wire::HttpsClient client({"127.0.0.1", service_->port()}, *crypto::tls::ClientContext(roots));
  auto refused = device::attest::Attest(client, *device_.rot, device_.events, device_.runtime_key,
                                        device_.app_key, roots, clock_.Now());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), wire::WireErrc::kTls);
}

TEST_F(Attestation, CertificateLifetimeIsConfigurable) {
  TempDir other_dir;
  auto short_lived = Service::Start({.data_dir = other_dir / "data",
                                     .listen = "127.0.0.1:0",
                                     .master_key_file = other_dir / "master.key",
                                     .threads = 1,
                                     .certificate_lifetime = 2h},
                                    clock_);
  ASSERT_TRUE(short_lived) << short_lived.error().message();
  const std::string admin = (*short_lived)->new_admin_token();
  auto call = [&](const std::string& method, const std::string& target, const std::string& body,
                  const std::string& token) {
    return testing::CallService(**short_lived, token, method, target, body);
  };
  const auto tenant =
      json::Parse(call("POST", "/v1/tenants", R"({"name":"t"})", admin).body)->value("id", "");
  ASSERT_EQ(call("POST", "/v1/os-releases", OsReleaseBody("1"), admin).status, 201);
  ASSERT_EQ(call("POST", "/v1/tenants/" + tenant + "/attestation-policy",
                 R"({"allow_software_root_of_trust": true})", admin)
                .status,
            200);
  ASSERT_EQ(call("POST", "/v1/tenants/" + tenant + "/devices",
                 Json{{"device_id", device_.Id()}}.dump(), admin)
                .status,
            201);
  const auto challenge =
      wire::ParseChallenge(call("POST", "/v1/attestation/challenge", "", "").body);
  ASSERT_TRUE(challenge);
  const auto response =
      call("POST", "/v1/attestation", wire::Serialize(device_.Evidence(challenge->nonce)), "");
  ASSERT_EQ(response.status, 200) << response.body;
  const auto runtime = crypto::Certificate::FromPem(
      wire::ParseAttestationResult(response.body)->runtime_certificate_pem);
  ASSERT_TRUE(runtime);
  EXPECT_EQ(runtime->NotAfter() - runtime->NotBefore(), 2h);
}

// Calls a device route with a client certificate (and its key).
Expected<wire::HttpResponse> DeviceCall(const Service& service, const crypto::PrivateKey& key,
                                        const std::string& certificate_pem) {
  const std::vector<crypto::Certificate> roots{service.root_ca()};
  std::vector<crypto::Certificate> chain;
  if (auto parsed = crypto::Certificate::ChainFromPem(certificate_pem)) chain = *parsed;
  auto tls = crypto::tls::ClientContext(roots, chain, chain.empty() ? nullptr : &key);
  if (!tls) return std::unexpected(tls.error());
  wire::HttpsClient client({"127.0.0.1", service.port()}, *tls);
  return client.Send("GET", "/v1/device/status");
}

TEST_F(Attestation, DeviceRoutesOpenOnlyToTheRuntimeCertificate) {
  const auto response = Attest(device_.Evidence(Nonce()));
  ASSERT_EQ(response.status, 200);
  const auto result = *wire::ParseAttestationResult(response.body);
  const std::string chain = result.ca_chain_pem;

  auto runtime = DeviceCall(*service_, device_.runtime_key, result.runtime_certificate_pem + chain);
  ASSERT_TRUE(runtime) << runtime.error().message();
  EXPECT_EQ(runtime->status, 200) << runtime->body;
  EXPECT_EQ(json::Parse(runtime->body)->value("id", ""), device_.Id());

  // An app holding the app certificate cannot act as the runtime.
  auto app = DeviceCall(*service_, device_.app_key, result.app_certificate_pem + chain);
  ASSERT_TRUE(app) << app.error().message();
  EXPECT_EQ(app->status, 403);
  EXPECT_NE(app->body.find("only the device runtime certificate"), std::string::npos);

  auto anonymous = DeviceCall(*service_, device_.runtime_key, "");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 403);

  ASSERT_EQ(
      Call("POST", "/v1/tenants/" + tenant_ + "/devices/" + device_.Id() + "/revoke", {}, admin_)
          .status,
      200);
  auto revoked = DeviceCall(*service_, device_.runtime_key, result.runtime_certificate_pem + chain);
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->status, 403);
  EXPECT_NE(revoked->body.find("revoked"), std::string::npos);
}

// A relying party (a broker) checks device certificates against the tenant CA's CRL: a device
// revoked a moment ago is refused there, long before its 24-hour certificate would expire.
TEST_F(Attestation, RevokedDevicesCertificatesAreInTheCrlAtOnce) {
  SimDevice other;
  Claim(other);
  const auto revoked_cert = *wire::ParseAttestationResult(Attest(device_.Evidence(Nonce())).body);
  const auto kept_cert = *wire::ParseAttestationResult(Attest(other.Evidence(Nonce())).body);
  const auto chain =
      *crypto::Certificate::ChainFromPem(
          Call("GET", "/v1/tenants/" + tenant_ + "/ca-certificate", {}, admin_).body);
  std::ofstream(dir_ / "tenant.pem") << *chain[0].ToPem();
  std::ofstream(dir_ / "root.pem") << *chain[1].ToPem();
  std::ofstream(dir_ / "revoked.pem") << revoked_cert.runtime_certificate_pem;
  std::ofstream(dir_ / "kept.pem") << kept_cert.runtime_certificate_pem;
  auto verify = [&](const std::string& leaf) {
    const auto crl = Call("GET", "/v1/tenants/" + tenant_ + "/crl", {}, admin_);
    EXPECT_EQ(crl.status, 200) << crl.body;
    std::ofstream(dir_ / "crl.pem") << crl.body;
    return testing::RunProcess({"openssl", "verify", "-crl_check", "-CAfile",
                                (dir_ / "root.pem").string(), "-untrusted",
                                (dir_ / "tenant.pem").string(), "-CRLfile",
                                (dir_ / "crl.pem").string(), (dir_ / leaf).string()});
  };
  EXPECT_EQ(verify("revoked.pem").exit_code, 0) << "not revoked yet";
  ASSERT_EQ(
      Call("POST", "/v1/tenants/" + tenant_ + "/devices/" + device_.Id() + "/revoke", {}, admin_)
          .status,
      200);
  const auto refused = verify("revoked.pem");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("certificate revoked"), std::string::npos) << refused.output;
  EXPECT_EQ(verify("kept.pem").exit_code, 0) << "the other device's certificate";
  // Each CRL carries the next number.
  auto crl_text = [&] {
    std::ofstream(dir_ / "crl.pem") << Call("GET", "/v1/tenants/" + tenant_ + "/crl", {}, admin_).body;
    return testing::RunProcess(
               {"openssl", "crl", "-in", (dir_ / "crl.pem").string(), "-noout", "-crlnumber"})
        .output;
  };
  EXPECT_NE(crl_text(), crl_text());
}

TEST_F(Attestation, CertificateFromAForeignCaIsRefusedOnDeviceRoutes) {
  const auto ca_key = *crypto::PrivateKey::GenerateP256();
  const auto now = std::chrono::system_clock::now();
  const auto ca = *crypto::CreateSelfSigned(
      ca_key, {.common_name = "Rogue CA", .not_before = now - 1h, .lifetime = 48h, .is_ca = true});
  const auto key = *crypto::PrivateKey::GenerateP256();
  const auto forged =
      *crypto::Issue(ca, ca_key, key.Public(),
                     {.common_name = device_.Id(),
                      .not_before = now - 1h,
                      .lifetime = 24h,
                      .client_auth = true,
                      .san_uris = {"urn:aspis:tenant:" + tenant_ + ":device:" + device_.Id()},
                      .policy_oids = {wire::kRuntimeCertificatePolicy}});
  auto response = DeviceCall(*service_, key, *forged.ToPem() + *ca.ToPem());
  // Refused in the TLS handshake, or at the latest by the route.
  if (response) {
    EXPECT_EQ(response->status, 403);
  } else {
    EXPECT_EQ(response.error(), wire::WireErrc::kTls) << response.error().message();
  }
}

TEST_F(Attestation, ReplayAttackReusedNonceIsRefusedAndKeepsTheVerdict) {
  const auto evidence = device_.Evidence(Nonce());
  ASSERT_EQ(Attest(evidence).status, 200);
  ExpectUntrusted(evidence, "used already");
  EXPECT_EQ(DeviceRecord(device_)["attestation"]["verdict"], "trusted");
}

TEST_F(Attestation, StaleNonceIsRefused) {
  const Bytes nonce = Nonce();
  clock_.Advance(6min);
  ExpectUntrusted(device_.Evidence(nonce), "expired");
  clock_.Advance(-6min);
  EXPECT_EQ(Attest(device_.Evidence(nonce)).status, 200) << "the same nonce while fresh";
}

TEST_F(Attestation, ForgedNonceIsRefused) {
  Bytes nonce = Nonce();
  nonce[10] ^= 1;
  ExpectUntrusted(device_.Evidence(nonce), "not issued by this service");
  ExpectUntrusted(device_.Evidence(Bytes(56, 7)), "not issued by this service");
}

// The nonce inside the signed structure is what is compared, not the one beside it.
TEST_F(Attestation, ReplayAttackQuoteFromAnotherSessionIsRefused) {
  const auto first_session = device_.Evidence(Nonce());
  auto replayed = first_session;
  replayed.nonce = Nonce();  // fresh and genuine, but not the one the quote covers
  ExpectUntrusted(replayed, "quote rejected: quote qualifying data does not match the challenge");
  EXPECT_EQ(Attest(first_session).status, 200);
}

TEST_F(Attestation, EventLogThatDoesNotReplayToTheQuoteIsUntrusted) {
  auto evidence = device_.Evidence(Nonce());
  std::swap(evidence.event_log[2], evidence.event_log[3]);
  ExpectUntrusted(evidence, "quoted PCR values differ");
}

TEST_F(Attestation, UnknownMeasurementIsUntrustedAndTheOperatorSeesWhy) {
  SimDevice tampered({}, ReleaseContents("a tampered os image", "aspisd 0.1"));
  Claim(tampered);
  ExpectUntrusted(tampered.Evidence(Nonce()), "unknown measurement: component os");
  const Json record = DeviceRecord(tampered);
  EXPECT_EQ(record["attestation"]["verdict"], "untrusted");
  EXPECT_NE(record["attestation"]["reasons"].get<std::string>().find("component os"),
            std::string::npos);
}

TEST_F(Attestation, MixAndMatchAttackComponentsOfTwoReleasesAreUntrusted) {
  // 24.11 fixes aspisd; a device runs the new OS beside the old, vulnerable aspisd.
  const Contents fixed = ReleaseContents("os image 24.11", "aspisd 0.2");
  ASSERT_EQ(Call("POST", "/v1/os-releases", OsReleaseBody("24.11", fixed), admin_).status, 201);
  SimDevice mixed({}, ReleaseContents("os image 24.11", "aspisd 0.1"));
  Claim(mixed);
  ExpectUntrusted(mixed.Evidence(Nonce()), "component aspisd is from release 24.10, os from 24.11");
  SimDevice current({}, fixed);
  Claim(current);
  EXPECT_EQ(Attest(current.Evidence(Nonce())).status, 200);
}

TEST_F(Attestation, EmptyLaunchOverAnUnextendedRegisterIsUntrusted) {
  SimDevice empty({}, std::nullopt);
  Claim(empty);
  ExpectUntrusted(empty.Evidence(Nonce()), "not a complete launch: component os was not measured");
}

TEST_F(Attestation, LaunchOutOfOrderOrWithAComponentTwiceIsUntrusted) {
  // Same digests, but aspisd extended before the OS it should have been launched by.
  SimDevice swapped({}, std::nullopt);
  for (const char* c : {"aspisd", "os", "board", "trust-bundle"}) {
    swapped.Measure(c, kRelease2410.at(c));
  }
  Claim(swapped);
  ExpectUntrusted(swapped.Evidence(Nonce()), "component os must be measured at position 1");
  SimDevice twice;
  twice.Measure("aspisd", kRelease2410.at("aspisd"));
  Claim(twice);
  ExpectUntrusted(twice.Evidence(Nonce()), "component aspisd was measured more than once");
}

TEST_F(Attestation, RetiredOsReleaseIsUntrustedAndTheOperatorSeesWhy) {
  ASSERT_EQ(Attest(device_.Evidence(Nonce())).status, 200);
  const auto retired = Call("POST", "/v1/os-releases/24.10/retire",
                            Json{{"reason", "CVE-2026-0001 in aspisd"}}.dump(), admin_);
  ASSERT_EQ(retired.status, 200) << retired.body;
  ExpectUntrusted(device_.Evidence(Nonce()), "OS release 24.10 is retired: CVE-2026-0001");
  EXPECT_EQ(DeviceRecord(device_)["attestation"]["verdict"], "untrusted");
  const auto list = json::Parse(Call("GET", "/v1/os-releases", {}, admin_).body);
  ASSERT_TRUE(list);
  EXPECT_EQ((*list)[0].value("retired_reason", ""), "CVE-2026-0001 in aspisd");
}

TEST_F(Attestation, OsReleasesAreListedAndRetiredByThePlatformAdministratorOnly) {
  const auto token = json::Parse(Call("POST", "/v1/tenants/" + tenant_ + "/tokens",
                                      R"({"role":"Administrator"})", admin_)
                                     .body)
                         ->value("token", "");
  EXPECT_EQ(Call("GET", "/v1/os-releases", {}, token).status, 403);
  EXPECT_EQ(Call("POST", "/v1/os-releases/24.10/retire", R"({"reason":"x"})", token).status, 403);
  EXPECT_EQ(Call("GET", "/v1/os-releases", {}, admin_).status, 200);
}

TEST_F(Attestation, OsReleaseMustListExactlyTheLaunchComponents) {
  Contents partial = kRelease2410;
  partial.erase("board");
  EXPECT_EQ(Call("POST", "/v1/os-releases", OsReleaseBody("partial", partial), admin_).status, 400);
  Contents extra = kRelease2410;
  extra["firmware"] = "x";
  EXPECT_EQ(Call("POST", "/v1/os-releases", OsReleaseBody("extra", extra), admin_).status, 400);
}

TEST_F(Attestation, UnclaimedDeviceGetsTheSameRefusalAsAnUntrustedOne) {
  SimDevice stranger;
  const auto unclaimed = Attest(stranger.Evidence(Nonce()));
  EXPECT_EQ(unclaimed.status, 403);
  ASSERT_EQ(
      Call("POST", "/v1/tenants/" + tenant_ + "/devices/" + device_.Id() + "/revoke", {}, admin_)
          .status,
      200);
  const auto revoked = Attest(device_.Evidence(Nonce()));
  EXPECT_EQ(revoked.status, 403);
  // The caller cannot tell claimed from unclaimed, or revoked from anything else.
  EXPECT_EQ(unclaimed.body, revoked.body);
  EXPECT_NE(Metrics().find("aspis_attestations_total{verdict=\"refused\"} 1"), std::string::npos);
}

TEST_F(Attestation, RevokedDeviceGetsNoCertificates) {
  ASSERT_EQ(
      Call("POST", "/v1/tenants/" + tenant_ + "/devices/" + device_.Id() + "/revoke", {}, admin_)
          .status,
      200);
  ExpectUntrusted(device_.Evidence(Nonce()), "revoked");
}

TEST_F(Attestation, ImpersonationPublicKeyThatDoesNotHashToTheDeviceIdIsRefused) {
  SimDevice impostor;
  auto evidence = impostor.Evidence(Nonce());
  evidence.device_id = device_.Id();  // claims a claimed device's identity with its own key
  const auto response = Attest(evidence);
  EXPECT_EQ(response.status, 403);
  EXPECT_TRUE(AttestationView(device_.Id())["attempts"].empty())
      << "refused before the device is looked up";
  EXPECT_EQ(Attest(device_.Evidence(Nonce())).status, 200);
}

TEST_F(Attestation, VerdictHijackAttemptWithoutTheIdentityKeyDoesNotEraseTheVerdict) {
  ASSERT_EQ(Attest(device_.Evidence(Nonce())).status, 200);
  // The attacker knows the device's public key (and so its ID), and signs with a key of its own.
  SimDevice attacker({}, ReleaseContents("a tampered os image", "aspisd 0.1"));
  auto forged = attacker.Evidence(Nonce());
  forged.device_id = device_.Id();
  forged.identity_public_key = device_.rot->GetIdentity()->public_key.Der();
  ExpectUntrusted(forged, "quote rejected: quote signature does not verify");
  const Json view = AttestationView(device_.Id());
  EXPECT_EQ(view.value("verdict", ""), "trusted");
  EXPECT_EQ(view["attempts"][0].value("proven", true), false);
  EXPECT_EQ(view["attempts"][0].value("verdict", ""), "refused");
  EXPECT_EQ(view["attempts"][1].value("verdict", ""), "trusted");
}

TEST_F(Attestation, NonCanonicalIdentityKeyEncodingIsRefused) {
  // The same key as a compressed point has another DER encoding, and so another "device ID".
  const Bytes der = device_.rot->GetIdentity()->public_key.Der();
  ASSERT_EQ(der.size(), 91u);
  Bytes compressed = {0x30, 0x39, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
                      0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03,
                      0x22, 0x00, static_cast<std::uint8_t>((der[90] & 1) != 0 ? 0x03 : 0x02)};
  compressed.insert(compressed.end(), der.begin() + 27, der.begin() + 59);
  ASSERT_TRUE(crypto::PublicKey::FromDer(compressed)) << "OpenSSL reads this encoding";
  const std::string other_id = crypto::ToHex(Hash(AsString(compressed)));
  Claim(other_id);
  auto evidence = device_.Evidence(Nonce());
  evidence.identity_public_key = compressed;
  evidence.device_id = other_id;
  const auto response = Attest(evidence);
  EXPECT_EQ(response.status, 403) << response.body;
  EXPECT_NE(Metrics().find("aspis_attestations_total{verdict=\"refused\"} 1"), std::string::npos);
  EXPECT_EQ(Attest(device_.Evidence(Nonce())).status, 200) << "the canonical encoding";
}

TEST_F(Attestation, CertificateRequestNotBoundByTheQuoteIsRefused) {
  auto evidence = device_.Evidence(Nonce());
  const auto attacker = *crypto::PrivateKey::GenerateP256();
  evidence.runtime_csr = crypto::CertificateRequest::Create(attacker, "x")->Der();
  ExpectUntrusted(evidence, "quote rejected: quote qualifying data does not match");
}

TEST_F(Attestation, SharedRuntimeAndAppKeyIsUntrusted) {
  device_.app_key = device_.runtime_key;
  ExpectUntrusted(device_.Evidence(Nonce()), "must all differ");
}

TEST_F(Attestation, MalformedEvidenceIsA400AndTheServiceKeepsServing) {
  EXPECT_EQ(Call("POST", "/v1/attestation", "{").status, 400);
  EXPECT_EQ(Call("POST", "/v1/attestation", R"({"device_id":"x"})").status, 400);
  auto evidence = device_.Evidence(Nonce());
  evidence.quote.attest.resize(3);
  ExpectUntrusted(evidence, "quote rejected");
  EXPECT_EQ(Attest(device_.Evidence(Nonce())).status, 200);
}

TEST_F(Attestation, SoftwareEvidenceWithTpmPartsIsUntrusted) {
  auto evidence = device_.Evidence(Nonce());
  evidence.boot_pcrs.push_back(Hash("pcr"));
  ExpectUntrusted(evidence, "software root of trust has no NvPCR or boot PCRs");
}

// TPM devices, against swtpm manufactured with EK certificates from a CA the service trusts.
class TpmAttestation : public Attestation {
 protected:
  TpmAttestation() {
    tpm_ca_dir_ = swtpm_.ManufacturerCaDir();
    // The EK certificates were made just now, within the second: the service's clock (taken
    // before) must not read them as not yet valid.
    clock_.Advance(2s);
  }

  // The first attestation of a TPM device, as aspisd makes it: evidence, then with the
  // endorsement, then with the credential the service made for its EK activated.
  void Bind(SimDevice& tpm) {
    auto first = Attest(tpm.Evidence(Nonce()));
    ASSERT_EQ(first.status, 200) << first.body;
    ASSERT_EQ(wire::ParseAttestationResult(first.body)->verdict, wire::kEndorsementRequired);
    auto endorsement = tpm.rot->Endorse();
    ASSERT_TRUE(endorsement && *endorsement) << endorsement.error().message();
    auto evidence = tpm.Evidence(Nonce());
    evidence.endorsement = testing::ToWire(**endorsement);
    auto second = Attest(evidence);
    ASSERT_EQ(second.status, 200) << AttestationView(tpm.Id()).dump();
    auto challenge = wire::ParseAttestationResult(second.body);
    ASSERT_EQ(challenge->verdict, wire::kActivateCredential);
    ASSERT_TRUE(challenge->credential);
    auto secret = tpm.rot->ActivateCredential(challenge->credential->credential_blob,
                                              challenge->credential->encrypted_secret);
    ASSERT_TRUE(secret) << secret.error().message();
    evidence = tpm.Evidence(Nonce());
    evidence.endorsement = testing::ToWire(**endorsement);
    evidence.activation = wire::ActivationProof{*secret, challenge->credential->token};
    auto third = Attest(evidence);
    ASSERT_EQ(third.status, 200) << AttestationView(tpm.Id()).dump();
    ASSERT_EQ(wire::ParseAttestationResult(third.body)->verdict, wire::kTrusted);
  }

  testing::Swtpm swtpm_{{.endorsed = true}};
};

TEST_F(TpmAttestation, TpmDeviceProvesItsLaunchWithTheNvPcrAndBootPcrs) {
  SimDevice tpm(swtpm_.Tcti());
  Claim(tpm);
  Bind(tpm);
  // Once bound, the TPM device attests in one round.
  const auto response = Attest(tpm.Evidence(Nonce()));
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(wire::ParseAttestationResult(response.body)->verdict, wire::kTrusted);
  const Json view = AttestationView(tpm.Id());
  EXPECT_EQ(view.value("root_of_trust", ""), "tpm (EK issuer: CN=swtpm-localca)");
  EXPECT_EQ(view["boot_pcrs"].size(), rot::kBootPcrs.size());
  EXPECT_EQ(view["boot_pcrs"].value("11", ""), std::string(64, '0'));
}

TEST_F(TpmAttestation, UnknownMeasurementOnTheNvPcrIsUntrusted) {
  SimDevice tpm(swtpm_.Tcti(), ReleaseContents("a tampered os image", "aspisd 0.1"));
  Claim(tpm);
  ExpectUntrusted(tpm.Evidence(Nonce()), "unknown measurement");
}

TEST_F(TpmAttestation, TpmEvidenceWithoutTheNvPcrCertificationIsUntrusted) {
  SimDevice tpm(swtpm_.Tcti());
  Claim(tpm);
  Bind(tpm);
  auto evidence = tpm.Evidence(Nonce());
  evidence.register_certification.reset();
  ExpectUntrusted(evidence, "must certify the Aspis NvPCR");
  EXPECT_EQ(Attest(tpm.Evidence(Nonce())).status, 200);
}

TEST_F(TpmAttestation, EventLogThatDoesNotReplayToTheCertifiedNvPcrIsUntrusted) {
  SimDevice tpm(swtpm_.Tcti());
  Claim(tpm);
  auto evidence = tpm.Evidence(Nonce());
  evidence.event_log.pop_back();  // hide a measured component
  ExpectUntrusted(evidence, "NV certification rejected: the certified NvPCR value differs");
}

TEST_F(TpmAttestation, BootPcrValuesThatDifferFromTheQuoteAreUntrusted) {
  SimDevice tpm(swtpm_.Tcti());
  Claim(tpm);
  auto evidence = tpm.Evidence(Nonce());
  evidence.boot_pcrs[0] = Hash("a firmware the device did not boot");
  ExpectUntrusted(evidence, "quoted PCR values differ");
}

// The attack of issue 9: root resets PCR 16, extends the good digests into it and quotes it with
// the identity key; the device names the register. The verifier requires the boot PCRs and the
// NvPCR, whatever the evidence quotes.
TEST_F(TpmAttestation, RegisterSubstitutionAttackQuoteOfResettablePcr16IsRefused) {
  SimDevice tpm(swtpm_.Tcti());
  Claim(tpm);
  const std::string id = tpm.Id();
  tpm.rot.reset();  // swtpm serves one connection: tpm2-tools takes it
  const std::map<std::string, std::string> env{{"TPM2TOOLS_TCTI", swtpm_.Tcti()}};
  ASSERT_EQ(testing::RunProcess({"tpm2_pcrreset", "16"}, env).exit_code, 0);
  for (const auto& event : tpm.events) {
    auto extended = testing::RunProcess(
        {"tpm2_pcrextend", "16:sha256=" + crypto::ToHex(event.digest)}, env);
    ASSERT_EQ(extended.exit_code, 0) << extended.output;
  }
  // Root quotes PCR 16 with the identity key over a fresh challenge.
  auto forge = [&](std::string_view root_of_trust) {
    auto evidence = tpm.Unsigned(Nonce());
    evidence.root_of_trust = std::string(root_of_trust);
    auto quoted = testing::RunProcess(
        {"tpm2_quote", "-c", "0x81000a5d", "-l", "sha256:16", "-q",
         HexEncode(SimDevice::Binding(evidence)), "-m", (tpm.dir / "msg").string(), "-s",
         (tpm.dir / "sig").string(), "-g", "sha256"},
        env);
    EXPECT_EQ(quoted.exit_code, 0) << quoted.output;
    evidence.quote = wire::Quote{*file::Read(tpm.dir / "msg", 4096),
                                 *file::Read(tpm.dir / "sig", 4096)};
    return evidence;
  };
  ExpectUntrusted(forge(wire::kRootOfTrustSoftware),
                  "quote covers PCRs 16, but the verifier requires exactly 15");
  ExpectUntrusted(forge(wire::kRootOfTrustTpm), "must certify the Aspis NvPCR");
  EXPECT_EQ(AttestationView(id).value("verdict", ""), "untrusted");
  // The genuine launch in the NvPCR is still trusted.
  tpm.Open(false);
  Bind(tpm);
}

TEST_F(TpmAttestation, RootOfTrustDowngradeFromTpmToSoftwareIsUntrusted) {
  SimDevice tpm(swtpm_.Tcti());
  Claim(tpm);
  Bind(tpm);
  // The same identity key now says it is a software root of trust, to escape the NvPCR.
  auto evidence = tpm.Unsigned(Nonce());
  evidence.root_of_trust = wire::kRootOfTrustSoftware;
  auto signed_evidence = tpm.rot->Attest(SimDevice::Binding(evidence));
  ASSERT_TRUE(signed_evidence);
  evidence.quote = testing::ToWire(signed_evidence->quote);
  ExpectUntrusted(evidence, "proved a tpm root of trust before and now reports software");
}

TEST_F(TpmAttestation, GoldenBootPcrsRefuseADeviceThatBootedSomethingElse) {
  SimDevice golden(swtpm_.Tcti());
  Claim(golden);
  Bind(golden);
  const auto pinned = Policy(Json{{"pin_boot_pcrs_from_device", golden.Id()}}.dump());
  ASSERT_EQ(pinned.status, 200) << pinned.body;

  testing::Swtpm other_tpm;
  // Another device whose firmware measured something else into PCR 7.
  auto extended = testing::RunProcess({"tpm2_pcrextend", "7:sha256=" + std::string(64, 'e')},
                                      {{"TPM2TOOLS_TCTI", other_tpm.Tcti()}});
  ASSERT_EQ(extended.exit_code, 0) << extended.output;
  SimDevice other(other_tpm.Tcti());
  Claim(other);
  ExpectUntrusted(other.Evidence(Nonce()), "boot PCR 7 is");
  EXPECT_EQ(Attest(golden.Evidence(Nonce())).status, 200) << "the pinned device itself";
  ExpectUntrusted(device_.Evidence(Nonce()), "reports none (no TPM)");

  ASSERT_EQ(Policy(R"({"clear_golden_boot_pcrs": true})").status, 200);
  const auto unpinned = Attest(other.Evidence(Nonce()));
  ASSERT_EQ(unpinned.status, 200) << unpinned.body;
  EXPECT_EQ(wire::ParseAttestationResult(unpinned.body)->verdict, wire::kEndorsementRequired)
      << "past the boot PCRs, on to its hardware binding";
}

TEST_F(TpmAttestation, TpmDeviceIsBoundToItsEkOnceAndTheDeviceAttesterDoesItAll) {
  SimDevice tpm(swtpm_.Tcti());
  Claim(tpm);
  const std::vector<crypto::Certificate> roots{service_->root_ca()};
  wire::HttpsClient client({"127.0.0.1", service_->port()}, *crypto::tls::ClientContext(roots));
  auto attested = device::attest::Attest(client, *tpm.rot, tpm.events, tpm.runtime_key,
                                         tpm.app_key, roots, clock_.Now());
  ASSERT_TRUE(attested) << attested.error().message();
  const Json view = AttestationView(tpm.Id());
  EXPECT_EQ(view.value("root_of_trust", ""), "tpm (EK issuer: CN=swtpm-localca)");
  ASSERT_GE(view["attempts"].size(), 3u);
  EXPECT_EQ(view["attempts"][0].value("verdict", ""), "trusted");
  EXPECT_EQ(view["attempts"][1].value("verdict", ""), "pending");
  EXPECT_EQ(view["attempts"][2].value("verdict", ""), "pending");
  EXPECT_NE(Metrics().find("aspis_attestations_total{verdict=\"pending\"} 2"), std::string::npos);
}

TEST_F(TpmAttestation, EkCertificateFromAnUntrustedManufacturerIsRefused) {
  testing::Swtpm unknown_vendor({.endorsed = true});  // its own CA, which the service lacks
  SimDevice tpm(unknown_vendor.Tcti());
  Claim(tpm);
  auto evidence = tpm.Evidence(Nonce());
  evidence.endorsement = testing::ToWire(**tpm.rot->Endorse());
  ExpectUntrusted(evidence, "the EK certificate is not from a trusted TPM manufacturer");
  EXPECT_EQ(AttestationView(tpm.Id()).value("root_of_trust", ""), "unknown (not attested yet)");
}

// A TPMS_ATTEST with any content, signed by `signer`'s identity key: what root forges with an
// identity key it holds in a file.
wire::Quote ForgeSigned(rot::RootOfTrust& signer, TPMI_ST_ATTEST type, ByteView qualifying,
                       const std::function<void(TPMS_ATTEST&)>& fill) {
  TPMS_ATTEST attest{};
  attest.magic = TPM2_GENERATED_VALUE;
  attest.type = type;
  attest.extraData.size = static_cast<UINT16>(qualifying.size());
  std::copy(qualifying.begin(), qualifying.end(), attest.extraData.buffer);
  fill(attest);
  Bytes bytes(sizeof attest);
  std::size_t offset = 0;
  EXPECT_EQ(Tss2_MU_TPMS_ATTEST_Marshal(&attest, bytes.data(), bytes.size(), &offset),
            TSS2_RC_SUCCESS);
  bytes.resize(offset);
  return {bytes, *rot::MarshalEcdsaSignature(*signer.Sign(bytes))};
}

void WriteBytes(const std::filesystem::path& path, ByteView bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Root on a device with a genuine TPM wants a key it holds in a file accepted as TPM-held. With
// the file key it can sign anything, so it forges a boot-PCR quote and an NvPCR certification
// that pass every rule before the binding, and presents the genuine TPM's EK with a public area it
// wrote for the file key. The credential is made for that key's name, and the TPM activates
// credentials only for keys it holds: the secret never comes back.
TEST_F(TpmAttestation, KeyCloningAttackSoftwareKeyPassedOffAsTpmHeldIsRefused) {
  SimDevice genuine(swtpm_.Tcti());
  const rot::Endorsement real = **genuine.rot->Endorse();
  genuine.rot.reset();  // tpm2-tools takes the TPM below

  SimDevice clone;  // software root of trust: the key is a file
  Claim(clone);
  const Bytes point(clone.identity->public_key.Der().end() - 64,
                    clone.identity->public_key.Der().end());
  TPM2B_PUBLIC forged_area{};
  const Bytes identity_template = *rot::IdentityTemplate();
  std::size_t offset = 0;
  ASSERT_EQ(Tss2_MU_TPM2B_PUBLIC_Unmarshal(identity_template.data(), identity_template.size(),
                                           &offset, &forged_area),
            TSS2_RC_SUCCESS);
  auto& unique = forged_area.publicArea.unique.ecc;
  unique.x.size = unique.y.size = 32;
  std::copy(point.begin(), point.begin() + 32, unique.x.buffer);
  std::copy(point.begin() + 32, point.end(), unique.y.buffer);
  Bytes forged_public(sizeof forged_area);
  offset = 0;
  ASSERT_EQ(Tss2_MU_TPM2B_PUBLIC_Marshal(&forged_area, forged_public.data(), forged_public.size(),
                                         &offset),
            TSS2_RC_SUCCESS);
  forged_public.resize(offset);

  auto forge = [&](std::optional<wire::ActivationProof> activation) {
    auto evidence = clone.Unsigned(Nonce());
    evidence.root_of_trust = wire::kRootOfTrustTpm;
    evidence.boot_pcrs.assign(rot::kBootPcrs.size(), crypto::Digest{});
    const Bytes binding = SimDevice::Binding(evidence);
    evidence.quote = ForgeSigned(*clone.rot, TPM2_ST_ATTEST_QUOTE, binding, [&](TPMS_ATTEST& a) {
      auto& selection = a.attested.quote.pcrSelect;
      selection.count = 1;
      selection.pcrSelections[0] = {TPM2_ALG_SHA256, 3, {0xff, 0x08, 0x00}};
      const auto digest = *crypto::Sha256Of(Bytes(32 * rot::kBootPcrs.size(), 0));
      a.attested.quote.pcrDigest.size = 32;
      std::copy(digest.begin(), digest.end(), a.attested.quote.pcrDigest.buffer);
    });
    evidence.register_certification =
        ForgeSigned(*clone.rot, TPM2_ST_ATTEST_NV, binding, [&](TPMS_ATTEST& a) {
          const Bytes name = *rot::NvPcrName();
          a.attested.nv.indexName.size = static_cast<UINT16>(name.size());
          std::copy(name.begin(), name.end(), a.attested.nv.indexName.name);
          const auto value = *wire::ReplayEventLog(clone.events);
          a.attested.nv.nvContents.size = 32;
          std::copy(value.begin(), value.end(), a.attested.nv.nvContents.buffer);
        });
    evidence.endorsement = wire::Endorsement{real.ek_certificate, real.ek_public, forged_public};
    evidence.activation = std::move(activation);
    return evidence;
  };
  // The forgeries pass every rule before the binding: the verifier makes a credential.
  const auto answer = Attest(forge(std::nullopt));
  ASSERT_EQ(answer.status, 200) << AttestationView(clone.Id()).dump();
  const auto challenge = wire::ParseAttestationResult(answer.body);
  ASSERT_EQ(challenge->verdict, wire::kActivateCredential);

  // Root asks the genuine TPM to activate it for the file key: the TPM refuses.
  const std::map<std::string, std::string> env{{"TPM2TOOLS_TCTI", swtpm_.Tcti()}};
  const auto dir = clone.dir.path();
  WriteBytes(dir / "forged.pub", forged_public);
  Bytes file = {0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1};
  file.insert(file.end(), challenge->credential->credential_blob.begin(),
              challenge->credential->credential_blob.end());
  file.insert(file.end(), challenge->credential->encrypted_secret.begin(),
              challenge->credential->encrypted_secret.end());
  WriteBytes(dir / "credential.in", file);
  for (const std::vector<std::string>& step :
       {std::vector<std::string>{"tpm2_createek", "-G", "rsa", "-c", (dir / "ek.ctx").string()},
        // swtpm holds three transient objects: each tool's is saved to its file and flushed.
        {"tpm2_flushcontext", "-t"},
        {"tpm2_loadexternal", "-C", "n", "-u", (dir / "forged.pub").string(), "-c",
         (dir / "forged.ctx").string()},
        {"tpm2_flushcontext", "-t"},
        {"tpm2_startauthsession", "--policy-session", "-S", (dir / "session.ctx").string()},
        {"tpm2_policysecret", "-S", (dir / "session.ctx").string(), "-c", "e"}}) {
    auto result = testing::RunProcess(step, env);
    ASSERT_EQ(result.exit_code, 0) << step[0] << ": " << result.output;
  }
  auto activated = testing::RunProcess(
      {"tpm2_activatecredential", "-c", (dir / "forged.ctx").string(), "-C",
       (dir / "ek.ctx").string(), "-i", (dir / "credential.in").string(), "-o",
       (dir / "secret.out").string(), "-P", "session:" + (dir / "session.ctx").string()},
      env);
  EXPECT_NE(activated.exit_code, 0) << activated.output;
  EXPECT_NE(activated.output.find("Esys_ActivateCredential"), std::string::npos)
      << "refused by the TPM's TPM2_ActivateCredential, not before it\n"
      << activated.output;
  testing::RunProcess({"tpm2_flushcontext", "-t"}, env);
  testing::RunProcess({"tpm2_flushcontext", "-s"}, env);

  // Without the secret, the binding is refused, and the file key is never trusted as TPM-held.
  ExpectUntrusted(forge(wire::ActivationProof{Bytes(32, 0), challenge->credential->token}),
                  "the credential was not activated by the TPM of this EK");
  EXPECT_EQ(AttestationView(clone.Id()).value("root_of_trust", ""), "unknown (not attested yet)");

  // The positive twin: the genuine device binds to the same EK.
  genuine.Open(false);
  Claim(genuine);
  Bind(genuine);
}

TEST_F(TpmAttestation, ForgedCredentialActivationIsRefused) {
  SimDevice tpm(swtpm_.Tcti());
  Claim(tpm);
  auto evidence = tpm.Evidence(Nonce());
  evidence.endorsement = testing::ToWire(**tpm.rot->Endorse());
  const auto challenge = wire::ParseAttestationResult(Attest(evidence).body);
  ASSERT_EQ(challenge->verdict, wire::kActivateCredential);
  evidence = tpm.Evidence(Nonce());
  evidence.endorsement = testing::ToWire(**tpm.rot->Endorse());
  // A guessed secret with the service's genuine token.
  evidence.activation = wire::ActivationProof{Bytes(32, 7), challenge->credential->token};
  ExpectUntrusted(evidence, "the credential was not activated by the TPM of this EK");
  // The genuine secret, after the token's lifetime.
  auto secret = *tpm.rot->ActivateCredential(challenge->credential->credential_blob,
                                             challenge->credential->encrypted_secret);
  clock_.Advance(6min);
  evidence = tpm.Evidence(Nonce());
  evidence.endorsement = testing::ToWire(**tpm.rot->Endorse());
  evidence.activation = wire::ActivationProof{secret, challenge->credential->token};
  ExpectUntrusted(evidence, "the credential activation has expired");
  clock_.Advance(-6min);
  evidence = tpm.Evidence(Nonce());
  evidence.endorsement = testing::ToWire(**tpm.rot->Endorse());
  evidence.activation = wire::ActivationProof{secret, challenge->credential->token};
  EXPECT_EQ(wire::ParseAttestationResult(Attest(evidence).body)->verdict, wire::kTrusted);
}

TEST_F(Attestation, SoftwareRootOfTrustIsRefusedUnlessTheTenantAcceptsIt) {
  ASSERT_EQ(Policy(R"({"allow_software_root_of_trust": false})").status, 200);
  ExpectUntrusted(device_.Evidence(Nonce()),
                  "software root of trust (no hardware protection), which the tenant does not "
                  "accept");
  ASSERT_EQ(Policy(R"({"allow_software_root_of_trust": true})").status, 200);
  EXPECT_EQ(Attest(device_.Evidence(Nonce())).status, 200);
  EXPECT_EQ(DeviceRecord(device_)["root_of_trust"], "software (no hardware protection)");
}

std::int64_t Seconds(Clock::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Clock::TimePoint FromSeconds(std::int64_t s) { return Clock::TimePoint(std::chrono::seconds(s)); }

// A tenant created at `created` (on the fixture's clock), with `device` claimed.
std::string CreateTenantAt(FakeClock& clock, Clock::TimePoint created,
                           const std::function<wire::HttpResponse(
                               const std::string&, const std::string&, const std::string&)>& call,
                           const SimDevice& device) {
  clock.Set(created);
  const auto tenant =
      json::Parse(call("POST", "/v1/tenants", R"({"name":"Rollover"})").body)->value("id", "");
  EXPECT_EQ(
      call("POST", "/v1/tenants/" + tenant + "/devices", Json{{"device_id", device.Id()}}.dump())
          .status,
      201);
  EXPECT_EQ(call("POST", "/v1/tenants/" + tenant + "/attestation-policy",
                 R"({"allow_software_root_of_trust": true})")
                .status,
            200);
  return tenant;
}

// The tenant CA rollover: a successor 90 days before expiry, signing 45 days later, and device
// certificates of both generations accepted while both CAs are valid. The tenant is created in
// the past so that the switch falls a few hours before the real time the TLS stack checks against.
TEST_F(Attestation, TenantCaSuccessorIsMadeBeforeExpiryAndBothGenerationsStayTrusted) {
  const auto real_now = clock_.Now();
  SimDevice device;
  auto call = [&](const std::string& method, const std::string& target, const std::string& body) {
    return Call(method, target, body, admin_);
  };
  const std::string tenant = CreateTenantAt(clock_, real_now - 24h * 686 - 5h, call, device);
  const std::string cas = "/v1/tenants/" + tenant + "/ca-certificates";
  auto list = [&] { return json::Parse(call("GET", cas, "").body).value_or(Json::array()); };
  Json generations = list();
  ASSERT_EQ(generations.size(), 1u);
  EXPECT_EQ(generations[0]["state"], "Active");
  const auto expiry = FromSeconds(generations[0]["not_after"].get<std::int64_t>());

  clock_.Set(expiry - 24h * 91);
  EXPECT_EQ(list().size(), 1u);
  clock_.Set(expiry - 24h * 89);
  generations = list();
  ASSERT_EQ(generations.size(), 2u);
  EXPECT_EQ(generations[0]["state"], "Active");
  EXPECT_EQ(generations[1]["state"], "Inactive");
  EXPECT_EQ(generations[1]["activates_at"], Seconds(clock_.Now() + 24h * 45));
  EXPECT_EQ(list().size(), 2u) << "a successor is made once";
  const auto audit = call("GET", "/v1/tenants/" + tenant + "/audit", "");
  EXPECT_NE(audit.body.find("ca.successor"), std::string::npos) << audit.body;

  auto generation_cert = [&](int index) {
    return *crypto::Certificate::FromPem(call("GET", cas + "/" + std::to_string(index), "").body);
  };
  const crypto::Certificate first = generation_cert(1);
  const crypto::Certificate second = generation_cert(2);
  auto attest = [&] {
    auto response = Attest(device.Evidence(Nonce()));
    EXPECT_EQ(response.status, 200) << response.body;
    return *wire::ParseAttestationResult(response.body);
  };

  // Twelve hours before the switch the first generation still signs.
  clock_.Set(real_now - 12h);
  const auto before = attest();
  const auto before_cert = *crypto::Certificate::FromPem(before.runtime_certificate_pem);
  EXPECT_TRUE(crypto::VerifyChain(before_cert, {}, std::vector{first}, clock_.Now()).valid());

  clock_.Set(real_now);
  generations = list();
  EXPECT_EQ(generations[0]["state"], "Inactive");
  EXPECT_EQ(generations[1]["state"], "Active");
  const auto after = attest();
  const auto after_cert = *crypto::Certificate::FromPem(after.runtime_certificate_pem);
  EXPECT_TRUE(crypto::VerifyChain(after_cert, {}, std::vector{second}, real_now).valid());
  EXPECT_FALSE(crypto::VerifyChain(after_cert, {}, std::vector{first}, real_now).valid());
  EXPECT_EQ(crypto::Certificate::FromPem(
                call("GET", "/v1/tenants/" + tenant + "/ca-certificate", "").body)
                ->Der(),
            second.Der());

  // Both generations' certificates open the device routes while both CAs are valid.
  for (const auto* result : {&before, &after}) {
    auto response = DeviceCall(*service_, device.runtime_key,
                               result->runtime_certificate_pem + result->ca_chain_pem);
    ASSERT_TRUE(response) << response.error().message();
    EXPECT_EQ(response->status, 200) << response->body;
  }

  clock_.Set(expiry + 1s);
  EXPECT_EQ(list()[0]["state"], "Expired");
}

TEST_F(Attestation, TenantCaSuccessorMadeLateSignsNoLaterThanItsPredecessorExpires) {
  SimDevice device;
  auto call = [&](const std::string& method, const std::string& target, const std::string& body) {
    return Call(method, target, body, admin_);
  };
  const std::string tenant = CreateTenantAt(clock_, clock_.Now(), call, device);
  const std::string cas = "/v1/tenants/" + tenant + "/ca-certificates";
  const auto first = json::Parse(call("GET", cas, "").body).value_or(Json::array());
  ASSERT_EQ(first.size(), 1u);
  // The service was down through the lead time: the successor is made 10 days before expiry.
  clock_.Set(FromSeconds(first[0]["not_after"].get<std::int64_t>()) - 24h * 10);
  const auto generations = json::Parse(call("GET", cas, "").body).value_or(Json::array());
  ASSERT_EQ(generations.size(), 2u);
  EXPECT_EQ(generations[1]["activates_at"], first[0]["not_after"]);
}

}  // namespace
}  // namespace aspis::service
