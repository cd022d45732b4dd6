#include <gtest/gtest.h>

#include <fstream>

#include "crypto/aead.hpp"
#include "crypto/dsse.hpp"
#include "crypto/encoding.hpp"
#include "crypto/errors.hpp"
#include "crypto/key.hpp"
#include "crypto/sha256.hpp"
#include "crypto/x509.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace aspis::crypto {
namespace {

using namespace std::chrono_literals;

const Clock::TimePoint kNow = Clock::TimePoint(std::chrono::seconds(1'800'000'000));

PrivateKey NewKey() { return *PrivateKey::GenerateP256(); }

TEST(Sha256, MatchesKnownVectorStreamingAndOneShot) {
  const std::string expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  EXPECT_EQ(ToHex(*Sha256Of(AsBytes("abc"))), expected);
  auto h = *Sha256::Create();
  ASSERT_TRUE(h.Update(AsBytes("a")));
  ASSERT_TRUE(h.Update(AsBytes("bc")));
  EXPECT_EQ(ToHex(*h.Finish()), expected);
  // Reusable after Finish.
  ASSERT_TRUE(h.Update(AsBytes("abc")));
  EXPECT_EQ(ToHex(*h.Finish()), expected);
}

TEST(Base64, EncodesAndDecodesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(AsBytes("")), "");
  EXPECT_EQ(Base64Encode(AsBytes("f")), "Zg==");
  EXPECT_EQ(Base64Encode(AsBytes("fo")), "Zm8=");
  EXPECT_EQ(Base64Encode(AsBytes("foobar")), "Zm9vYmFy");
  EXPECT_EQ(AsString(*Base64Decode("Zg==")), "f");
  EXPECT_EQ(AsString(*Base64Decode("Zm8=")), "fo");
  EXPECT_EQ(AsString(*Base64Decode("Zm9vYmFy")), "foobar");
}

TEST(Base64, RejectsNonCanonicalText) {
  EXPECT_FALSE(Base64Decode("Zg="));
  EXPECT_FALSE(Base64Decode("Z==="));
  EXPECT_FALSE(Base64Decode("Zm9v YmFy"));
  EXPECT_FALSE(Base64Decode("Zm=vYmFy"));
  EXPECT_FALSE(Base64Decode("Zm9v!mFy"));
}

TEST(ConstantTimeEquals, ComparesContentsAndLengths) {
  EXPECT_TRUE(ConstantTimeEquals(AsBytes("abc"), AsBytes("abc")));
  EXPECT_FALSE(ConstantTimeEquals(AsBytes("abc"), AsBytes("abd")));
  EXPECT_FALSE(ConstantTimeEquals(AsBytes("abc"), AsBytes("ab")));
}

TEST(Keys, SignatureVerifiesOnlyForSameDataAndKey) {
  const PrivateKey key = NewKey();
  const Bytes sig = *key.Sign(AsBytes("message"));
  EXPECT_TRUE(key.Public().Verify(AsBytes("message"), sig).valid());
  EXPECT_EQ(key.Public().Verify(AsBytes("messagf"), sig).outcome(), Verdict::Outcome::kInvalid);
  EXPECT_EQ(NewKey().Public().Verify(AsBytes("message"), sig).outcome(),
            Verdict::Outcome::kInvalid);
}

TEST(Keys, GarbledSignatureIsInvalidNotCouldNotCheck) {
  const PrivateKey key = NewKey();
  Bytes sig = *key.Sign(AsBytes("m"));
  for (const Bytes& bad : {Bytes{}, Bytes{0x30, 0x00}, Bytes(72, 0xff)}) {
    EXPECT_EQ(key.Public().Verify(AsBytes("m"), bad).outcome(), Verdict::Outcome::kInvalid);
  }
  sig.push_back(0);  // trailing byte: not strict DER
  EXPECT_EQ(key.Public().Verify(AsBytes("m"), sig).outcome(), Verdict::Outcome::kInvalid);
}

TEST(Keys, PemAndDerRoundTripKeepFingerprint) {
  const PrivateKey key = NewKey();
  const PrivateKey again = *PrivateKey::FromPem(*key.ToPem());
  EXPECT_EQ(again.Public().Fingerprint(), key.Public().Fingerprint());
  EXPECT_EQ(PublicKey::FromDer(key.Public().Der())->Fingerprint(), key.Public().Fingerprint());
  EXPECT_EQ(PublicKey::FromPem(*key.Public().ToPem())->Fingerprint(), key.Public().Fingerprint());
  EXPECT_EQ(key.Public().Fingerprint().size(), 64u);
  EXPECT_EQ(key.Public().Fingerprint(), ToHex(*Sha256Of(key.Public().Der())));
}

TEST(Keys, RejectsOtherCurvesAndGarbage) {
  // An Ed25519 key: well-formed, but not what Aspis uses.
  auto ed = PrivateKey::FromPem(
      "-----BEGIN PRIVATE KEY-----\n"
      "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
      "-----END PRIVATE KEY-----\n");
  ASSERT_FALSE(ed);
  EXPECT_EQ(ed.error(), CryptoErrc::kUnsupportedKey);
  EXPECT_EQ(PublicKey::FromDer(AsBytes("not a key")).error(), CryptoErrc::kParse);
  Bytes der = NewKey().Public().Der();
  der.push_back(0);
  EXPECT_FALSE(PublicKey::FromDer(der));
}

TEST(Keys, UsualEncodingReadsToTheSameKeyAsOpenSsl) {
  const PrivateKey key = NewKey();
  const Bytes& der = key.Public().Der();  // encoded by OpenSSL
  auto parsed = PublicKey::FromDer(der);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->Der(), der);
  EXPECT_EQ(parsed->Fingerprint(), key.Public().Fingerprint());
  const Bytes sig = *key.Sign(AsBytes("m"));
  EXPECT_TRUE(parsed->Verify(AsBytes("m"), sig).valid());
}

TEST(Keys, OtherEncodingsOfP256StillReadThroughOpenSsl) {
  // The same kind of key with its point compressed: valid DER, read by OpenSSL's decoder.
  const Bytes compressed = {0x30, 0x39, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
                            0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03,
                            0x22, 0x00, 0x03, 0xd7, 0x02, 0xe5, 0xb9, 0x7e, 0xbc, 0x5a, 0x78, 0xc7,
                            0x95, 0x70, 0x6b, 0xf6, 0x92, 0xe7, 0x2f, 0x82, 0x5b, 0x89, 0x9d, 0x05,
                            0x69, 0x15, 0xf9, 0x7c, 0x2f, 0xce, 0x08, 0x26, 0x81, 0x1b, 0x14};
  auto key = PublicKey::FromDer(compressed);
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(key->Der().size(), compressed.size());
}

TEST(Keys, InvalidCurveAttackPointOffTheCurveIsRefused) {
  Bytes der = NewKey().Public().Der();
  std::fill(der.end() - 64, der.end(), 0x01);  // same encoding, a point not on P-256
  auto key = PublicKey::FromDer(der);
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error(), CryptoErrc::kParse);
}

