// Image package verification, as the service does for every upload and a device for every
// download: Reader::Open (envelope, manifest, signature) then VerifyPayload (the payload streamed
// through SHA-256 in 64 KiB chunks) from a FileSource, on a 256 MiB package of random bytes
// written at startup (in the page cache). Beside it, the limit measured in the same run:
// crypto::Sha256 over the same 256 MiB in memory. To explain the gap, the read alone (FileSource
// into a 64 KiB buffer, no hashing) and the rate of reading then hashing one after the other.
// Then the peak RSS (VmHWM) of a process that only verifies the package, beside the 16 MiB a
// verifier may use whatever the package's size.
//   build/release/bench/package_bench --benchmark_min_time=2 --benchmark_repetitions=5
//   (add --benchmark_enable_random_interleaving=true on a machine with other load)
#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.hpp"
#include "crypto/dsse.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "crypto/sha256.hpp"
#include "package/package.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace aspis;

constexpr std::size_t kPayloadSize = std::size_t{256} << 20;
constexpr double kRssLimitKib = 16 * 1024;
constexpr std::string_view kVerifyOnly = "--verify-only";

// Opens the package, verifies its envelope with `keys` (as OS publisher keys), checks the payload.
Expected<void> Verify(const std::filesystem::path& package, const crypto::dsse::TrustedKeys& keys) {
  auto source = package::FileSource::Open(package);
  if (!source) return std::unexpected(source.error());
  auto reader = package::Reader::Open(*source, {.os = &keys});
  if (!reader) return std::unexpected(reader.error());
  return reader->VerifyPayload();
}

// A field of /proc/self/status in KiB ("VmRSS", "VmHWM"); -1 when absent.
long StatusKib(std::string_view field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
      return std::stol(line.substr(field.size() + 1));
    }
  }
  return -1;
}

// The child's whole job: verify the package and print "<VmRSS before> <VmHWM after>" in KiB.
int VerifyOnly(const std::filesystem::path& package, const std::filesystem::path& publisher) {
  const long before = StatusKib("VmRSS");
  auto der = file::Read(publisher, file::kSmallFileLimit);
  auto key = der ? crypto::PublicKey::FromDer(*der) : std::unexpected(der.error());
  if (!key) {
    std::fprintf(stderr, "package_bench: %s\n", key.error().message().c_str());
    return 1;
  }
  crypto::dsse::TrustedKeys keys;
  keys.Add(*key);
  if (auto ok = Verify(package, keys); !ok) {
    std::fprintf(stderr, "package_bench: %s\n", ok.error().message().c_str());
    return 1;
  }
  std::printf("%ld %ld\n", before, StatusKib("VmHWM"));
  return 0;
}

struct PeakRss {
  long start_kib = -1;  // the verifier process before it opens the package
  long peak_kib = -1;   // its high-water mark once the package is verified
};

// Runs this program again as a process that only verifies the package, and returns its VmHWM.
// A new executable image, not a fork: a forked child's RSS would count the pages it shares with
// this process (the 256 MiB payload in memory), and getrusage's ru_maxrss carries the high-water
// mark of the pre-exec image across exec, so only VmHWM of the new image is the verifier's own.
Expected<PeakRss> MeasurePeakRss(const std::filesystem::path& package,
                                 const std::filesystem::path& publisher) {
  int out[2];
  if (pipe(out) != 0) return Fail(CoreErrc::kIo, "pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args = {self, std::string(kVerifyOnly), package.string(),
                                   publisher.string()};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  std::string text;
  char buffer[256];
  for (ssize_t n; spawned == 0 && (n = read(out[0], buffer, sizeof buffer)) > 0;) {
    text.append(buffer, static_cast<std::size_t>(n));
  }
  close(out[0]);
  if (spawned != 0) return Fail(CoreErrc::kIo, "could not start the verifier process");
  int status = 0;
  waitpid(pid, &status, 0);
  PeakRss rss;
  std::istringstream figures(text);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
      !(figures >> rss.start_kib >> rss.peak_kib)) {
    return Fail(CoreErrc::kIo, "the verifier process failed");
  }
  return rss;
}

struct Fixture {
  Bytes payload;
  std::filesystem::path package;
  std::filesystem::path publisher;  // DER SubjectPublicKeyInfo of the OS publisher key
  crypto::dsse::TrustedKeys keys;
};

// An OS package of kPayloadSize random bytes, uncompressed, signed by a new OS publisher key.
Expected<void> MakePackage(const testing::TempDir& dir, Fixture& f) {
  auto payload = crypto::RandomBytes(kPayloadSize);
  if (!payload) return std::unexpected(payload.error());
  f.payload = std::move(*payload);
  if (auto ok = file::WriteDurably(dir / "payload", f.payload, 0600); !ok) return ok;
  auto key = crypto::PrivateKey::GenerateP256();
  if (!key) return std::unexpected(key.error());
  package::Manifest m;
  m.image_id = "6b1f8a0e-3c2d-4e5f-8a9b-0c1d2e3f4a5b";
  m.component_id = "0f0e0d0c-0b0a-4908-8706-050403020100";
  m.name = "aspis-os";
  m.kind = package::Kind::kOs;
  m.version = "24.10";
  m.payload.compression = package::Compression::kNone;
  m.target_boards = {"mt3620-virtual"};
  for (const char* name : {"os", "aspisd", "trust-bundle"}) m.measurements[name] = {};
  f.package = dir / "os.aspkg";
  auto written = package::Write(m, dir / "payload", std::span(&*key, 1), f.package);
  if (!written) return std::unexpected(written.error());
  std::filesystem::remove(dir / "payload");
  f.publisher = dir / "publisher.der";
  if (auto ok = file::WriteDurably(f.publisher, key->Public().Der(), 0600); !ok) return ok;
  f.keys.Add(key->Public());
  return {};
}

