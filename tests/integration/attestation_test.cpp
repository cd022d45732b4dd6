// Attestation end to end: simulated devices with software roots of trust against aspis-service
// over HTTPS. Each attack on the protocol has a test named after it; the attester only ever hears
// one generic refusal, so each asserts the reason the tenant sees.
#include "integration/attestation_fixture.hpp"

namespace aspis::service::attestation_test {
namespace {

using namespace std::chrono_literals;

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
  TempDir too_long_dir;
  auto too_long = Service::Start({.data_dir = too_long_dir / "data",
                                  .listen = "127.0.0.1:0",
                                  .master_key_file = too_long_dir / "master.key",
                                  .threads = 1,
                                  .certificate_lifetime = 24h * 8},
                                 clock_);
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message().find("at most 7 days"), std::string::npos);
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
  const auto chain = *crypto::Certificate::ChainFromPem(
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
  // A CRL is served again while its list holds and it is younger than an hour; a new one carries
  // the next number.
  auto crl_number = [&] {
    std::ofstream(dir_ / "crl.pem")
        << Call("GET", "/v1/tenants/" + tenant_ + "/crl", {}, admin_).body;
    return testing::RunProcess(
               {"openssl", "crl", "-in", (dir_ / "crl.pem").string(), "-noout", "-crlnumber"})
        .output;
  };
  const std::string first = crl_number();
  EXPECT_EQ(crl_number(), first) << "the list did not change";
  ASSERT_EQ(
      Call("POST", "/v1/tenants/" + tenant_ + "/devices/" + other.Id() + "/revoke", {}, admin_)
          .status,
      200);
  const std::string second = crl_number();
  EXPECT_NE(second, first) << "a revocation makes a new CRL at once";
  EXPECT_NE(verify("kept.pem").exit_code, 0) << "the CRL served again lists the second revocation";
  clock_.Set(clock_.Now() + 1h);
  EXPECT_NE(crl_number(), second) << "an hour-old CRL is made anew";
}

// A CA that chains to the real platform root but is not one of the device's tenant's CAs (as
// another tenant's CA is) issues a runtime certificate naming this tenant's device: the TLS
// handshake accepts it (it chains to the pinned root), and the device route refuses it.
TEST_F(Attestation, CertificateFromAnotherCaUnderThePlatformRootIsRefusedOnDeviceRoutes) {
  auto data = OpenDataDir(dir_ / "data", {.master_key_file = dir_ / "master.key"}, clock_);
  ASSERT_TRUE(data) << data.error().message();
  const auto now = std::chrono::system_clock::now();
  const auto ca_key = *crypto::PrivateKey::GenerateP256();
  const auto foreign_ca = *crypto::Issue(data->root_ca, data->root_key, ca_key.Public(),
                                         {.common_name = "Aspis Tenant CA other",
                                          .not_before = now - 1h,
                                          .lifetime = 48h,
                                          .is_ca = true,
                                          .path_length = 0});
  const auto key = *crypto::PrivateKey::GenerateP256();
  auto forge = [&](const crypto::Certificate& issuer, const crypto::PrivateKey& issuer_key) {
    return *crypto::Issue(issuer, issuer_key, key.Public(),
                          {.common_name = device_.Id(),
                           .not_before = now - 1h,
                           .lifetime = 24h,
                           .client_auth = true,
                           .san_uris = {"urn:aspis:tenant:" + tenant_ + ":device:" + device_.Id()},
                           .policy_oids = {wire::kRuntimeCertificatePolicy}});
  };
  auto response =
      DeviceCall(*service_, key, *forge(foreign_ca, ca_key).ToPem() + *foreign_ca.ToPem());
  ASSERT_TRUE(response) << "the handshake accepts a chain to the platform root: "
                        << response.error().message();
  EXPECT_EQ(response->status, 403);
  EXPECT_NE(response->body.find("not issued to this device by its tenant's CA"), std::string::npos)
      << response->body;
  // The positive twin: the device's own runtime certificate opens the route.
  const auto own = *wire::ParseAttestationResult(Attest(device_.Evidence(Nonce())).body);
  auto opened =
      DeviceCall(*service_, device_.runtime_key, own.runtime_certificate_pem + own.ca_chain_pem);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->status, 200);
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

// The refusal names the event, cut to 64 bytes: inside a two-byte character here. The answer is a
// refusal, not a 500 from serializing half a character.
TEST_F(Attestation, EventNameCutInsideACharacterIsRefusedAsMalformed) {
  Json evidence = *json::Parse(wire::Serialize(device_.Evidence(Nonce())));
  evidence["event_log"][0]["component"] = std::string(63, 'a') + "\xc3\xa9" + std::string(300, 'b');
  evidence["event_log"][0]["digest"] = "00";
  const auto response = Call("POST", "/v1/attestation", evidence.dump());
  EXPECT_EQ(response.status, 400) << response.body;
  EXPECT_TRUE(json::Parse(response.body)) << response.body;
  EXPECT_EQ(Attest(device_.Evidence(Nonce())).status, 200);
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
  const Json view = AttestationViewWith(device_.Id(), 2);
  EXPECT_EQ(view.value("verdict", ""), "trusted");
  EXPECT_EQ(view["attempts"][0].value("proven", true), false);
  EXPECT_EQ(view["attempts"][0].value("verdict", ""), "refused");
  EXPECT_EQ(view["attempts"][1].value("verdict", ""), "trusted");
}

TEST_F(Attestation, NonCanonicalIdentityKeyEncodingIsRefused) {
  // The same key as a compressed point has another DER encoding, and so another "device ID".
  const Bytes der = device_.rot->GetIdentity()->public_key.Der();
  ASSERT_EQ(der.size(), 91u);
  Bytes compressed = {0x30, 0x39, 0x30,
                      0x13, 0x06, 0x07,
                      0x2a, 0x86, 0x48,
                      0xce, 0x3d, 0x02,
                      0x01, 0x06, 0x08,
                      0x2a, 0x86, 0x48,
                      0xce, 0x3d, 0x03,
                      0x01, 0x07, 0x03,
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
  ASSERT_TRUE(service_->RunMaintenance());
  EXPECT_EQ(list().size(), 1u);
  clock_.Set(expiry - 24h * 89);
  EXPECT_EQ(list().size(), 1u) << "reading the CAs makes none";
  ASSERT_TRUE(service_->RunMaintenance());
  generations = list();
  ASSERT_EQ(generations.size(), 2u);
  EXPECT_EQ(generations[0]["state"], "Active");
  EXPECT_EQ(generations[1]["state"], "Inactive");
  EXPECT_EQ(generations[1]["activates_at"], Seconds(clock_.Now() + 24h * 45));
  ASSERT_TRUE(service_->RunMaintenance());
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
  ASSERT_TRUE(service_->RunMaintenance());
  const auto generations = json::Parse(call("GET", cas, "").body).value_or(Json::array());
  ASSERT_EQ(generations.size(), 2u);
  EXPECT_EQ(generations[1]["activates_at"], first[0]["not_after"]);
}

}  // namespace
}  // namespace aspis::service::attestation_test