TEST(Keys, EcPointRoundTripsThroughRs) {
  const PrivateKey key = NewKey();
  const Bytes& der = key.Public().Der();
  // The last 64 bytes of a P-256 SPKI are the point's x and y.
  const ByteView xy(der.data() + der.size() - 64, 64);
  auto from_point = PublicKey::FromEcPoint(xy.first(32), xy.last(32));
  ASSERT_TRUE(from_point);
  EXPECT_EQ(*from_point, key.Public());
  EXPECT_FALSE(PublicKey::FromEcPoint(Bytes(32, 1), Bytes(32, 2)));  // not on the curve

  const Bytes sig = *key.Sign(AsBytes("m"));
  auto rs = EcdsaDerToRs(sig);
  ASSERT_TRUE(rs);
  EXPECT_EQ(*EcdsaRsToDer(rs->r, rs->s), sig);
}

struct Pki {
  explicit Pki(Clock::TimePoint at = kNow)
      : root(*CreateSelfSigned(root_key, {.common_name = "Aspis Platform Root",
                                          .organization = "Aspis",
                                          .not_before = at - 1h,
                                          .lifetime = 24h * 3650,
                                          .is_ca = true,
                                          .path_length = 1})),
        tenant(*Issue(root, root_key, tenant_key.Public(),
                      {.common_name = "Tenant CA",
                       .not_before = at - 1h,
                       .lifetime = 24h * 730,
                       .is_ca = true,
                       .path_length = 0})) {}

