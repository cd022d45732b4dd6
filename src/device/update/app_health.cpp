#include "device/update/app_health.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <array>
#include <bit>
#include <cstring>

#include "core/bytes.hpp"
#include "core/fd.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "device/update/errors.hpp"
#include "package/app_manifest.hpp"

namespace aspis::device::update {

namespace fs = std::filesystem;

namespace {

#if defined(__x86_64__)
constexpr Elf64_Half kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr Elf64_Half kMachine = EM_AARCH64;
#elif defined(__arm__)
constexpr Elf64_Half kMachine = EM_ARM;
#elif defined(__riscv)
constexpr Elf64_Half kMachine = EM_RISCV;
#else
#error "no ELF machine is known for this architecture"
#endif
constexpr unsigned char kClass = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
constexpr unsigned char kData =
    std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;

constexpr std::size_t kMaxAppManifest = std::size_t{64} << 10;

Error Unhealthy(const std::string& why) { return Error(UpdateErrc::kUnhealthy, why); }

// The ELF header fields that decide whether this machine can load the file: e_ident, e_type and
// e_machine lie at the same offsets in ELF32 and ELF64.
Expected<void> CheckElf(const std::array<unsigned char, 256>& head, std::size_t got,
                        const std::string& entry) {
  if (got < EI_NIDENT + 4) return std::unexpected(Unhealthy(entry + " is a truncated ELF file"));
  if (head[EI_CLASS] != kClass || head[EI_DATA] != kData) {
    return std::unexpected(
        Unhealthy(entry + " is an ELF file of another word size or byte order than this device"));
  }
  std::uint16_t type = 0;
  std::uint16_t machine = 0;
  std::memcpy(&type, head.data() + EI_NIDENT, sizeof(type));
  std::memcpy(&machine, head.data() + EI_NIDENT + 2, sizeof(machine));
  if (type != ET_EXEC && type != ET_DYN) {
    return std::unexpected(Unhealthy(entry + " is an ELF file but not an executable"));
  }
  if (machine != kMachine) {
    return std::unexpected(Unhealthy(fmt::format(
        "{} is built for ELF machine {}, not this device's {}", entry, machine, kMachine)));
  }
  return {};
}

Expected<void> CheckScript(const std::array<unsigned char, 256>& head, std::size_t got,
                           const std::string& entry) {
  const std::string line(reinterpret_cast<const char*>(head.data()) + 2, got - 2);
  const std::size_t start = line.find_first_not_of(" \t");
  const std::size_t end = line.find_first_of(" \t\n", start);
  const std::string interpreter = start == std::string::npos ? "" : line.substr(start, end - start);
  if (interpreter.empty() || interpreter.front() != '/' ||
      ::access(interpreter.c_str(), X_OK) != 0) {
    return std::unexpected(Unhealthy(entry + "'s interpreter \"" +
                                     text::Truncated(interpreter, 200) +
                                     "\" is not an executable on this device"));
  }
  return {};
}

}  // namespace

Expected<void> CheckAppRunsHere(const fs::path& version_dir) {
  auto text = file::Read(version_dir / "app_manifest.json", kMaxAppManifest);
  if (!text) return std::unexpected(Unhealthy("the app has no readable app_manifest.json"));
  auto manifest = json::Parse(AsString(*text));
  std::string entry;
  if (manifest && manifest->is_object()) {
    const auto it = manifest->find("EntryPoint");
    if (it != manifest->end() && it->is_string()) entry = it->get<std::string>();
  }
  const fs::path relative = fs::path(entry).relative_path().lexically_normal();
  const std::string shown = text::Truncated(entry, 200);  // in messages: the app wrote it
  if (entry.empty() || entry.front() != '/' || relative.empty() || *relative.begin() == "..") {
    return std::unexpected(Unhealthy("the app manifest's EntryPoint is not a path in the app"));
  }
  // Each component is opened without following links, so the entry point is inside the app.
  Fd at(::open(version_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  for (auto part = relative.begin(); at.get() >= 0 && part != relative.end(); ++part) {
    const bool last = std::next(part) == relative.end();
    at = Fd(::openat(at.get(), part->c_str(),
                     (last ? O_RDONLY : O_RDONLY | O_DIRECTORY) | O_CLOEXEC | O_NOFOLLOW));
  }
  struct stat st {};
  if (at.get() < 0 || ::fstat(at.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::unexpected(Unhealthy("the entry point " + shown + " is not a file in the app"));
  }
  if ((st.st_mode & S_IXUSR) == 0) {
    return std::unexpected(Unhealthy("the entry point " + shown + " is not executable"));
  }
  // As much as the kernel reads of a `#!` line.
  std::array<unsigned char, 256> head{};
  const ssize_t got = ::pread(at.get(), head.data(), head.size(), 0);
  if (got < 0) return std::unexpected(Unhealthy("cannot read the entry point " + shown));
  const auto size = static_cast<std::size_t>(got);
  if (size >= 4 && std::memcmp(head.data(), ELFMAG, SELFMAG) == 0) {
    return CheckElf(head, size, shown);
  }
  if (size >= 2 && head[0] == '#' && head[1] == '!') return CheckScript(head, size, shown);
  return std::unexpected(
      Unhealthy("the entry point " + shown + " is neither an ELF executable nor a script"));
}

Expected<void> CheckAppFitsBoard(const board::BoardDefinition& board, const fs::path& version_dir) {
  auto mine = package::ReadAppManifest(version_dir);
  if (!mine) return std::unexpected(Unhealthy("its app manifest: " + mine.error().message()));
  const fs::path component_dir = version_dir.parent_path();
  std::map<std::string, package::AppCapabilities> others;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(component_dir.parent_path(), ec)) {
    if (entry.path() == component_dir || !fs::exists(entry.path() / "current", ec)) continue;
    if (auto theirs = package::ReadAppManifest(entry.path() / "current")) {
      others.emplace(entry.path().filename().string(), std::move(theirs->capabilities));
    }
  }
  if (auto fits = board.CheckPeripherals(mine->capabilities, others); !fits) {
    return std::unexpected(Unhealthy(fits.error().message()));
  }
  return {};
}

}  // namespace aspis::device::update
