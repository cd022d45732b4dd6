// Root-of-trust latency (sign, extend, quote) on both backends, and quote verification, each
// printed beside the limit it is bound by, measured in the same run: OpenSSL's ECDSA P-256 sign
// and verify rates, the durable-write rate of this disk (software register), and the round-trip
// rate of the cheapest TPM command, GetRandom (tpm2 backend). Then the TPM-held runtime key
// (tpm2-openssl provider, TPM behind tpm2-abrmd as on a device): a signature beside the broker's
// round trip, and a mutual-TLS handshake with it beside one with a software key. Last, the EK
// binding of a TPM device's first attestation: the service's checks and credential beside an
// ECDSA verify, and the device's TPM2_ActivateCredential beside the TPM round trip.
//   build/release/bench/rot_bench
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <openssl/ssl.h>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "crypto/tls.hpp"
#include "crypto/tpm_key.hpp"
#include "crypto/x509.hpp"
#include "limit_reporter.hpp"
#include "rot/credential.hpp"
#include "rot/endorsement.hpp"
#include "rot/quote.hpp"
#include "rot/root_of_trust.hpp"
#include "support/swtpm.hpp"
#include "support/tabrmd.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace aspis;

const Bytes kData(32, 0x5a);

void OpenSslSign(benchmark::State& state) {
  const auto key = *crypto::PrivateKey::GenerateP256();
  for (auto _ : state) benchmark::DoNotOptimize(key.Sign(kData));
}

void OpenSslVerify(benchmark::State& state) {
  const auto key = *crypto::PrivateKey::GenerateP256();
  const Bytes sig = *key.Sign(kData);
  for (auto _ : state) benchmark::DoNotOptimize(key.Public().Verify(kData, sig));
}

void DurableWrite(benchmark::State& state, const std::filesystem::path* path) {
  for (auto _ : state) {
    if (!file::WriteDurably(*path, kData, 0600)) state.SkipWithError("write failed");
  }
}

void TpmRoundTrip(benchmark::State& state, rot::RootOfTrust* rot) {
  for (auto _ : state) {
    if (!rot->Random(8)) state.SkipWithError("GetRandom failed");
  }
}

void RotSign(benchmark::State& state, rot::RootOfTrust* rot) {
  for (auto _ : state) {
    if (!rot->Sign(kData)) state.SkipWithError("sign failed");
  }
}

void RotExtend(benchmark::State& state, rot::RootOfTrust* rot) {
  const auto digest = *crypto::Sha256Of(kData);
  for (auto _ : state) {
    if (!rot->Extend(digest)) state.SkipWithError("extend failed");
  }
}

// On the TPM: the boot-PCR quote and the NvPCR certification.
void RotAttest(benchmark::State& state, rot::RootOfTrust* rot) {
  for (auto _ : state) {
    if (!rot->Attest(kData)) state.SkipWithError("attest failed");
  }
}

// The verifier's checks of what the backend signs: a quote of the software register, or on the
// TPM the boot-PCR quote and the NvPCR certification (two signatures).
void VerifyAttestation(benchmark::State& state, rot::RootOfTrust* rot) {
  const auto attestation = *rot->Attest(kData);
  const auto key = rot->GetIdentity()->public_key;
  const auto value = *rot->ReadRegister();
  const auto nv_name = *rot::NvPcrName();
  auto verify = [&] {
    if (!attestation.register_certification) {
      return rot::VerifyQuote(attestation.quote, key,
                              {kData, 1u << rot::kSoftwareRegister, std::span(&value, 1)});
    }
    Verdict quote = rot::VerifyQuote(attestation.quote, key,
                                     {kData, rot::BootPcrMask(), attestation.boot_pcrs});
    if (!quote.valid()) return quote;
    rot::AttestBody body;
    Verdict nv = rot::VerifySignedAttest(*attestation.register_certification, key, rot::kAttestNv,
                                         kData, &body);
    return nv.valid() ? rot::CheckNvCertifies(body, nv_name, value) : nv;
  };
  for (auto _ : state) {
    if (!verify().valid()) state.SkipWithError("attestation invalid");
  }
}

// What the verifier does once per TPM device: the EK certificate's chain to the manufacturer CAs,
// the EK and identity public areas, and a credential for the identity key's Name.
struct EkBinding {
  rot::Endorsement endorsement;
  crypto::PublicKey identity;
  std::vector<crypto::ForeignCertificate> manufacturer_cas;
};

Verdict BindEk(const EkBinding& b) {
  auto certificate = crypto::ForeignCertificate::FromDer(b.endorsement.ek_certificate);
  if (!certificate) return Verdict::Invalid("EK certificate unreadable");
  Verdict chain =
      crypto::VerifyChain(*certificate, {}, b.manufacturer_cas, std::chrono::system_clock::now());
  if (!chain.valid()) return chain;
  Verdict endorsed = rot::CheckEndorsement(*certificate, b.endorsement, b.identity);
  if (!endorsed.valid()) return endorsed;
  auto name = rot::ObjectName(b.endorsement.identity_public);
  auto secret = crypto::RandomBytes(rot::kMaxCredentialSecret);
  if (!name || !secret) return Verdict::Invalid("no name or secret");
  auto credential = rot::MakeCredential(b.endorsement.ek_public, *name, *secret);
  return credential ? Verdict::Valid() : Verdict::Invalid(credential.error().message());
}

