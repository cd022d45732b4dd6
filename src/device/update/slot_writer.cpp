#include "device/update/slot_writer.hpp"

#include <algorithm>

#include "core/file.hpp"
#include "crypto/sha256.hpp"
#include "device/kill_point.hpp"
#include "device/update/errors.hpp"
#include "device/update/unpack.hpp"
#include "package/archive.hpp"
#include "package/measure.hpp"

namespace aspis::device::update {

namespace fs = std::filesystem;

namespace {

Error InstallError(std::string message) { return Error(UpdateErrc::kInstall, std::move(message)); }

}  // namespace

Expected<package::Manifest> DirectorySlotWriter::Write(Slot slot, const fs::path& package_path,
                                                       const AcceptPackage& accept) {
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
  if (auto ok = accept(manifest); !ok) return std::unexpected(ok.error());
  const fs::path dir = slot_dir_(slot);
  const fs::path parent = dir.parent_path();
  const fs::path fresh = parent / ("." + dir.filename().string() + ".new");
  std::error_code ec;
  fs::remove_all(fresh, ec);
  if (auto ok = UnpackPayload(*reader, fresh, {.symlinks = true}); !ok) {
    return std::unexpected(ok.error());
  }
  auto measured = package::MeasureOsTree(fresh);
  if (!measured) {
    fs::remove_all(fresh, ec);
    return std::unexpected(measured.error());
  }
  for (const auto& [component, digest] : manifest.measurements) {
    const auto it = measured->find(component);
    if (it == measured->end() || it->second != digest) {
      fs::remove_all(fresh, ec);
      return std::unexpected(
          InstallError("the unpacked OS does not measure as its package says (" + component + ")"));
    }
  }
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