  PrivateKey root_key = NewKey();
  Certificate root;
  PrivateKey tenant_key = NewKey();
  Certificate tenant;
};

CertificateProfile DeviceProfile(const std::string& device_id) {
  return {.common_name = device_id,
          .not_before = kNow,
          .lifetime = 24h,
          .client_auth = true,
          .san_uris = {"urn:aspis:tenant:t1:device:" + device_id},
          .policy_oids = {"1.3.6.1.4.1.99999.1.1"}};
}

TEST(X509, IssuedDeviceCertificateCarriesProfileAndChains) {
  Pki pki;
  const PrivateKey device = NewKey();
  const auto csr = *CertificateRequest::Create(device, "ignored-cn");
  ASSERT_TRUE(csr.VerifySignature().valid());
  const std::string id = device.Public().Fingerprint();
  auto cert = Issue(pki.tenant, pki.tenant_key, csr.SubjectPublicKey(), DeviceProfile(id));
  ASSERT_TRUE(cert) << cert.error().message();
  EXPECT_EQ(cert->SubjectCommonName(), id);
  EXPECT_EQ(cert->IssuerCommonName(), "Tenant CA");
  EXPECT_EQ(cert->NotAfter() - cert->NotBefore(), 24h);
  EXPECT_FALSE(cert->IsCa());
  EXPECT_EQ(cert->SanUris(), std::vector<std::string>{"urn:aspis:tenant:t1:device:" + id});
  EXPECT_EQ(cert->PolicyOids(), std::vector<std::string>{"1.3.6.1.4.1.99999.1.1"});
  EXPECT_EQ(cert->SubjectPublicKey(), device.Public());
  EXPECT_EQ(cert->SerialHex().size(), 32u);

  const std::vector<Certificate> intermediates{pki.tenant};
  const std::vector<Certificate> roots{pki.root};
  EXPECT_TRUE(VerifyChain(*cert, intermediates, roots, kNow + 1h).valid());
}

TEST(X509, ChainVerificationRejectsExpiredNotYetValidAndForeignRoots) {
  Pki pki;
  Pki other;
  const PrivateKey device = NewKey();
  auto cert = *Issue(pki.tenant, pki.tenant_key, device.Public(), DeviceProfile("d"));
  const std::vector<Certificate> intermediates{pki.tenant};
  const std::vector<Certificate> roots{pki.root};
  auto expired = VerifyChain(cert, intermediates, roots, kNow + 25h);
  EXPECT_EQ(expired.outcome(), Verdict::Outcome::kInvalid);
  EXPECT_NE(expired.reason().find("expired"), std::string::npos) << expired.reason();
  EXPECT_EQ(VerifyChain(cert, intermediates, roots, kNow - 1h).outcome(),
            Verdict::Outcome::kInvalid);
  const std::vector<Certificate> foreign{other.root};
  EXPECT_EQ(VerifyChain(cert, intermediates, foreign, kNow + 1h).outcome(),
            Verdict::Outcome::kInvalid);
  EXPECT_EQ(VerifyChain(cert, {}, roots, kNow + 1h).outcome(), Verdict::Outcome::kInvalid);
}