void EkBindingService(benchmark::State& state, const EkBinding* binding) {
  for (auto _ : state) {
    if (Verdict v = BindEk(*binding); !v.valid()) state.SkipWithError(v.reason().c_str());
  }
}

void ActivateCredential(benchmark::State& state, rot::RootOfTrust* rot,
                        const rot::Endorsement* endorsement) {
  const Bytes secret(rot::kMaxCredentialSecret, 0x11);
  const auto credential = *rot::MakeCredential(
      endorsement->ek_public, *rot::ObjectName(endorsement->identity_public), secret);
  for (auto _ : state) {
    auto opened = rot->ActivateCredential(credential.credential_blob, credential.encrypted_secret);
    if (!opened || *opened != secret) state.SkipWithError("activation failed");
  }
}

void Endorse(benchmark::State& state, rot::RootOfTrust* rot) {
  for (auto _ : state) {
    auto endorsement = rot->Endorse();
    if (!endorsement || !*endorsement) state.SkipWithError("no endorsement");
  }
}

void KeySign(benchmark::State& state, const crypto::PrivateKey* key) {
  for (auto _ : state) {
    if (!key->Sign(kData)) state.SkipWithError("sign failed");
  }
}

// One TLS 1.3 handshake in memory (a BIO pair), the server asking for the client's certificate.
bool Handshake(const crypto::tls::Context& client, const crypto::tls::Context& server) {
  SSL* c = SSL_new(client.native());
  SSL* s = SSL_new(server.native());
  BIO* client_end = nullptr;
  BIO* server_end = nullptr;
  BIO_new_bio_pair(&client_end, 0, &server_end, 0);
  SSL_set_bio(c, client_end, client_end);
  SSL_set_bio(s, server_end, server_end);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  bool done = false;
  for (int round = 0; round < 20 && !done; ++round) {
    const int rc = SSL_do_handshake(c);
    const int rs = SSL_do_handshake(s);
    done = rc == 1 && rs == 1;
  }
  // TLS 1.3 servers take the client's Finished (and judge its certificate) on their next read.
  done = done && SSL_get0_peer_certificate(s) != nullptr && SSL_get_verify_result(s) == X509_V_OK;
  SSL_free(c);
  SSL_free(s);
  return done;
}

void MtlsHandshake(benchmark::State& state, const crypto::tls::Context* client,
                   const crypto::tls::Context* server) {
  for (auto _ : state) {
    if (!Handshake(*client, *server)) state.SkipWithError("handshake failed");
  }
}

Expected<std::vector<crypto::ForeignCertificate>> ReadCertificates(
    const std::filesystem::path& dir) {
  std::vector<crypto::ForeignCertificate> certificates;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    auto text = file::Read(entry.path(), file::kSmallFileLimit);
    if (!text) return std::unexpected(text.error());
    auto chain = crypto::ForeignCertificate::ChainFromPem(AsString(*text));
    if (!chain) return std::unexpected(chain.error());
    certificates.insert(certificates.end(), chain->begin(), chain->end());
  }
  return certificates;
}

}  // namespace

