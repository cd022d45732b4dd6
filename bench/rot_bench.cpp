// Root-of-trust latency (sign, extend, quote) on both backends, and quote verification, each
// printed beside OpenSSL's ECDSA P-256 sign and verify rates measured in the same run.
//   build/release/bench/rot_bench
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "crypto/key.hpp"
#include "rot/quote.hpp"
#include "rot/root_of_trust.hpp"
#include "support/swtpm.hpp"
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

void RotQuote(benchmark::State& state, rot::RootOfTrust* rot) {
  for (auto _ : state) {
    if (!rot->CreateQuote(kData)) state.SkipWithError("quote failed");
  }
}

void VerifyQuote(benchmark::State& state, rot::RootOfTrust* rot) {
  const auto quote = *rot->CreateQuote(kData);
  const auto key = rot->GetIdentity()->public_key;
  const rot::QuoteExpectation expected{kData, rot->RegisterIndex(), *rot->ReadRegister()};
  for (auto _ : state) {
    if (!rot::VerifyQuote(quote, key, expected).valid()) state.SkipWithError("quote invalid");
  }
}

// Prints the usual console table, then each figure beside the limit it is measured against.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.iterations > 0 && run.real_accumulated_time > 0) {
        rates_[run.benchmark_name()] =
            static_cast<double>(run.iterations) / run.real_accumulated_time;
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    const double sign = rates_["OpenSslSign"];
    const double verify = rates_["OpenSslVerify"];
    std::printf("\n%-28s %12s   %-34s %8s\n", "operation", "ops/s", "limit (same run)", "ratio");
    auto row = [&](const std::string& name, const char* limit_name, double limit) {
      const double rate = rates_[name];
      std::printf("%-28s %12.0f   %-22s %11.0f %8.3f\n", name.c_str(), rate, limit_name, limit,
                  limit > 0 ? rate / limit : 0.0);
    };
    for (const char* backend : {"software", "tpm2"}) {
      row(std::string("RotSign/") + backend, "OpenSSL ECDSA sign/s", sign);
      row(std::string("RotQuote/") + backend, "OpenSSL ECDSA sign/s", sign);
      row(std::string("RotExtend/") + backend, "OpenSSL ECDSA sign/s", sign);
    }
    row("VerifyQuote/software", "OpenSSL ECDSA verify/s", verify);
    row("VerifyQuote/tpm2", "OpenSSL ECDSA verify/s", verify);
  }

 private:
  std::map<std::string, double> rates_;
};

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
  for (auto* rot : {software->get(), tpm2->get()}) {
    const std::string backend(rot->Backend());
    benchmark::RegisterBenchmark(("RotSign/" + backend).c_str(), RotSign, rot);
    benchmark::RegisterBenchmark(("RotExtend/" + backend).c_str(), RotExtend, rot);
    benchmark::RegisterBenchmark(("RotQuote/" + backend).c_str(), RotQuote, rot);
    benchmark::RegisterBenchmark(("VerifyQuote/" + backend).c_str(), VerifyQuote, rot);
  }
  benchmark::Initialize(&argc, argv);
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