TEST(X509, CertificateFromAnotherTenantCaDoesNotChain) {
  Pki pki;
  const PrivateKey other_tenant_key = NewKey();
  auto other_tenant = *Issue(pki.root, pki.root_key, other_tenant_key.Public(),
                             {.common_name = "Other Tenant CA",
                              .not_before = kNow - 1h,
                              .lifetime = 24h * 700,
                              .is_ca = true,
                              .path_length = 0});
  auto cert = *Issue(other_tenant, other_tenant_key, NewKey().Public(), DeviceProfile("d"));
  // Both tenants chain to the platform root, so relying parties pin the tenant CA itself.
  const std::vector<Certificate> tenant_only{pki.tenant};
  EXPECT_EQ(VerifyChain(cert, {}, tenant_only, kNow + 1h).outcome(), Verdict::Outcome::kInvalid);
  // Pinned alone, the right tenant CA is enough.
  const std::vector<Certificate> other_only{other_tenant};
  EXPECT_TRUE(VerifyChain(cert, {}, other_only, kNow + 1h).valid());
}

TEST(X509, IssueRefusesNonCaMismatchedKeyAndOutlivingIssuer) {
  Pki pki;
  const PrivateKey device = NewKey();
  auto leaf = *Issue(pki.tenant, pki.tenant_key, device.Public(), DeviceProfile("d"));
  EXPECT_EQ(Issue(leaf, device, NewKey().Public(), DeviceProfile("e")).error(),
            CryptoErrc::kInvalidArgument);
  EXPECT_EQ(Issue(pki.tenant, pki.root_key, NewKey().Public(), DeviceProfile("e")).error(),
            CryptoErrc::kInvalidArgument);
  auto too_long = DeviceProfile("e");
  too_long.lifetime = 24h * 1000;
  EXPECT_EQ(Issue(pki.tenant, pki.tenant_key, NewKey().Public(), too_long).error(),
            CryptoErrc::kInvalidArgument);
  auto no_name = DeviceProfile("");
  EXPECT_FALSE(Issue(pki.tenant, pki.tenant_key, NewKey().Public(), no_name));
}

TEST(X509, NamesAreLiteralNotConfiguration) {
  Pki pki;
  // A device-chosen value with OpenSSL config syntax must not become extra names or extensions.
  auto profile = DeviceProfile("d");
  profile.san_uris = {"urn:x,URI:urn:evil,critical,CA:TRUE"};
  auto cert = *Issue(pki.tenant, pki.tenant_key, NewKey().Public(), profile);
  EXPECT_EQ(cert.SanUris(), std::vector<std::string>{"urn:x,URI:urn:evil,critical,CA:TRUE"});
  EXPECT_FALSE(cert.IsCa());
}

TEST(X509, PemChainRoundTripsAndRejectsGarbage) {
  Pki pki;
  const std::string pem = *pki.tenant.ToPem() + *pki.root.ToPem();
  auto chain = Certificate::ChainFromPem(pem);
  ASSERT_TRUE(chain);
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[1].Der(), pki.root.Der());
  EXPECT_EQ(Certificate::FromDer(pki.root.Der())->SubjectCommonName(), "Aspis Platform Root");
  EXPECT_FALSE(Certificate::ChainFromPem("no certificates here"));
  EXPECT_FALSE(Certificate::FromDer(AsBytes("\x30\x03\x02\x01\x01")));
  std::string truncated = pem.substr(0, pem.size() / 3);
  EXPECT_FALSE(Certificate::ChainFromPem(truncated + "\n-----END CERTIFICATE-----\n"));
}