int main(int argc, char** argv) {
  aspis::testing::TempDir dir;
  aspis::testing::Swtpm swtpm;
  auto software = rot::Initialize({.backend = "software", .state_dir = dir / "software"});
  auto tpm2 = rot::Initialize({.backend = "tpm2", .state_dir = dir / "tpm2", .tcti = swtpm.Tcti()});
  if (!software || !tpm2) {
    std::fprintf(stderr, "rot_bench: %s\n",
                 (!software ? software.error() : tpm2.error()).message().c_str());
    return 1;
  }
  benchmark::RegisterBenchmark("OpenSslSign", OpenSslSign);
  benchmark::RegisterBenchmark("OpenSslVerify", OpenSslVerify);
  const std::filesystem::path scratch = dir / "durable-write.bin";
  benchmark::RegisterBenchmark("DurableWrite", DurableWrite, &scratch);
  benchmark::RegisterBenchmark("TpmRoundTrip", TpmRoundTrip, tpm2->get());
  for (auto* rot : {software->get(), tpm2->get()}) {
    const std::string backend(rot->Backend());
    benchmark::RegisterBenchmark(("RotSign/" + backend).c_str(), RotSign, rot);
    benchmark::RegisterBenchmark(("RotExtend/" + backend).c_str(), RotExtend, rot);
    benchmark::RegisterBenchmark(("RotAttest/" + backend).c_str(), RotAttest, rot);
    benchmark::RegisterBenchmark(("VerifyAttestation/" + backend).c_str(), VerifyAttestation, rot);
  }
  // The runtime key as aspisd holds it on a TPM device: the provider's connection goes through the
  // broker, which the root of trust shares.
  aspis::testing::Tabrmd broker;
  auto shared =
      rot::Initialize({.backend = "tpm2", .state_dir = dir / "shared", .tcti = broker.Tcti()});
  auto keys = crypto::TpmKeyStore::Open(broker.Tcti());
  auto tpm_key = keys ? keys->Generate() : std::unexpected(keys.error());
  if (!shared || !tpm_key) {
    std::fprintf(stderr, "rot_bench: %s\n",
                 (!shared ? shared.error() : tpm_key.error()).message().c_str());
    return 1;
  }
  using namespace std::chrono_literals;
  const auto now = std::chrono::system_clock::now();
  const auto ca_key = *crypto::PrivateKey::GenerateP256();
  const auto ca = *crypto::CreateSelfSigned(
      ca_key, {.common_name = "Bench CA", .not_before = now - 1h, .lifetime = 48h, .is_ca = true});
  const auto server_key = *crypto::PrivateKey::GenerateP256();
  const auto software_key = *crypto::PrivateKey::GenerateP256();
  auto leaf = [&](const crypto::PrivateKey& key, bool server) {
    return *crypto::Issue(ca, ca_key, key.Public(),
                          {.common_name = server ? "server" : "device",
                           .not_before = now - 1h,
                           .lifetime = 24h,
                           .client_auth = !server,
                           .server_auth = server});
  };
  const std::vector<crypto::Certificate> roots{ca};
  const std::vector<crypto::Certificate> server_chain{leaf(server_key, true)};
  const std::vector<crypto::Certificate> tpm_chain{leaf(*tpm_key, false)};
  const std::vector<crypto::Certificate> software_chain{leaf(software_key, false)};
  const auto server_tls = *crypto::tls::ServerContext(server_chain, server_key, roots);
  const auto tpm_tls = *crypto::tls::ClientContext(roots, tpm_chain, &*tpm_key);
  const auto software_tls = *crypto::tls::ClientContext(roots, software_chain, &software_key);
  benchmark::RegisterBenchmark("TpmRoundTrip/tabrmd", TpmRoundTrip, shared->get());
  benchmark::RegisterBenchmark("RuntimeKeySign/tpm", KeySign, &*tpm_key);
  benchmark::RegisterBenchmark("MtlsHandshake/software", MtlsHandshake, &software_tls, &server_tls);
  benchmark::RegisterBenchmark("MtlsHandshake/tpm", MtlsHandshake, &tpm_tls, &server_tls);

  // A TPM manufactured with an EK certificate from a local CA, as the TPM tests make them.
  aspis::testing::Swtpm endorsed_tpm({.endorsed = true});
  auto endorsed = rot::Initialize(
      {.backend = "tpm2", .state_dir = dir / "endorsed", .tcti = endorsed_tpm.Tcti()});
  auto endorsement = endorsed ? (*endorsed)->Endorse() : std::unexpected(endorsed.error());
  auto identity = endorsed ? (*endorsed)->GetIdentity() : std::unexpected(endorsed.error());
  auto manufacturer_cas = ReadCertificates(endorsed_tpm.ManufacturerCaDir());
  if (!endorsement || !*endorsement || !identity || !manufacturer_cas) {
    std::fprintf(stderr, "rot_bench: no EK binding to measure: %s\n",
                 !endorsement    ? endorsement.error().message().c_str()
                 : !*endorsement ? "the TPM has no EK certificate"
                 : !identity     ? identity.error().message().c_str()
                                 : manufacturer_cas.error().message().c_str());
    return 1;
  }
  const EkBinding binding{**endorsement, identity->public_key, *manufacturer_cas};
  if (Verdict v = BindEk(binding); !v.valid()) {
    std::fprintf(stderr, "rot_bench: the EK binding fails: %s\n", v.reason().c_str());
    return 1;
  }
  benchmark::RegisterBenchmark("EkBinding/service", EkBindingService, &binding);
  benchmark::RegisterBenchmark("Endorse/tpm2", Endorse, endorsed->get());
  benchmark::RegisterBenchmark("ActivateCredential/tpm2", ActivateCredential, endorsed->get(),
                               &**endorsement);

  benchmark::Initialize(&argc, argv);
  aspis::bench::LimitReporter reporter({{"RotSign/software", "OpenSslSign"},
                                        {"RotAttest/software", "OpenSslSign"},
                                        {"RotExtend/software", "DurableWrite"},
                                        {"RotSign/tpm2", "TpmRoundTrip"},
                                        {"RotAttest/tpm2", "TpmRoundTrip"},
                                        {"RotExtend/tpm2", "TpmRoundTrip"},
                                        {"VerifyAttestation/software", "OpenSslVerify"},
                                        {"VerifyAttestation/tpm2", "OpenSslVerify"},
                                        {"RuntimeKeySign/tpm", "TpmRoundTrip/tabrmd"},
                                        {"MtlsHandshake/tpm", "MtlsHandshake/software"},
                                        {"EkBinding/service", "OpenSslVerify"},
                                        {"Endorse/tpm2", "TpmRoundTrip"},
                                        {"ActivateCredential/tpm2", "TpmRoundTrip"}});
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
