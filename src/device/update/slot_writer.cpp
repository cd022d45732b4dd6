#include "device/update/slot_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "core/fd.hpp"
#include "core/file.hpp"
#include "crypto/sha256.hpp"
#include "device/kill_point.hpp"
#include "device/update/errors.hpp"
#include "package/archive.hpp"
#include "package/measure.hpp"

namespace aspis::device::update {

namespace fs = std::filesystem;

namespace {

Error InstallError(std::string message) { return Error(UpdateErrc::kInstall, std::move(message)); }

Expected<void> WritePayload(package::Reader& reader, const fs::path& path) {
  const Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (out.get() < 0) return std::unexpected(InstallError("cannot create " + path.string()));
  return reader.StreamPayload([&](ByteView chunk) -> Expected<void> {
    while (!chunk.empty()) {
      const ssize_t n = ::write(out.get(), chunk.data(), chunk.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(InstallError("writing " + path.string() + " failed"));
      }
      chunk = chunk.subspan(static_cast<std::size_t>(n));
    }
    return {};
  });
}

// Flushes the file system that holds `dir`, so the whole unpacked tree is on disk.
Expected<void> SyncTree(const fs::path& dir) {
  const Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::syncfs(fd.get()) != 0) {
    return std::unexpected(InstallError("flushing " + dir.string() + " failed"));
  }
  return {};
}

}  // namespace

Expected<package::Manifest> DirectorySlotWriter::Write(Slot slot, const fs::path& package_path) {
  auto source = package::FileSource::Open(package_path);
  if (!source) return std::unexpected(source.error());
  auto reader = package::Reader::Open(*source, publishers_);
  if (!reader) return std::unexpected(reader.error());
  const package::Manifest& manifest = reader->manifest();
  if (manifest.kind != package::Kind::kOs) {
    return std::unexpected(InstallError("the package is not an OS package"));
  }
  if (std::find(manifest.target_boards.begin(), manifest.target_boards.end(), board_) ==
      manifest.target_boards.end()) {
    return std::unexpected(InstallError("the OS package is not for board " + board_));
  }
  const fs::path dir = slot_dir_(slot);
  const fs::path parent = dir.parent_path();
  const fs::path fresh = parent / ("." + dir.filename().string() + ".new");
  const fs::path payload = parent / ("." + dir.filename().string() + ".payload");
  std::error_code ec;
  fs::remove_all(fresh, ec);
  fs::remove(payload, ec);
  auto written = WritePayload(*reader, payload);
  if (written) {
    written = package::UnpackArchive(payload, fresh, package::kMaxPayloadSize, {.symlinks = true});
  }
  fs::remove(payload, ec);
  if (!written) {
    fs::remove_all(fresh, ec);
    return std::unexpected(written.error());
  }
  auto measured = package::MeasureOsTree(fresh);
  if (!measured) return std::unexpected(measured.error());
  for (const auto& [component, digest] : manifest.measurements) {
    const auto it = measured->find(component);
    if (it == measured->end() || it->second != digest) {
      fs::remove_all(fresh, ec);
      return std::unexpected(
          InstallError("the unpacked OS does not measure as its package says (" + component + ")"));
    }
  }
  if (auto ok = SyncTree(fresh); !ok) return std::unexpected(ok.error());
  KillPoint("slot.unpacked");
  fs::remove_all(dir, ec);
  KillPoint("slot.cleared");
  if (ec) return std::unexpected(InstallError("cannot clear " + dir.string()));
  fs::rename(fresh, dir, ec);
  if (ec) return std::unexpected(InstallError("cannot move the new OS into " + dir.string()));
  if (auto ok = file::RealFileSystem().SyncDirectory(parent); !ok)
    return std::unexpected(ok.error());
  return manifest;
}

}  // namespace aspis::device::update