TEST(X509, TrustBundleHoldsCertificatesAndPublisherKeysSideBySide) {
  Pki pki;
  const PrivateKey a = NewKey();
  const PrivateKey b = NewKey();
  const std::string bundle =
      *pki.root.ToPem() + *a.Public().ToPem() + *pki.tenant.ToPem() + *b.Public().ToPem();
  auto keys = PublicKey::AllFromPem(bundle);
  ASSERT_TRUE(keys) << keys.error().message();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0], a.Public());
  EXPECT_EQ((*keys)[1], b.Public());
  EXPECT_EQ(Certificate::ChainFromPem(bundle)->size(), 2u) << "the certificates read as before";
  EXPECT_TRUE(PublicKey::AllFromPem(*pki.root.ToPem())->empty());
  std::string damaged = *a.Public().ToPem();
  damaged.replace(40, 8, "!!!!!!!!");
  EXPECT_FALSE(PublicKey::AllFromPem(*pki.root.ToPem() + damaged));
}

TEST(X509, TamperedCertificateRequestFailsProofOfPossession) {
  const PrivateKey key = NewKey();
  auto csr = *CertificateRequest::Create(key, "device");
  EXPECT_EQ(csr.SubjectCommonName(), "device");
  EXPECT_TRUE(CertificateRequest::FromPem(*csr.ToPem())->VerifySignature().valid());
  Bytes der = csr.Der();
  der[der.size() - 5] ^= 0x01;  // inside the signature
  auto tampered = CertificateRequest::FromDer(der);
  ASSERT_TRUE(tampered);
  EXPECT_EQ(tampered->VerifySignature().outcome(), Verdict::Outcome::kInvalid);
  EXPECT_FALSE(CertificateRequest::FromDer(AsBytes("junk")));
}

TEST(X509, OpenSslVerifyAcceptsIssuedChain) {
  // Valid around the real clock, which the openssl command uses.
  const auto now = std::chrono::system_clock::now();
  Pki pki(now);
  testing::TempDir dir;
  auto profile = DeviceProfile("device");
  profile.not_before = now - 1min;
  auto leaf = *Issue(pki.tenant, pki.tenant_key, NewKey().Public(), profile);
  std::ofstream(dir / "root.pem") << *pki.root.ToPem();
  std::ofstream(dir / "tenant.pem") << *pki.tenant.ToPem();
  std::ofstream(dir / "leaf.pem") << *leaf.ToPem();
  auto result = testing::RunProcess({"openssl", "verify", "-x509_strict", "-purpose", "sslclient",
                                     "-CAfile", (dir / "root.pem").string(), "-untrusted",
                                     (dir / "tenant.pem").string(), (dir / "leaf.pem").string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find(": OK"), std::string::npos) << result.output;
  // And the same tool refuses it against a root that did not issue it.
  std::ofstream(dir / "other.pem") << *Pki(now).root.ToPem();
  auto foreign = testing::RunProcess({"openssl", "verify", "-CAfile", (dir / "other.pem").string(),
                                      "-untrusted", (dir / "tenant.pem").string(),
                                      (dir / "leaf.pem").string()});
  EXPECT_NE(foreign.exit_code, 0) << foreign.output;
}

TEST(Dsse, PaeMatchesTheSpecification) {
  EXPECT_EQ(AsString(dsse::Pae("http://example.com/HelloWorld", AsBytes("hello world"))),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
}

TEST(Dsse, SignedEnvelopeVerifiesAfterSerialization) {
  const std::vector<PrivateKey> keys{NewKey()};
  auto envelope = *dsse::Sign("application/vnd.aspis.test+json", AsBytes("{\"a\":1}"), keys);
  dsse::TrustedKeys trusted;
  trusted.Add(keys[0].Public());
  auto parsed = dsse::Parse(dsse::Serialize(envelope));
  ASSERT_TRUE(parsed);
  auto payload = dsse::Verify(*parsed, "application/vnd.aspis.test+json", trusted);
  ASSERT_TRUE(payload) << payload.error().message();
  EXPECT_EQ(AsString(*payload), "{\"a\":1}");
}

TEST(Dsse, ArbitrarySoftwareAttackSignedByUntrustedKeyIsRejected) {
  const std::vector<PrivateKey> attacker{NewKey()};
  auto envelope = *dsse::Sign("t", AsBytes("payload"), attacker);
  dsse::TrustedKeys trusted;
  trusted.Add(NewKey().Public());
  auto result = dsse::Verify(envelope, "t", trusted);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), CryptoErrc::kUntrusted);
  EXPECT_NE(result.error().message().find("untrusted key id"), std::string::npos);
}

