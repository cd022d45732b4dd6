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

// The first bytes of the package at `path` up to the end of its signed envelope.
Expected<Bytes> ReadHeader(const fs::path& path) {
  auto source = package::FileSource::Open(path);
  if (!source) return std::unexpected(source.error());
  Bytes prefix(package::kPrefixSize);
  auto n = source->Read(prefix);
  if (!n) return std::unexpected(n.error());
  prefix.resize(*n);
  auto length = package::HeaderLength(prefix);
  if (!length) return std::unexpected(length.error());
  Bytes header = prefix;
  header.resize(*length);
  for (std::size_t have = prefix.size(); have < header.size();) {
    auto more = source->Read(std::span(header).subspan(have));
    if (!more || *more == 0) return std::unexpected(InstallError("the package header is short"));
    have += *more;
  }
  return header;
}

}  // namespace

fs::path SlotHeader(const fs::path& slot_dir) {
  return slot_dir.parent_path() / (slot_dir.filename().string() + ".header");
}

Expected<package::Manifest> CheckBootedOs(const fs::path& slot_dir,
                                          const package::Publishers& publishers,
                                          const crypto::Digest& measured_os,
                                          std::uint64_t counter) {
  auto source = package::FileSource::Open(SlotHeader(slot_dir));
  if (!source) {
    return std::unexpected(std::move(source.error()).WithContext("the booted slot's OS header"));
  }
  auto reader = package::Reader::Open(*source, publishers);
  if (!reader) return std::unexpected(reader.error());
  const package::Manifest& m = reader->manifest();
  const auto os = m.measurements.find("os");
  if (m.kind != package::Kind::kOs || os == m.measurements.end() || os->second != measured_os) {
    return std::unexpected(InstallError("the booted slot does not hold the OS its header signs"));
  }
  if (m.security_version < counter) {
    return Fail(UpdateErrc::kRollback, "the booted OS " + m.version + " (security version " +
                                           std::to_string(m.security_version) +
                                           ") is below the anti-rollback counter " +
                                           std::to_string(counter));
  }
  return m;
}

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
  auto header = ReadHeader(package_path);
  if (!header) {
    fs::remove_all(fresh, ec);
    return std::unexpected(header.error());
  }
  KillPoint("slot.unpacked");
  fs::remove_all(dir, ec);
  KillPoint("slot.cleared");
  if (ec) return std::unexpected(InstallError("cannot clear " + dir.string()));
  fs::rename(fresh, dir, ec);
  if (ec) return std::unexpected(InstallError("cannot move the new OS into " + dir.string()));
  if (auto ok = file::WriteDurably(SlotHeader(dir), *header, 0644); !ok) {
    return std::unexpected(ok.error());
  }
  return manifest;
}

}  // namespace aspis::device::update
