// Attestation end to end: a simulated device (software root of trust) against aspis-service over
// HTTPS. Each attack on the protocol has a test named after it.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "core/json.hpp"
#include "crypto/tls.hpp"
#include "device/attest/attester.hpp"
#include "rot/root_of_trust.hpp"
#include "service/attest/attestation.hpp"
#include "service/service.hpp"
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

// The OS release whose measurements SimDevice reports.
std::string OsReleaseBody(const std::string& version) {
  return Json{{"version", version},
              {"feed", "retail"},
              {"components",
               {{"os", crypto::ToHex(Hash("os image 24.10"))},
                {"aspisd", crypto::ToHex(Hash("aspisd 0.1"))}}}}
      .dump();
}

// A device: a software root of trust that measured an OS image and aspisd at boot.
struct SimDevice {
  // The software root of trust, or the TPM behind `tcti`.
  explicit SimDevice(std::string tcti = {}) {
    auto opened = rot::Initialize(
        {.backend = tcti.empty() ? "software" : "tpm2", .state_dir = dir / "rot", .tcti = tcti});
    EXPECT_TRUE(opened) << opened.error().message();
    rot = std::move(*opened);
    Measure("os", "os image 24.10");
    Measure("aspisd", "aspisd 0.1");
  }

  void Measure(const std::string& component, std::string_view content) {
    EXPECT_TRUE(rot->Extend(Hash(content)));
    events.push_back({component, Hash(content)});
  }

  std::string Id() const { return rot->GetIdentity()->device_id; }

  wire::Evidence Evidence(const Bytes& nonce) {
    wire::Evidence e;
    e.device_id = Id();
    e.identity_public_key = rot->GetIdentity()->public_key.Der();
    e.event_log = events;
    e.register_index = rot->RegisterIndex();
    e.nonce = nonce;
    e.runtime_csr = crypto::CertificateRequest::Create(runtime_key, "runtime")->Der();
    e.app_csr = crypto::CertificateRequest::Create(app_key, "app")->Der();
    const auto binding = *wire::EvidenceBinding(nonce, e.runtime_csr, e.app_csr);
    e.quote = *rot->CreateQuote(binding);
    return e;
  }

  TempDir dir;
  std::unique_ptr<rot::RootOfTrust> rot;
  std::vector<wire::MeasurementEvent> events;
  crypto::PrivateKey runtime_key = *crypto::PrivateKey::GenerateP256();
  crypto::PrivateKey app_key = *crypto::PrivateKey::GenerateP256();
};

class Attestation : public ::testing::Test {
 protected:
  void SetUp() override {
    auto service =
        Service::Start({.data_dir = dir_ / "data", .listen = "127.0.0.1:0", .threads = 2}, clock_);
    ASSERT_TRUE(service) << service.error().message();
    service_ = std::move(*service);
    admin_ = service_->new_admin_token();
    auto tenant = Call("POST", "/v1/tenants", Json{{"name", "Contoso"}}.dump(), admin_);
    ASSERT_EQ(tenant.status, 201);
    tenant_ = json::Parse(tenant.body)->value("id", "");
    auto release = Call("POST", "/v1/os-releases", OsReleaseBody("24.10"), admin_);
    ASSERT_EQ(release.status, 201) << release.body;
    Claim(device_);
  }

  void Claim(const SimDevice& device) {
    ASSERT_EQ(Call("POST", "/v1/tenants/" + tenant_ + "/devices",
                   Json{{"device_id", device.Id()}}.dump(), admin_)
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

  wire::HttpResponse Attest(const wire::Evidence& evidence) const {
    return Call("POST", "/v1/attestation", wire::Serialize(evidence));
  }

  // Expects a refusal whose reason contains `reason`.
  void ExpectUntrusted(const wire::Evidence& evidence, std::string_view reason) const {
    const auto response = Attest(evidence);
    EXPECT_EQ(response.status, 403) << response.body;
    EXPECT_EQ(response.content_type, "application/problem+json");
    EXPECT_NE(response.body.find(reason), std::string::npos) << response.body;
  }

  Json DeviceRecord(const SimDevice& device) const {
    auto response = Call("GET", "/v1/tenants/" + tenant_ + "/devices/" + device.Id(), {}, admin_);
    return json::Parse(response.body).value_or(Json::object());
  }

  FakeClock clock_{std::chrono::system_clock::now()};
  TempDir dir_;
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
  EXPECT_EQ(runtime->PolicyOids(), std::vector<std::string>{attest::kRuntimeCertificatePolicy});
  EXPECT_EQ(app->PolicyOids(), std::vector<std::string>{attest::kAppCertificatePolicy});

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
  const auto metrics = Call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("aspis_attestations_total{verdict=\"trusted\"} 1"),
            std::string::npos);
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

  device_.Measure("os", "a tampered os image");
  auto refused = device::attest::Attest(client, *device_.rot, device_.events, device_.runtime_key,
                                        device_.app_key, roots, clock_.Now());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), wire::WireErrc::kRefused);
  EXPECT_NE(refused.error().message().find("unknown measurement"), std::string::npos)
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