TEST(Dsse, TamperedPayloadOrTypeConfusionIsRejected) {
  const std::vector<PrivateKey> keys{NewKey()};
  dsse::TrustedKeys trusted;
  trusted.Add(keys[0].Public());
  auto envelope = *dsse::Sign("type-a", AsBytes("payload"), keys);
  auto tampered = envelope;
  tampered.payload.back() ^= 1;
  EXPECT_EQ(dsse::Verify(tampered, "type-a", trusted).error(), CryptoErrc::kUntrusted);
  EXPECT_EQ(dsse::Verify(envelope, "type-b", trusted).error(), CryptoErrc::kUntrusted);
  auto retyped = envelope;
  retyped.payload_type = "type-b";
  EXPECT_EQ(dsse::Verify(retyped, "type-b", trusted).error(), CryptoErrc::kUntrusted);
}

TEST(Dsse, ThresholdCountsDistinctTrustedSigners) {
  const std::vector<PrivateKey> keys{NewKey(), NewKey()};
  dsse::TrustedKeys trusted;
  trusted.Add(keys[0].Public());
  trusted.Add(keys[1].Public());
  auto both = *dsse::Sign("t", AsBytes("p"), keys);
  EXPECT_TRUE(dsse::Verify(both, "t", trusted, 2));
  auto duplicated = both;
  duplicated.signatures[1] = duplicated.signatures[0];
  EXPECT_FALSE(dsse::Verify(duplicated, "t", trusted, 2));
}

TEST(Dsse, ParseRejectsMalformedEnvelopes) {
  EXPECT_FALSE(dsse::Parse("not json"));
  EXPECT_FALSE(dsse::Parse(R"({"payloadType":"t","payload":"!!!!","signatures":[]})"));
  EXPECT_FALSE(dsse::Parse(R"({"payloadType":"t","payload":"","signatures":{}})"));
  EXPECT_FALSE(dsse::Parse(R"({"payload":"","signatures":[]})"));
  EXPECT_FALSE(dsse::Parse(R"({"payloadType":"t","payload":"","signatures":[{"sig":5}]})"));
  std::string many = R"({"payloadType":"t","payload":"","signatures":[)";
  for (int i = 0; i < 17; ++i) many += std::string(i ? "," : "") + R"({"sig":""})";
  many += "]}";
  EXPECT_FALSE(dsse::Parse(many));
  EXPECT_FALSE(dsse::Parse(std::string(dsse::kMaxEnvelopeSize + 1, ' ')));
}

TEST(Aead, SealedSecretOpensOnlyWithSameKeyAndContext) {
  const Bytes key = *RandomBytes(aead::kKeySize);
  const Bytes sealed = *aead::Seal(key, AsBytes("secret"), AsBytes("ctx"));
  EXPECT_EQ(AsString(*aead::Open(key, sealed, AsBytes("ctx"))), "secret");
  EXPECT_EQ(aead::Open(key, sealed, AsBytes("other")).error(), CryptoErrc::kBadSignature);
  EXPECT_FALSE(aead::Open(*RandomBytes(aead::kKeySize), sealed, AsBytes("ctx")));
  Bytes tampered = sealed;
  tampered[14] ^= 1;
  EXPECT_FALSE(aead::Open(key, tampered, AsBytes("ctx")));
  EXPECT_FALSE(aead::Open(key, Bytes(10), AsBytes("ctx")));
  EXPECT_FALSE(aead::Seal(Bytes(16), AsBytes("x"), {}));
}

}  // namespace
}  // namespace aspis::crypto
