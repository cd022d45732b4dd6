// Root-of-trust latency (sign, extend, quote) on both backends, and quote verification, each
// printed beside the limit it is bound by, measured in the same run: OpenSSL's ECDSA P-256 sign
// and verify rates, the durable-write rate of this disk (software register), and the round-trip
// rate of the cheapest TPM command, GetRandom (tpm2 backend).
//   build/release/bench/rot_bench
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "core/file.hpp"
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
    std::printf("\n%-22s %10s   %-28s %10s %7s\n", "operation", "ops/s", "limit (same run)",
                "ops/s", "ratio");
    const std::pair<const char*, const char*> rows[] = {
        {"RotSign/software", "OpenSslSign"},       {"RotQuote/software", "OpenSslSign"},
        {"RotExtend/software", "DurableWrite"},    {"RotSign/tpm2", "TpmRoundTrip"},
        {"RotQuote/tpm2", "TpmRoundTrip"},         {"RotExtend/tpm2", "TpmRoundTrip"},
        {"VerifyQuote/software", "OpenSslVerify"}, {"VerifyQuote/tpm2", "OpenSslVerify"},
    };
    for (const auto& [name, limit_name] : rows) {
      const double rate = rates_[name];
      const double limit = rates_[limit_name];
      std::printf("%-22s %10.0f   %-28s %10.0f %7.3f\n", name, rate, limit_name, limit,
                  limit > 0 ? rate / limit : 0.0);
    }
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
  const std::filesystem::path scratch = dir / "durable-write.bin";
  benchmark::RegisterBenchmark("DurableWrite", DurableWrite, &scratch);
  benchmark::RegisterBenchmark("TpmRoundTrip", TpmRoundTrip, tpm2->get());
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