TEST_F(Attestation, TpmDeviceEvidenceIsVerifiedToo) {
  testing::Swtpm swtpm;
  SimDevice tpm_device(swtpm.Tcti());
  Claim(tpm_device);
  const auto response = Attest(tpm_device.Evidence(Nonce()));
  EXPECT_EQ(response.status, 200) << response.body;
  tpm_device.Measure("os", "a tampered os image");
  ExpectUntrusted(tpm_device.Evidence(Nonce()), "unknown measurement");
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
                      .policy_oids = {attest::kRuntimeCertificatePolicy}});
  auto response = DeviceCall(*service_, key, *forged.ToPem() + *ca.ToPem());
  // Refused in the TLS handshake, or at the latest by the route.
  if (response) {
    EXPECT_EQ(response->status, 403);
  } else {
    EXPECT_EQ(response.error(), wire::WireErrc::kTls) << response.error().message();
  }
}

TEST_F(Attestation, ReplayAttackReusedNonceIsUntrusted) {
  const auto evidence = device_.Evidence(Nonce());
  ASSERT_EQ(Attest(evidence).status, 200);
  ExpectUntrusted(evidence, "used already");
}

TEST_F(Attestation, FreezeAttackExpiredNonceIsUntrusted) {
  const Bytes nonce = Nonce();
  clock_.Advance(6min);
  ExpectUntrusted(device_.Evidence(nonce), "expired");
}

TEST_F(Attestation, ForgedNonceIsUntrusted) {
  Bytes nonce = Nonce();
  nonce[10] ^= 1;
  ExpectUntrusted(device_.Evidence(nonce), "not issued by this service");
  ExpectUntrusted(device_.Evidence(Bytes(56, 7)), "not issued by this service");
}

TEST_F(Attestation, QuoteOverAnotherNonceIsUntrusted) {
  const Bytes quoted_nonce = Nonce();
  auto evidence = device_.Evidence(quoted_nonce);
  evidence.nonce = Nonce();  // fresh and genuine, but not the one the quote covers
  ExpectUntrusted(evidence, "quote rejected");
}

TEST_F(Attestation, EventLogThatDoesNotReplayToTheQuoteIsUntrusted) {
  auto evidence = device_.Evidence(Nonce());
  evidence.event_log.pop_back();  // hide a measured component
  ExpectUntrusted(evidence, "register value");
}

TEST_F(Attestation, UnknownMeasurementIsUntrustedAndTheOperatorSeesWhy) {
  device_.Measure("os", "a tampered os image");
  ExpectUntrusted(device_.Evidence(Nonce()), "unknown measurement");
  const Json record = DeviceRecord(device_);
  EXPECT_EQ(record["attestation"]["verdict"], "untrusted");
  EXPECT_NE(record["attestation"]["reasons"].get<std::string>().find("component \"os\""),
            std::string::npos);
}

TEST_F(Attestation, UnclaimedDeviceIsUntrusted) {
  SimDevice stranger;
  ExpectUntrusted(stranger.Evidence(Nonce()), "not been claimed");
}

TEST_F(Attestation, RevokedDeviceGetsNoCertificates) {
  ASSERT_EQ(
      Call("POST", "/v1/tenants/" + tenant_ + "/devices/" + device_.Id() + "/revoke", {}, admin_)
          .status,
      200);
  ExpectUntrusted(device_.Evidence(Nonce()), "revoked");
}

TEST_F(Attestation, ImpersonationPublicKeyThatDoesNotHashToTheDeviceIdIsUntrusted) {
  SimDevice impostor;
  auto evidence = impostor.Evidence(Nonce());
  evidence.device_id = device_.Id();  // claims a claimed device's identity with its own key
  ExpectUntrusted(evidence, "does not hash to the claimed device ID");
}

TEST_F(Attestation, CertificateRequestNotBoundByTheQuoteIsUntrusted) {
  auto evidence = device_.Evidence(Nonce());
  const auto attacker = *crypto::PrivateKey::GenerateP256();
  evidence.runtime_csr = crypto::CertificateRequest::Create(attacker, "x")->Der();
  ExpectUntrusted(evidence, "quote rejected");
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
