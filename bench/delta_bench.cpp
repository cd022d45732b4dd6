// Deltas on a realistic pair: two OS root trees a Debian update apart (bench/make_os_pair.sh),
// each packed as an OS package. Measures, in one run and on the same tars, the full compressed
// package; Aspis's delta (size, make time and peak RSS, apply time and peak RSS from the installed
// tree and from the old package); `zstd --patch-from` and `bsdiff` between the two uncompressed
// tars (size, time, peak RSS of making and applying). Prints each figure beside its limit: a delta
// of at most 9 % of the full package, an apply under 64 MiB.
//   bench/make_os_pair.sh /var/tmp/aspis-os-pair
//   build/release/bench/delta_bench --old-tree /var/tmp/aspis-os-pair/old
//     --new-tree /var/tmp/aspis-os-pair/new      (one line)
// Every measured step runs as its own process under /usr/bin/time (GNU time: elapsed seconds and
// maximum resident set size), this program included (--make, --apply).
#include <sys/wait.h>
#include <unistd.h>

#include <clocale>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "package/archive.hpp"
#include "package/delta.hpp"
#include "package/measure.hpp"
#include "package/payload_compression.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace aspis;
namespace fs = std::filesystem;

constexpr double kDeltaLimitPercent = 9.0;
constexpr double kApplyRssLimitMib = 64.0;
constexpr char kComponent[] = "6d3c1f0e-2b4a-4c5d-8e9f-a0b1c2d3e4f5";

[[noreturn]] void Die(const std::string& what) {
  (void)std::fprintf(stderr, "delta_bench: %s\n", what.c_str());
  std::exit(1);  // NOLINT(concurrency-mt-unsafe): the benchmark runs on one thread
}

template <typename T>
T Must(Expected<T> value, const std::string& what) {
  if (!value) Die(what + ": " + value.error().message());
  return std::move(*value);
}

// Packs `tree` as `aspis image-package pack-os` does, signed with `key`.
fs::path PackOs(const fs::path& tree, const fs::path& dir, const std::string& version,
                const crypto::PrivateKey& key) {
  const fs::path payload = dir / (version + ".payload");
  auto packed =
      Must(package::PackDirectory(tree, payload, {.symlinks = true}), "packing " + tree.string());
  package::Manifest m;
  m.image_id = Must(crypto::RandomUuid(), "uuid");
  m.component_id = kComponent;
  m.name = "Aspis OS";
  m.kind = package::Kind::kOs;
  m.version = version;
  m.security_version = 1;
  m.target_boards = {"mt3620-virtual"};
  m.measurements = Must(package::MeasureOsTree(tree), "measuring " + tree.string());
  m.payload.compression = package::Compression::kZstd;
  m.payload.unpacked_size = packed.unpacked_size;
  const fs::path out = dir / (version + ".aspkg");
  Must(package::Write(m, payload, std::span(&key, 1), out), "signing");
  fs::remove(payload);
  return out;
}

// The package's payload, decompressed: its tar.
void ExtractTar(const fs::path& package, const fs::path& tar) {
  auto file = Must(package::FileSource::Open(package), "opening");
  Must(package::Reader::Inspect(file), "reading " + package.string());
  auto zstd = Must(package::ZstdSource::Create(file, 27, true), "zstd");
  std::ofstream out(tar, std::ios::binary);
  std::vector<std::uint8_t> chunk(1 << 20);
  for (std::size_t n = 0; (n = Must(zstd.Read(chunk), "decompressing")) > 0;) {
    out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(n));
  }
}

struct Measured {
  double seconds = 0;
  double peak_mib = 0;
  std::string output;
};