void Sha256Memory(benchmark::State& state, const Fixture* f) {
  for (auto _ : state) {
    auto hash = crypto::Sha256::Create();
    if (!hash || !hash->Update(f->payload)) {
      state.SkipWithError("sha256 failed");
      break;
    }
    benchmark::DoNotOptimize(hash->Finish());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f->payload.size()));
}

// What VerifyPayload pays besides hashing: read(2) copying the page cache into its 64 KiB chunk.
void ReadPackage(benchmark::State& state, const Fixture* f) {
  std::vector<std::uint8_t> chunk(std::size_t{64} << 10);
  for (auto _ : state) {
    auto source = package::FileSource::Open(f->package);
    if (!source) {
      state.SkipWithError(source.error().message().c_str());
      break;
    }
    for (auto n = source->Read(chunk); n && *n > 0; n = source->Read(chunk)) {
      benchmark::DoNotOptimize(chunk.data());
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f->payload.size()));
}

void VerifyPackage(benchmark::State& state, const Fixture* f) {
  for (auto _ : state) {
    if (auto ok = Verify(f->package, f->keys); !ok) {
      state.SkipWithError(ok.error().message().c_str());
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f->payload.size()));
}

// Google Benchmark's console table, then each operation's throughput beside its limit's (the
// median over repetitions of each, MB = 10^6 bytes), then the verifier's peak RSS beside 16 MiB.
class ThroughputReporter : public benchmark::ConsoleReporter {
 public:
  ThroughputReporter(std::vector<std::pair<std::string, std::string>> rows, double bytes_per_op,
                     PeakRss rss)
      : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular),
        rows_(std::move(rows)),
        bytes_per_op_(bytes_per_op),
        rss_(rss) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.run_type == Run::RT_Iteration && !run.error_occurred && run.iterations > 0 &&
          run.real_accumulated_time > 0) {
        rates_[run.run_name.function_name].push_back(
            static_cast<double>(run.iterations) * bytes_per_op_ / run.real_accumulated_time / 1e6);
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\n%-16s %10s %6s   %-16s %10s %7s\n", "operation", "MB/s", "runs",
                "limit (same run)", "MB/s", "ratio");
    for (const auto& [name, limit_name] : rows_) {
      if (rates_[name].empty() || rates_[limit_name].empty()) continue;  // filtered out
      const double rate = Median(rates_[name]);
      const double limit = Median(rates_[limit_name]);
      std::printf("%-16s %10.1f %6zu   %-16s %10.1f %7.3f\n", name.c_str(), rate,
                  rates_[name].size(), limit_name.c_str(), limit, limit > 0 ? rate / limit : 0.0);
    }
    // Reading and hashing one after the other, as VerifyPayload does: their times add up.
    const double sha = Median(rates_["Sha256Memory"]);
    const double read = Median(rates_["ReadPackage"]);
    if (sha > 0 && read > 0) {
      const double serial = 1 / (1 / sha + 1 / read);
      std::printf("%-16s %10.1f %6s   %-16s %10.1f %7.3f\n", "read, then hash", serial, "-",
                  "Sha256Memory", sha, serial / sha);
    }
    std::printf("\n%-16s %10s %10s   %-16s %7s\n", "process", "peak RSS", "at start", "limit",
                "ratio");
    const auto peak = static_cast<double>(rss_.peak_kib);
    const auto start = static_cast<double>(rss_.start_kib);
    std::printf("%-16s %6.1f MiB %6.1f MiB   %-16s %7.3f\n", "verify-only", peak / 1024,
                start / 1024, "16.0 MiB", peak / kRssLimitKib);
  }

 private:
  static double Median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const std::size_t mid = values.size() / 2;
    return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
  }

  std::vector<std::pair<std::string, std::string>> rows_;
  double bytes_per_op_;
  PeakRss rss_;
  std::map<std::string, std::vector<double>> rates_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && argv[1] == kVerifyOnly) return VerifyOnly(argv[2], argv[3]);
  testing::TempDir dir;
  Fixture fixture;
  if (auto ok = MakePackage(dir, fixture); !ok) {
    std::fprintf(stderr, "package_bench: %s\n", ok.error().message().c_str());
    return 1;
  }
  auto rss = MeasurePeakRss(fixture.package, fixture.publisher);
  if (!rss) {
    std::fprintf(stderr, "package_bench: %s\n", rss.error().message().c_str());
    return 1;
  }
  using Step = void (*)(benchmark::State&, const Fixture*);
  const std::pair<const char*, Step> steps[] = {{"Sha256Memory", Sha256Memory},
                                                {"ReadPackage", ReadPackage},
                                                {"VerifyPackage", VerifyPackage}};
  for (const auto& [name, step] : steps) {
    benchmark::RegisterBenchmark(name, step, &fixture)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  ThroughputReporter reporter({{"VerifyPackage", "Sha256Memory"}, {"ReadPackage", "Sha256Memory"}},
                              static_cast<double>(kPayloadSize), *rss);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
