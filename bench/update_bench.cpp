// Install time of an app update, as aspisd's app agent does it (update::AppAgent): the staged
// package verified again, its payload streamed to disk while hashed, unpacked beside the running
// version, flushed, `current` switched, the health check, the previous version removed, each step
// persisted first. Two versions of a 16 MiB app (a program and a data file of random bytes, so the
// payload does not compress) are installed in turn. Beside it, the limit measured in the same run:
// the least an install must do, which is to verify the package and unpack its payload
// (Reader::Open, UnpackPayload into a fresh directory), without the agent's records, switch and
// removal.
//   build/release/bench/update_bench --benchmark_min_time=2 --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "device/state/state_store.hpp"
#include "device/update/app_agent.hpp"
#include "device/update/app_health.hpp"
#include "device/update/unpack.hpp"
#include "package/archive.hpp"
#include "package/package.hpp"
#include "support/app_package.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace aspis;
using namespace aspis::device::update;

constexpr char kComponent[] = "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b";
constexpr std::size_t kDataSize = std::size_t{16} << 20;

class Fixture {
 public:
  Fixture() {
    keys_.Add(key_.Public());
    (void)file::EnsureDirectory(dir_ / "state", 0700);
    for (int v = 0; v < 2; ++v) targets_.push_back(Pack(v));
  }

  const AppTarget& Target(int v) const { return targets_[static_cast<std::size_t>(v)]; }
  const fs::path& dir() const { return dir_.path(); }
  package::Publishers Publishers() const { return {.apps = &keys_}; }

 private:
  AppTarget Pack(int v) {
    const fs::path tree = dir_ / ("tree-" + std::to_string(v));
    fs::create_directories(tree / "bin");
    std::ofstream(tree / "bin/app") << "#!/bin/sh\necho " << v << "\n";
    fs::permissions(tree / "bin/app", fs::perms::owner_all);
    std::ofstream(tree / "app_manifest.json")
        << R"({"SchemaVersion": 1, "Name": "blink", "ComponentId": ")" << kComponent
        << R"(", "EntryPoint": "/bin/app", "Capabilities": {}})";
    (void)file::WriteDurably(tree / "data.bin", *crypto::RandomBytes(kDataSize), 0644);
    const std::string version = "1." + std::to_string(v);
    const fs::path path = dir_ / ("blink-" + version + ".aspkg");
    auto m = testing::PackApp(tree, path, key_, version);
    return {kComponent, m ? m->image_id : "", version, 1, path};
  }

  testing::TempDir dir_;
  crypto::PrivateKey key_ = *crypto::PrivateKey::GenerateP256();
  crypto::dsse::TrustedKeys keys_;
  std::vector<AppTarget> targets_;
};

Fixture& Shared() {
  static Fixture fixture;
  return fixture;
}

void AppUpdate(benchmark::State& state) {
  Fixture& f = Shared();
  device::state::StateStore store(file::RealFileSystem(), f.dir() / "state");
  auto agent = AppAgent::Open({.store = store,
                               .apps_dir = f.dir() / "apps",
                               .publishers = [&f] { return f.Publishers(); },
                               .health = CheckAppRunsHere});
  if (!agent) {
    state.SkipWithError(agent.error().message().c_str());
    return;
  }
  int v = 0;
  for (auto _ : state) {
    v = 1 - v;
    if (auto ok = agent->Install(f.Target(v)); !ok) {
      state.SkipWithError(ok.error().message().c_str());
      return;
    }
    if (agent->records().at(kComponent).installed_image_id != f.Target(v).image_id) {
      state.SkipWithError("the update was not installed");
      return;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kDataSize));
}

void VerifyAndUnpack(benchmark::State& state) {
  Fixture& f = Shared();
  const fs::path target = f.dir() / "unpacked";
  for (auto _ : state) {
    fs::remove_all(target);
    auto source = package::FileSource::Open(f.Target(0).package);
    auto reader = source ? package::Reader::Open(*source, f.Publishers())
                         : Expected<package::Reader>(std::unexpected(source.error()));
    auto unpacked = reader ? UnpackPayload(*reader, target, {})
                           : Expected<void>(std::unexpected(reader.error()));
    if (!unpacked) {
      state.SkipWithError(unpacked.error().message().c_str());
      return;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kDataSize));
}

BENCHMARK(AppUpdate)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(VerifyAndUnpack)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