// Runs `args` under /usr/bin/time; dies unless it succeeds.
Measured Run(const std::vector<std::string>& args, const fs::path& scratch) {
  const fs::path times = scratch / "time.txt";
  const fs::path out = scratch / "out.txt";
  std::string command = "/usr/bin/time -f '%e %M' -o '" + times.string() + "'";
  for (const auto& a : args) command += " '" + a + "'";
  command += " > '" + out.string() + "'";
  // NOLINTNEXTLINE(cert-env33-c,concurrency-mt-unsafe): one thread, the benchmark's own command
  const int rc = std::system(command.c_str());
  std::ifstream t(times);
  std::string line, last;
  while (std::getline(t, line)) last = line;  // a failing command adds a line before the figures
  Measured m;
  std::istringstream figures(last);
  double kib = 0;
  figures >> m.seconds >> kib;
  m.peak_mib = kib / 1024;
  std::ifstream o(out);
  m.output.assign(std::istreambuf_iterator<char>(o), {});
  if (rc != 0) Die("failed: " + command + "\n" + m.output);
  return m;
}

double Mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

int MakeMode(const fs::path& old_package, const fs::path& new_package, const fs::path& delta) {
  auto made = Must(package::MakeDelta(old_package, new_package, delta), "making the delta");
  std::printf("%llu %llu %llu %llu\n", static_cast<unsigned long long>(made.copied_files),
              static_cast<unsigned long long>(made.patched_files),
              static_cast<unsigned long long>(made.literal_files),
              static_cast<unsigned long long>(made.tar_size));
  return 0;
}

int ApplyMode(const fs::path& base_path, const fs::path& delta, const fs::path& out,
              const std::string& sha256, const std::string& size) {
  std::unique_ptr<package::DeltaBase> base;
  if (fs::is_directory(base_path)) {
    base = Must(package::TreeBase::Create(base_path), "opening the tree");
  } else {
    base = Must(package::PackageBase::Create(base_path), "opening the old package");
  }
  package::DeltaTarget target;
  const Bytes digest = Must(HexDecode(sha256), "sha256");
  std::copy(digest.begin(), digest.end(), target.sha256.begin());
  target.size = std::stoull(size);
  auto source = Must(package::FileSource::Open(delta), "opening the delta");
  Must(package::ApplyDelta(source, *base, target, out), "applying the delta");
  return 0;
}

void Row(const char* what, std::uint64_t bytes, double full, const Measured* make,
         const Measured* apply) {
  std::printf("%-34s %12.2f %7.2f %%", what, Mib(bytes), 100.0 * static_cast<double>(bytes) / full);
  if (make == nullptr || apply == nullptr) {
    std::printf(" %10s %9s %11s %9s\n", "-", "-", "-", "-");
    return;
  }
  std::printf(" %8.1f s %9.1f %9.1f s %9.1f\n", make->seconds, make->peak_mib, apply->seconds,
              apply->peak_mib);
}

