// What the security service's crypto costs per attestation, step by step, beside the ECDSA P-256
// sign and verify each step is bound by (measured in the same run): parsing the identity key and
// the two requests, checking their signatures, issuing the two certificates, encoding them.
//   build/release/bench/crypto_bench
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "crypto/key.hpp"
#include "crypto/x509.hpp"
#include "limit_reporter.hpp"

namespace {

using namespace aspis;
using namespace std::chrono_literals;

const Bytes kData(32, 0x5a);

struct Fixture {
  crypto::PrivateKey ca_key = *crypto::PrivateKey::GenerateP256();
  crypto::Certificate ca =
      *crypto::CreateSelfSigned(ca_key, {.common_name = "Aspis Tenant CA t",
                                         .not_before = std::chrono::system_clock::now(),
                                         .lifetime = 24h * 365,
                                         .is_ca = true});
  crypto::PrivateKey device_key = *crypto::PrivateKey::GenerateP256();
  Bytes csr_der = crypto::CertificateRequest::Create(device_key, "device")->Der();
  crypto::CertificateProfile profile{
      .common_name = "device",
      .not_before = std::chrono::system_clock::now(),
      .lifetime = 24h,
      .client_auth = true,
      .san_uris = {"urn:aspis:tenant:t:device:d"},
      .policy_oids = {"2.25.311582474623116484012930744116426097721.1"}};
};

const Fixture& Data() {
  static const Fixture fixture;
  return fixture;
}

void OpenSslSign(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Data().ca_key.Sign(kData));
}

void OpenSslVerify(benchmark::State& state) {
  const Bytes sig = *Data().ca_key.Sign(kData);
  for (auto _ : state) benchmark::DoNotOptimize(Data().ca_key.Public().Verify(kData, sig));
}

void PublicKeyFromDer(benchmark::State& state) {
  const Bytes der = Data().device_key.Public().Der();
  for (auto _ : state) benchmark::DoNotOptimize(crypto::PublicKey::FromDer(der));
}

void RequestFromDerAndVerify(benchmark::State& state) {
  for (auto _ : state) {
    auto csr = crypto::CertificateRequest::FromDer(Data().csr_der);
    if (!csr || !csr->VerifySignature().valid()) state.SkipWithError("request");
  }
}

void IssueCertificate(benchmark::State& state) {
  const auto& d = Data();
  const auto subject = d.device_key.Public();
  for (auto _ : state) {
    if (!crypto::Issue(d.ca, d.ca_key, subject, d.profile)) state.SkipWithError("issue");
  }
}

void CertificateToPem(benchmark::State& state) {
  const auto cert =
      *crypto::Issue(Data().ca, Data().ca_key, Data().device_key.Public(), Data().profile);
  for (auto _ : state) benchmark::DoNotOptimize(cert.ToPem());
}

}  // namespace

int main(int argc, char** argv) {
  using Step = void (*)(benchmark::State&);
  const std::pair<const char*, Step> steps[] = {
      {"OpenSslSign", OpenSslSign},           {"OpenSslVerify", OpenSslVerify},
      {"PublicKeyFromDer", PublicKeyFromDer}, {"RequestFromDerAndVerify", RequestFromDerAndVerify},
      {"IssueCertificate", IssueCertificate}, {"CertificateToPem", CertificateToPem}};
  for (const auto& [name, step] : steps) benchmark::RegisterBenchmark(name, step);
  benchmark::Initialize(&argc, argv);
  aspis::bench::LimitReporter reporter({{"PublicKeyFromDer", "OpenSslVerify"},
                                        {"RequestFromDerAndVerify", "OpenSslVerify"},
                                        {"IssueCertificate", "OpenSslSign"},
                                        {"CertificateToPem", "OpenSslSign"}});
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
