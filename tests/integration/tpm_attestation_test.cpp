// Attestation of TPM devices (swtpm, manufactured with EK certificates): the verifier's TPM rules,
// the hardware binding by credential activation, and the attacks on both.
#include "integration/attestation_fixture.hpp"

namespace aspis::service::attestation_test {
namespace {

using namespace std::chrono_literals;

// TPM devices, against swtpm manufactured with EK certificates from a CA the service trusts.
class TpmAttestation : public Attestation {
 protected:
  TpmAttestation() {
    tpm_ca_dir_ = swtpm_.ManufacturerCaDir();
    // The EK certificates were made by swtpm_setup just now (valid from this second), after the
    // fixture's clock was read: the service must not see them as not yet valid, however long
    // manufacturing took.
    clock_.Set(std::chrono::system_clock::now());
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
    auto extended =
        testing::RunProcess({"tpm2_pcrextend", "16:sha256=" + crypto::ToHex(event.digest)}, env);
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
    evidence.quote =
        wire::Quote{*file::Read(tpm.dir / "msg", 4096), *file::Read(tpm.dir / "sig", 4096)};
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
  auto attested = device::attest::Attest(client, *tpm.rot, tpm.events, tpm.runtime_key, tpm.app_key,
                                         roots, clock_.Now());
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
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
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
  const Json view = AttestationView(clone.Id());
  EXPECT_EQ(view.value("root_of_trust", ""), "unknown (not attested yet)");
  // The boot PCR values the file key "quoted" are not recorded, and cannot become golden.
  EXPECT_TRUE(view["boot_pcrs"].empty()) << view.dump();
  EXPECT_EQ(Policy(Json{{"pin_boot_pcrs_from_device", clone.Id()}}.dump()).status, 409);

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

}  // namespace
}  // namespace aspis::service::attestation_test
