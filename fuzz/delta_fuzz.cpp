// Deltas arrive from the network (the service relays them; a device applies them against its
// installed version), and tar payloads from publishers. Every input goes to the delta header
// reader, to the tar scanner, and to the applier against a small base of three files; the applier
// must refuse or rebuild exactly the expected bytes, never crash, write outside its destination,
// or leave a temporary file (seeds: a delta between two packages and a tar,
// fuzz/corpus/delta_fuzz).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "package/delta.hpp"
#include "package/delta_format.hpp"
#include "package/errors.hpp"
#include "package/tar_scan.hpp"

namespace {

using namespace aspis;

// The old version's files, as an installed tree holds them (those of the seed delta's base).
class MemoryBase final : public package::DeltaBase {
 public:
  Expected<std::uint64_t> Open(std::string_view path) override {
    const auto found = files_.find(std::string(path));
    if (found == files_.end()) return Fail(package::PackageErrc::kMismatch, "no such file");
    open_ = found->second;
    offset_ = 0;
    return open_.size();
  }
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override {
    const std::size_t n = std::min(buffer.size(), open_.size() - offset_);
    std::copy_n(open_.begin() + static_cast<std::ptrdiff_t>(offset_), n, buffer.begin());
    offset_ += n;
    return n;
  }

 private:
  std::map<std::string, std::string> files_ = {
      {"bin/app", std::string(4096, 'a')},
      {"etc/config", "key = value1\n"},
      {"app_manifest.json",
       R"({"SchemaVersion": 1, "Name": "seed", "ComponentId": )"
       R"("2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b", "EntryPoint": "/bin/app", "Capabilities": {}})"}};
  std::string open_;
  std::size_t offset_ = 0;
};

// Where the applier writes; removed when the fuzzer exits.
struct ScratchDirectory {
  ScratchDirectory()
      : path(std::filesystem::temp_directory_path() /
             ("delta_fuzz-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path);
  }
  ~ScratchDirectory() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView bytes(data, size);

  package::MemorySource header_source(bytes);
  const auto header = package::ReadDeltaHeader(header_source);

  package::MemorySource tar_source(bytes);
  package::TarScanner scanner(tar_source);
  std::array<std::uint8_t, 4096> chunk{};
  for (int entries = 0; entries < 10'000; ++entries) {
    auto entry = scanner.Next();
    if (!entry || !*entry) break;
    for (;;) {
      auto n = scanner.ReadData(chunk);
      if (!n || *n == 0) break;
    }
  }
  if (scanner.offset() > size) std::abort();

  if (header) {
    static const ScratchDirectory scratch;
    const std::filesystem::path& dir = scratch.path;
    const auto destination = dir / "rebuilt.aspkg";
    MemoryBase base;
    package::MemorySource delta(bytes);
    // The delta's own claims as the expectation: the applier must still check the bytes.
    const package::DeltaTarget expected{.sha256 = header->target_sha256,
                                        .size = header->target_size};
    if (package::ApplyDelta(delta, base, expected, destination)) {
      auto rebuilt = package::FileSource::Open(destination);
      auto hashed = rebuilt ? package::HashingSource::Wrap(*rebuilt)
                            : Expected<package::HashingSource>(std::unexpected(rebuilt.error()));
      if (!hashed) std::abort();
      for (Expected<std::size_t> n = 1; n && *n > 0;) n = hashed->Read(chunk);
      if (hashed->Finish() != expected.sha256 || hashed->count() != expected.size) std::abort();
    }
    std::error_code ec;
    std::filesystem::remove(destination, ec);
    if (!std::filesystem::is_empty(dir, ec)) std::abort();  // a temporary file left behind
  }
  return 0;
}
