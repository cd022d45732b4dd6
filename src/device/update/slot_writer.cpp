#include "device/update/slot_writer.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/fd.hpp"
#include "core/file.hpp"
#include "crypto/sha256.hpp"
#include "device/kill_point.hpp"
#include "device/update/errors.hpp"
#include "device/update/unpack.hpp"
#include "package/archive.hpp"
#include "package/measure.hpp"
#include "package/zstd_ptr.hpp"

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

// Whether `m` is an OS package of `format` for `board`.
Expected<void> CheckOsPackage(const package::Manifest& m, package::PayloadFormat format,
                              const std::string& board) {
  if (m.kind != package::Kind::kOs) {
    return std::unexpected(InstallError("the package is not an OS package"));
  }
  if (std::find(m.target_boards.begin(), m.target_boards.end(), board) == m.target_boards.end()) {
    return std::unexpected(InstallError("the OS package is not for board " + board));
  }
  if (m.payload.format != format) {
    return std::unexpected(InstallError(
        format == package::PayloadFormat::kImage
            ? "the OS package holds a root file system tar, not an image for a partition"
            : "the OS package holds a partition image, not a root file system tar"));
  }
  return {};
}

// The size of a block device, or of a regular file.
Expected<std::uint64_t> PartitionSize(int fd, const fs::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return std::unexpected(InstallError("cannot inspect " + path.string()));
  if (S_ISREG(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
  std::uint64_t size = 0;
  if (S_ISBLK(st.st_mode) && ::ioctl(fd, BLKGETSIZE64, &size) == 0) return size;
  return std::unexpected(InstallError(path.string() + " is not a block device or a file"));
}

// Writes all of `bytes` at `offset`.
Expected<void> WriteAt(int fd, ByteView bytes, std::uint64_t offset, const fs::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return std::unexpected(
          InstallError("writing " + path.string() + ": " + std::generic_category().message(errno)));
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

// Streams the package's payload, decompressed, to the start of `fd`; returns the bytes written,
// never more than the signed unpacked size.
Expected<std::uint64_t> WriteImage(package::Reader& reader, int fd, const fs::path& path) {
  const package::Payload& payload = reader.manifest().payload;
  std::uint64_t written = 0;
  const auto put = [&](ByteView bytes) -> Expected<void> {
    if (bytes.size() > payload.unpacked_size - written) {
      return std::unexpected(InstallError("the image is larger than its signed size"));
    }
    if (auto ok = WriteAt(fd, bytes, written, path); !ok) return ok;
    written += bytes.size();
    return {};
  };
  if (payload.compression == package::Compression::kNone) {
    if (auto ok = reader.StreamPayload(put); !ok) return std::unexpected(ok.error());
    return written;
  }
  package::ZstdDecompressor zstd(ZSTD_createDCtx());
  if (!zstd) return std::unexpected(InstallError("out of memory"));
  std::vector<std::uint8_t> out(ZSTD_DStreamOutSize());
  std::size_t last = 0;  // ZSTD_decompressStream's last answer: 0 once a frame is complete
  auto streamed = reader.StreamPayload([&](ByteView in) -> Expected<void> {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    while (input.pos < input.size) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      last = ZSTD_decompressStream(zstd.get(), &output, &input);
      if (ZSTD_isError(last) != 0) {
        return std::unexpected(
            InstallError(std::string("the image does not decompress: ") + ZSTD_getErrorName(last)));
      }
      if (auto ok = put({out.data(), output.pos}); !ok) return ok;
    }
    return {};
  });
  if (!streamed) return std::unexpected(streamed.error());
  if (last != 0) return std::unexpected(InstallError("the image ends inside a zstd frame"));
  return written;
}

}  // namespace

fs::path SlotHeader(const fs::path& slot_dir) {
  return slot_dir.parent_path() / (slot_dir.filename().string() + ".header");
}

Expected<package::Manifest> CheckBootedOs(const fs::path& header,
                                          const package::Publishers& publishers,
                                          const crypto::Digest& measured_os,
                                          std::uint64_t counter) {
  auto source = package::FileSource::Open(header);
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
  if (auto ok = CheckOsPackage(manifest, package::PayloadFormat::kTar, board_); !ok) {
    return std::unexpected(ok.error());
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

namespace aspis::device::update {

bool MountedReadWrite(std::string_view mountinfo, unsigned major, unsigned minor) {
  const std::string device = fmt::format("{}:{}", major, minor);
  const auto has_rw = [](std::string_view options) {
    for (std::size_t start = 0; start <= options.size();) {
      const std::size_t comma = std::min(options.find(',', start), options.size());
      if (options.substr(start, comma - start) == "rw") return true;
      start = comma + 1;
    }
    return false;
  };
  std::istringstream lines{std::string(mountinfo)};
  for (std::string line; std::getline(lines, line);) {
    // ID PARENT MAJOR:MINOR ROOT MOUNT-POINT MOUNT-OPTIONS [OPTIONAL...] - TYPE SOURCE
    // SUPER-OPTIONS
    std::istringstream fields(line);
    std::vector<std::string> words;
    for (std::string word; fields >> word;) words.push_back(word);
    const auto dash = std::find(words.begin(), words.end(), "-");
    if (words.size() < 6 || words[2] != device || dash == words.end()) continue;
    const bool super_rw = std::distance(dash, words.end()) >= 4 && has_rw(words.back());
    if (has_rw(words[5]) || super_rw) return true;
  }
  return false;
}

fs::path PartitionHeader(const fs::path& header_dir, Slot slot) {
  return header_dir / (std::string(SlotName(slot)) + ".header");
}

Expected<package::Manifest> ImageSlotWriter::Write(Slot slot, const fs::path& package_path,
                                                   const AcceptPackage& accept) {
  auto source = package::FileSource::Open(package_path);
  if (!source) return std::unexpected(source.error());
  auto reader = package::Reader::Open(*source, publishers_);
  if (!reader) return std::unexpected(reader.error());
  package::Manifest manifest = reader->manifest();
  if (auto ok = CheckOsPackage(manifest, package::PayloadFormat::kImage, board_); !ok) {
    return std::unexpected(ok.error());
  }
  const auto signed_os = manifest.measurements.find("os");
  if (signed_os == manifest.measurements.end()) {
    return std::unexpected(InstallError("the OS package has no \"os\" measurement"));
  }
  if (auto ok = accept(manifest); !ok) return std::unexpected(ok.error());
  auto header = ReadHeader(package_path);
  if (!header) return std::unexpected(header.error());
  // Boards name partitions through links (/dev/disk/by-partlabel/...): followed; what they lead
  // to must be a block device (or a file).
  const fs::path& partition = Partition(slot);
  // O_EXCL on a block device fails (EBUSY) while anything has it mounted: never the running root.
  const Fd fd(::open(partition.c_str(), O_RDWR | O_CLOEXEC | O_EXCL));
  if (fd.get() < 0) {
    return std::unexpected(InstallError("cannot open " + partition.string() + ": " +
                                        std::generic_category().message(errno)));
  }
  auto size = PartitionSize(fd.get(), partition);
  if (!size) return std::unexpected(size.error());
  if (manifest.payload.unpacked_size > *size) {
    return std::unexpected(
        InstallError(fmt::format("the image is {} bytes; partition {} holds {}",
                                 manifest.payload.unpacked_size, partition.string(), *size)));
  }
  // From here the partition holds neither the old OS nor the new one until the header is back.
  auto& files = file::RealFileSystem();
  files.Remove(Header(slot));
  if (auto ok = files.SyncDirectory(header_dir_); !ok) return std::unexpected(ok.error());
  KillPoint("slot.header-removed");
  auto written = WriteImage(*reader, fd.get(), partition);
  if (!written) return std::unexpected(written.error());
  if (*written != manifest.payload.unpacked_size) {
    return std::unexpected(InstallError("the image is shorter than its signed size"));
  }
  if (::fsync(fd.get()) != 0) {
    return std::unexpected(InstallError("flushing " + partition.string() + ": " +
                                        std::generic_category().message(errno)));
  }
  auto measured = package::MeasurePrefix(fd.get(), *written);
  if (!measured) return std::unexpected(measured.error());
  if (*measured != signed_os->second) {
    return std::unexpected(
        InstallError("the partition does not read back as the image its package signs (os)"));
  }
  KillPoint("slot.written");
  if (auto ok = file::WriteDurably(Header(slot), *header, 0644); !ok) {
    return std::unexpected(ok.error());
  }
  return manifest;
}

}  // namespace aspis::device::update