int Bench(const fs::path& old_tree, const fs::path& new_tree, const fs::path& self) {
  const testing::TempDir dir;
  const auto key = Must(crypto::PrivateKey::GenerateP256(), "key");
  std::printf("packing the two trees...\n");
  const fs::path old_package = PackOs(old_tree, dir.path(), "1.0", key);
  const fs::path new_package = PackOs(new_tree, dir.path(), "1.1", key);
  const Bytes new_bytes = Must(file::Read(new_package, std::size_t{4} << 30), "reading");
  const std::string sha256 = crypto::ToHex(Must(crypto::Sha256Of(new_bytes), "hash"));
  const auto full = static_cast<double>(new_bytes.size());
  const fs::path delta = dir / "os.delta";

  std::printf("making and applying the Aspis delta...\n");
  const Measured make =
      Run({self.string(), "--make", old_package.string(), new_package.string(), delta.string()},
          dir.path());
  std::istringstream stats(make.output);
  std::uint64_t copied = 0, patched = 0, literal = 0, tar_size = 0;
  stats >> copied >> patched >> literal >> tar_size;
  const std::uint64_t delta_size = fs::file_size(delta);
  const std::string size = std::to_string(new_bytes.size());
  const Measured from_tree = Run({self.string(), "--apply", old_tree.string(), delta.string(),
                                  (dir / "from-tree.aspkg").string(), sha256, size},
                                 dir.path());
  const Measured from_package = Run({self.string(), "--apply", old_package.string(), delta.string(),
                                     (dir / "from-package.aspkg").string(), sha256, size},
                                    dir.path());

  std::printf("zstd --patch-from and bsdiff on the uncompressed tars...\n");
  const fs::path old_tar = dir / "old.tar";
  const fs::path new_tar = dir / "new.tar";
  ExtractTar(old_package, old_tar);
  ExtractTar(new_package, new_tar);
  const fs::path zpatch = dir / "zstd.patch";
  const Measured zmake =
      Run({"zstd", "-q", "-f", "-19", "--long=31", "--patch-from=" + old_tar.string(),
           new_tar.string(), "-o", zpatch.string()},
          dir.path());
  const Measured zapply =
      Run({"zstd", "-q", "-f", "-d", "--long=31", "--patch-from=" + old_tar.string(),
           zpatch.string(), "-o", (dir / "zstd.tar").string()},
          dir.path());
  const fs::path bpatch = dir / "bsdiff.patch";
  const Measured bmake =
      Run({"bsdiff", old_tar.string(), new_tar.string(), bpatch.string()}, dir.path());
  const Measured bapply = Run(
      {"bspatch", old_tar.string(), (dir / "bsdiff.tar").string(), bpatch.string()}, dir.path());

  std::printf(
      "\nold package %.2f MiB, new package %.2f MiB (tar %.2f MiB); delta: %llu files "
      "copied, %llu patched, %llu sent whole\n",
      Mib(fs::file_size(old_package)), Mib(new_bytes.size()), Mib(tar_size),
      static_cast<unsigned long long>(copied), static_cast<unsigned long long>(patched),
      static_cast<unsigned long long>(literal));
  std::printf("\n%-34s %12s %9s %10s %9s %11s %9s\n", "method", "size MiB", "of full", "make",
              "make MiB", "apply", "apply MiB");
  Row("full package (zstd -3)", new_bytes.size(), full, nullptr, nullptr);
  Row("Aspis delta, from installed tree", delta_size, full, &make, &from_tree);
  Row("Aspis delta, from old package", delta_size, full, &make, &from_package);
  Row("zstd -19 --long=31 --patch-from", fs::file_size(zpatch), full, &zmake, &zapply);
  Row("bsdiff 4.3", fs::file_size(bpatch), full, &bmake, &bapply);

  const double percent = 100.0 * static_cast<double>(delta_size) / full;
  const double peak = std::max(from_tree.peak_mib, from_package.peak_mib);
  std::printf("\n%-34s %10s %10s %7s\n", "figure", "measured", "limit", "ratio");
  std::printf("%-34s %8.2f %% %8.2f %% %7.2f\n", "delta size / full package", percent,
              kDeltaLimitPercent, percent / kDeltaLimitPercent);
  std::printf("%-34s %6.1f MiB %6.1f MiB %7.2f\n", "apply peak RSS (both bases)", peak,
              kApplyRssLimitMib, peak / kApplyRssLimitMib);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // libarchive turns non-ASCII file names (a Debian tree has some) into pax UTF-8 through the
  // locale's character set; the C locale has none. aspis itself has the same limitation.
  (void)std::setlocale(LC_ALL, "C.UTF-8");  // NOLINT(concurrency-mt-unsafe): before any thread
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 4 && args[0] == "--make") return MakeMode(args[1], args[2], args[3]);
  if (args.size() == 6 && args[0] == "--apply") {
    return ApplyMode(args[1], args[2], args[3], args[4], args[5]);
  }
  if (args.size() == 4 && args[0] == "--old-tree" && args[2] == "--new-tree") {
    return Bench(args[1], args[3], fs::read_symlink("/proc/self/exe"));
  }
  (void)std::fprintf(stderr, "usage: delta_bench --old-tree DIR --new-tree DIR\n");
  return 2;
}
