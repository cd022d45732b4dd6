// Making a delta: cut the new payload's tar into what a device has (old files, copied or
// patched) and what must travel (literals), then prove the delta by applying it.
#include <fcntl.h>
#include <stdlib.h>  // mkdtemp
#include <sys/statvfs.h>

#include <cerrno>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "core/file.hpp"
#include "package/delta.hpp"
#include "package/errors.hpp"
#include "package/payload_compression.hpp"
#include "package/tar_scan.hpp"
#include "package/zstd_ptr.hpp"

namespace aspis::package {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kChunk = std::size_t{64} << 10;
constexpr std::size_t kLiteralFlush = std::size_t{1} << 20;
constexpr int kLevel = 19;  // of patches and of the operation stream: made once, sent often
// A package made for deltas has a 2 MiB window (payload_compression.cpp); this only keeps a
// damaged one from taking much memory.
constexpr int kMakerWindowLog = 27;
// Room for the delta itself and for what the file system needs besides the tars.
constexpr std::uint64_t kSpaceSlack = std::uint64_t{64} << 20;

Error IoError(std::string_view what, const fs::path& path) {
  return Error(PackageErrc::kIo, std::string(what) + " " + path.string() + ": " +
                                     std::generic_category().message(errno));
}

// A directory removed, with everything in it, when this goes out of scope.
class WorkDir {
 public:
  static Expected<WorkDir> Create(const fs::path& beside) {
    std::string name = beside.string() + ".work-XXXXXX";
    if (::mkdtemp(name.data()) == nullptr) return std::unexpected(IoError("creating", name));
    return WorkDir(name);
  }
  WorkDir(WorkDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  WorkDir& operator=(WorkDir&&) = delete;
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  ~WorkDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  explicit WorkDir(fs::path path) : path_(std::move(path)) {}
  fs::path path_;
};

Expected<void> WriteAll(int fd, ByteView data, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(IoError("writing", path));
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

Expected<void> ReadAt(int fd, std::span<std::uint8_t> out, std::uint64_t offset,
                      const fs::path& path) {
  for (std::size_t done = 0; done < out.size();) {
    const ssize_t n =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(IoError("reading", path));
    if (n == 0) return Fail(PackageErrc::kIo, path.string() + " ended early");
    done += static_cast<std::size_t>(n);
  }
  return {};
}

// A package read for making a delta: its header verbatim, its payload's tar in a file, and the
// digest and size of the whole package.
struct Unpacked {
  Manifest manifest;
  Bytes header;
  fs::path tar;
  std::uint64_t tar_size = 0;
  crypto::Digest file_sha256{};
  std::uint64_t file_size = 0;
};

Expected<Bytes> ReadPackageHeader(const fs::path& package) {
  auto source = FileSource::Open(package);
  if (!source) return std::unexpected(source.error());
  Bytes header(kPrefixSize);
  for (std::size_t done = 0; done < header.size();) {
    auto n = source->Read(std::span(header).subspan(done));
    if (!n) return std::unexpected(n.error());
    if (*n == 0) return Fail(PackageErrc::kMalformed, package.string() + " is not a package");
    done += *n;
    if (done == kPrefixSize) {
      auto length = HeaderLength(header);
      if (!length) return std::unexpected(length.error());
      header.resize(static_cast<std::size_t>(*length));
    }
  }
  return header;
}

// A package's manifest and size, from its header alone.
struct Inspected {
  Manifest manifest;
  std::uint64_t size = 0;
};

Expected<Inspected> Inspect(const fs::path& package) {
  auto header = ReadPackageHeader(package);
  if (!header) return std::unexpected(std::move(header.error()).WithContext(package.string()));
  MemorySource source(*header);
  auto reader = Reader::Inspect(source);
  if (!reader) return std::unexpected(std::move(reader.error()).WithContext(package.string()));
  return Inspected{reader->manifest(), header->size() + reader->manifest().payload.size};
}

Expected<std::uint64_t> StatvfsFreeSpace(const fs::path& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) {
    return std::unexpected(IoError("reading the free space of", dir));
  }
  return std::uint64_t{st.f_bavail} * st.f_frsize;
}

// Refuses to start what would fill the file system half-way (kIo: space may be freed later).
Expected<void> CheckFreeSpace(const Inspected& old_package, const Inspected& new_package,
                              const fs::path& destination, const FreeSpaceProbe& probe) {
  const fs::path dir =
      destination.parent_path().empty() ? fs::path(".") : destination.parent_path();
  auto free = probe ? probe(dir) : StatvfsFreeSpace(dir);
  if (!free) return std::unexpected(free.error());
  const std::uint64_t needed =
      MakeDeltaSpaceNeeded(old_package.manifest.payload.unpacked_size,
                           new_package.manifest.payload.unpacked_size, new_package.size);
  if (*free < needed) {
    return Fail(PackageErrc::kIo, "not enough free space in " + dir.string() +
                                      " to make the delta: it needs " + std::to_string(needed) +
                                      " bytes (both tars, the new package and 64 MiB), " +
                                      std::to_string(*free) + " are free");
  }
  return {};
}

// Writes the payload's tar to `tar`, stopping (kTooLarge) as soon as it exceeds what the manifest
// declares, so that a small package cannot make the maker write gigabytes.
Expected<Unpacked> Unpack(const fs::path& package, const fs::path& tar) {
  Unpacked u;
  auto header = ReadPackageHeader(package);
  if (!header) return std::unexpected(header.error());
  u.header = std::move(*header);
  auto file = FileSource::Open(package);
  if (!file) return std::unexpected(file.error());
  auto hashing = HashingSource::Wrap(*file);
  if (!hashing) return std::unexpected(hashing.error());
  auto reader = Reader::Inspect(*hashing);
  if (!reader) return std::unexpected(reader.error());
  u.manifest = reader->manifest();
  u.tar = tar;
  Fd out(::open(tar.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (out.get() < 0) return std::unexpected(IoError("creating", tar));
  ZstdDecompressor dctx(ZSTD_createDCtx());
  if (!dctx) return Fail(PackageErrc::kIo, "out of memory for the zstd decompressor");
  (void)ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, kMakerWindowLog);
  const bool compressed = u.manifest.payload.compression == Compression::kZstd;
  const std::uint64_t limit = u.manifest.payload.unpacked_size;
  auto take = [&](ByteView bytes) -> Expected<void> {
    if (bytes.size() > limit - u.tar_size) {
      return Fail(PackageErrc::kTooLarge,
                  "the payload decompresses to more than its manifest's unpacked_size of " +
                      std::to_string(limit) + " bytes");
    }
    u.tar_size += bytes.size();
    return WriteAll(out.get(), bytes, tar);
  };
  std::vector<std::uint8_t> buffer(ZSTD_DStreamOutSize());
  std::size_t rc = 0;
  auto streamed = reader->StreamPayload([&](ByteView chunk) -> Expected<void> {
    if (!compressed) return take(chunk);
    ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer o{buffer.data(), buffer.size(), 0};
      rc = ZSTD_decompressStream(dctx.get(), &o, &in);
      if (ZSTD_isError(rc) != 0) {
        return Fail(PackageErrc::kMalformed,
                    std::string("the payload is not zstd: ") + ZSTD_getErrorName(rc));
      }
      if (auto ok = take(ByteView(buffer.data(), o.pos)); !ok) return ok;
    }
    return {};
  });
  if (!streamed) return std::unexpected(std::move(streamed.error()).WithContext(package.string()));
  if (compressed && rc != 0) {
    return Fail(PackageErrc::kMalformed, package.string() + "'s payload ends inside a zstd frame");
  }
  auto digest = hashing->Finish();
  if (!digest) return std::unexpected(digest.error());
  u.file_sha256 = *digest;
  u.file_size = hashing->count();
  if (out.Close() != 0) return std::unexpected(IoError("writing", tar));
  return u;
}

struct OldFile {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

// The regular files of a tar, by path, where their data lies. A later entry of the same path
// wins, as it does when the tar is unpacked into the tree a device reads.
using FileIndex = std::map<std::string, OldFile, std::less<>>;

Error TooManyEntries(std::string_view which) {
  return Error(PackageErrc::kTooLarge, "the " + std::string(which) +
                                           " payload's tar has more than " +
                                           std::to_string(kMaxDeltaTarEntries) + " entries");
}

Expected<FileIndex> IndexFiles(const fs::path& tar) {
  auto source = FileSource::Open(tar);
  if (!source) return std::unexpected(source.error());
  TarScanner scanner(*source);
  FileIndex files;
  for (std::uint64_t count = 1;; ++count) {
    auto entry = scanner.Next();
    if (!entry) return std::unexpected(entry.error());
    if (!*entry) return files;
    if (count > kMaxDeltaTarEntries) return std::unexpected(TooManyEntries("old"));
    const TarEntry& e = **entry;
    if (e.regular()) {
      files[e.path] = {e.data_offset, e.size};
    } else {
      files.erase(e.path);
    }
  }
}

// The old version's files read by offset from its tar in the work directory: what the device's
// tree holds, found in O(log n) whatever order a delta names them in.
class TarFileBase final : public DeltaBase {
 public:
  TarFileBase(Fd tar, fs::path path, const FileIndex& files)
      : tar_(std::move(tar)), path_(std::move(path)), files_(&files) {}

  Expected<std::uint64_t> Open(std::string_view path) override {
    open_ = false;
    const auto file = files_->find(path);
    if (file == files_->end()) {
      return Fail(PackageErrc::kMismatch,
                  "the old package has no file " + std::string(path.substr(0, 256)));
    }
    offset_ = file->second.offset;
    left_ = file->second.size;
    open_ = true;
    return file->second.size;
  }

  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override {
    if (!open_) return Fail(PackageErrc::kIo, "no base file is open");
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, buffer.size()));
    if (auto ok = ReadAt(tar_.get(), buffer.first(n), offset_, path_); !ok) {
      return std::unexpected(ok.error());
    }
    offset_ += n;
    left_ -= n;
    return n;
  }

 private:
  Fd tar_;
  fs::path path_;
  const FileIndex* files_;
  bool open_ = false;
  std::uint64_t offset_ = 0;
  std::uint64_t left_ = 0;
};

Expected<crypto::Digest> HashRange(int fd, std::uint64_t offset, std::uint64_t size,
                                   const fs::path& path) {
  auto hash = crypto::Sha256::Create();
  if (!hash) return std::unexpected(hash.error());
  std::vector<std::uint8_t> chunk(kChunk);
  for (std::uint64_t done = 0; done < size;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(size - done, chunk.size()));
    if (auto ok = ReadAt(fd, std::span(chunk).first(n), offset + done, path); !ok) {
      return std::unexpected(ok.error());
    }
    if (auto ok = hash->Update(ByteView(chunk.data(), n)); !ok) return std::unexpected(ok.error());
    done += n;
  }
  return hash->Finish();
}

Expected<Bytes> ReadRange(int fd, std::uint64_t offset, std::uint64_t size, const fs::path& path) {
  Bytes bytes(static_cast<std::size_t>(size));
  if (auto ok = ReadAt(fd, bytes, offset, path); !ok) return std::unexpected(ok.error());
  return bytes;
}

// Writes the operations for the new tar, reading both tars by offset. It stays within the bounds
// ApplyDelta enforces: each copy or patch follows a literal holding at least its entry's 512-byte
// header and covers at least one 512-byte block of data (with its padding), and literals are cut
// at 1 MiB, so there are at most about tar_size / 512 + 2 operations (MaxDeltaOperations); base
// files are read only while MaxDeltaBaseBytes allows, literals after that.
class OperationMaker {
 public:
  OperationMaker(DeltaWriter& writer, const Unpacked& old_package, const Unpacked& new_package,
                 const FileIndex& old_files, Fd old_tar, Fd new_tar)
      : writer_(&writer),
        old_(&old_package),
        new_(&new_package),
        old_files_(&old_files),
        old_tar_(std::move(old_tar)),
        new_tar_(std::move(new_tar)),
        base_bytes_left_(MaxDeltaBaseBytes(new_package.tar_size)) {}

  Expected<DeltaStats> Run() {
    auto source = FileSource::Open(new_->tar);
    if (!source) return std::unexpected(source.error());
    TarScanner scanner(*source);
    std::uint64_t cursor = 0;
    for (std::uint64_t count = 1;; ++count) {
      auto entry = scanner.Next();
      if (!entry) return std::unexpected(entry.error());
      if (!*entry) break;
      if (count > kMaxDeltaTarEntries) return std::unexpected(TooManyEntries("new"));
      const TarEntry& e = **entry;
      // An empty file's data is no bytes: its header, in a literal, is all of it (ApplyDelta
      // refuses copies and patches that produce nothing).
      if (!e.regular() || e.size == 0) continue;
      const auto old = old_files_->find(e.path);
      if (old == old_files_->end() || !DeltaPathProblem(e.path).empty()) {
        ++stats_.literal_files;
        continue;
      }
      if (auto ok = Literal(cursor, e.data_offset); !ok) return std::unexpected(ok.error());
      if (auto ok = File(e, old->second); !ok) return std::unexpected(ok.error());
      cursor = e.data_offset + e.size;
    }
    if (auto ok = Literal(cursor, new_->tar_size); !ok) return std::unexpected(ok.error());
    if (auto ok = Flush(); !ok) return std::unexpected(ok.error());
    return stats_;
  }

 private:
  // The new tar's bytes [from, to), as literals.
  Expected<void> Literal(std::uint64_t from, std::uint64_t to) {
    while (from < to) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(to - from, kChunk));
      const std::size_t at = pending_.size();
      pending_.resize(at + n);
      if (auto ok = ReadAt(new_tar_.get(), std::span(pending_).subspan(at), from, new_->tar); !ok) {
        return ok;
      }
      from += n;
      if (pending_.size() >= kLiteralFlush) {
        if (auto ok = Flush(); !ok) return ok;
      }
    }
    return {};
  }

  Expected<void> Flush() {
    if (pending_.empty()) return {};
    auto ok = writer_->Literal(pending_);
    pending_.clear();
    return ok;
  }

  // A file both tars hold: copied when unchanged, patched when that is smaller than sending it,
  // sent whole when reading it would take the delta past MaxDeltaBaseBytes.
  Expected<void> File(const TarEntry& e, const OldFile& old) {
    if (old.size > base_bytes_left_) {
      ++stats_.literal_files;
      return Literal(e.data_offset, e.data_offset + e.size);
    }
    auto old_sha256 = HashRange(old_tar_.get(), old.offset, old.size, old_->tar);
    if (!old_sha256) return std::unexpected(old_sha256.error());
    if (old.size == e.size) {
      auto new_sha256 = HashRange(new_tar_.get(), e.data_offset, e.size, new_->tar);
      if (!new_sha256) return std::unexpected(new_sha256.error());
      if (*new_sha256 == *old_sha256) {
        ++stats_.copied_files;
        base_bytes_left_ -= old.size;
        if (auto ok = Flush(); !ok) return ok;
        return writer_->Copy(e.path, e.size, *old_sha256);
      }
    }
    if (old.size <= kMaxPatchedFileSize && e.size <= kMaxPatchedFileSize) {
      auto reference = ReadRange(old_tar_.get(), old.offset, old.size, old_->tar);
      if (!reference) return std::unexpected(reference.error());
      auto updated = ReadRange(new_tar_.get(), e.data_offset, e.size, new_->tar);
      if (!updated) return std::unexpected(updated.error());
      auto patch = MakePatch(*reference, *updated, kLevel);
      if (!patch) return std::unexpected(patch.error());
      // A patch op costs its path and sizes besides the frame; a literal costs its compressed
      // bytes, estimated only when the patch is not clearly smaller.
      const std::size_t patch_cost = patch->size() + e.path.size() + 64;
      std::size_t literal_cost = updated->size();
      if (patch_cost * 4 > updated->size()) {
        Bytes alone(ZSTD_compressBound(updated->size()));
        const std::size_t n =
            ZSTD_compress(alone.data(), alone.size(), updated->data(), updated->size(), kLevel);
        if (ZSTD_isError(n) == 0) literal_cost = n;
      }
      if (patch_cost < literal_cost) {
        ++stats_.patched_files;
        base_bytes_left_ -= old.size;
        if (auto ok = Flush(); !ok) return ok;
        return writer_->Patch(e.path, old.size, *old_sha256, e.size, *patch);
      }
    }
    ++stats_.literal_files;
    return Literal(e.data_offset, e.data_offset + e.size);
  }

  DeltaWriter* writer_;
  const Unpacked* old_;
  const Unpacked* new_;
  const FileIndex* old_files_;
  Fd old_tar_;
  Fd new_tar_;
  std::uint64_t base_bytes_left_;
  Bytes pending_;
  DeltaStats stats_;
};

Expected<void> CheckPair(const Unpacked& old_package, const Unpacked& new_package) {
  if (old_package.manifest.component_id != new_package.manifest.component_id) {
    return Fail(PackageErrc::kMismatch, "the packages are versions of different components (" +
                                            old_package.manifest.component_id + ", " +
                                            new_package.manifest.component_id + ")");
  }
  const Payload& p = new_package.manifest.payload;
  if (p.compression == Compression::kZstd && new_package.tar_size != p.unpacked_size) {
    return Fail(PackageErrc::kMismatch,
                "the new package's payload unpacks to " + std::to_string(new_package.tar_size) +
                    " bytes, its manifest says " + std::to_string(p.unpacked_size));
  }
  return {};
}

// Writes the delta to a temporary file beside `destination`; returns it open for reading.
Expected<DeltaStats> WriteDelta(const Unpacked& old_package, const Unpacked& new_package,
                                const FileIndex& old_files, const fs::path& path) {
  Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (out.get() < 0) return std::unexpected(IoError("creating", path));
  Fd old_tar(::open(old_package.tar.c_str(), O_RDONLY | O_CLOEXEC));
  Fd new_tar(::open(new_package.tar.c_str(), O_RDONLY | O_CLOEXEC));
  if (old_tar.get() < 0 || new_tar.get() < 0) {
    return std::unexpected(IoError("opening", old_package.tar));
  }
  DeltaHeader header;
  header.old_image_id = old_package.manifest.image_id;
  header.new_image_id = new_package.manifest.image_id;
  header.target_sha256 = new_package.file_sha256;
  header.target_size = new_package.file_size;
  header.tar_size = new_package.tar_size;
  header.compression = new_package.manifest.payload.compression == Compression::kZstd
                           ? kPayloadCompressionProfile
                           : 0;
  header.zstd_version = PayloadCompressorVersion();
  header.target_header = new_package.header;
  auto writer = DeltaWriter::Create(
      header, [&](ByteView bytes) { return WriteAll(out.get(), bytes, path); }, kLevel);
  if (!writer) return std::unexpected(writer.error());
  OperationMaker maker(*writer, old_package, new_package, old_files, std::move(old_tar),
                       std::move(new_tar));
  auto stats = maker.Run();
  if (!stats) return stats;
  if (auto ok = writer->Finish(); !ok) return std::unexpected(ok.error());
  if (::fsync(out.get()) != 0 || out.Close() != 0) return std::unexpected(IoError("writing", path));
  stats->full_size = new_package.file_size;
  stats->delta_size = writer->written();
  stats->tar_size = new_package.tar_size;
  return stats;
}

// Applies the delta at `delta` to the old package's files, as a device would to its tree, into
// `scratch`.
Expected<void> Prove(const fs::path& delta, const Unpacked& old_package, const FileIndex& old_files,
                     const Unpacked& new_package, const fs::path& scratch) {
  Fd old_tar(::open(old_package.tar.c_str(), O_RDONLY | O_CLOEXEC));
  if (old_tar.get() < 0) return std::unexpected(IoError("opening", old_package.tar));
  TarFileBase base(std::move(old_tar), old_package.tar, old_files);
  auto source = FileSource::Open(delta);
  if (!source) return std::unexpected(source.error());
  auto rebuilt =
      ApplyDelta(*source, base, {new_package.file_sha256, new_package.file_size}, scratch);
  if (!rebuilt && (rebuilt.error() == PackageErrc::kIo || rebuilt.error() == CoreErrc::kIo ||
                   rebuilt.error() == CoreErrc::kNoSpace)) {
    return std::unexpected(std::move(rebuilt.error()).WithContext("proving the delta"));
  }
  if (!rebuilt) {
    return Fail(PackageErrc::kMismatch,
                "the delta does not rebuild the new package byte for byte, so only the full "
                "package can be offered (a payload not compressed by this Aspis's packer?): " +
                    rebuilt.error().message());
  }
  return {};
}

}  // namespace

std::uint64_t MakeDeltaSpaceNeeded(std::uint64_t old_unpacked_size, std::uint64_t new_unpacked_size,
                                   std::uint64_t new_package_size) {
  return old_unpacked_size + new_unpacked_size + new_package_size + kSpaceSlack;
}

Expected<DeltaStats> MakeDelta(const fs::path& old_package, const fs::path& new_package,
                               const fs::path& destination, const FreeSpaceProbe& free_space) {
  auto old_inspected = Inspect(old_package);
  if (!old_inspected) return std::unexpected(old_inspected.error());
  auto new_inspected = Inspect(new_package);
  if (!new_inspected) return std::unexpected(new_inspected.error());
  if (auto ok = CheckFreeSpace(*old_inspected, *new_inspected, destination, free_space); !ok) {
    return std::unexpected(ok.error());
  }
  auto work = WorkDir::Create(destination);
  if (!work) return std::unexpected(work.error());
  auto old_unpacked = Unpack(old_package, work->path() / "old.tar");
  if (!old_unpacked) return std::unexpected(old_unpacked.error());
  auto new_unpacked = Unpack(new_package, work->path() / "new.tar");
  if (!new_unpacked) return std::unexpected(new_unpacked.error());
  if (auto ok = CheckPair(*old_unpacked, *new_unpacked); !ok) return std::unexpected(ok.error());
  auto old_files = IndexFiles(old_unpacked->tar);
  if (!old_files) return std::unexpected(old_files.error());
  const fs::path delta = work->path() / "delta";
  auto stats = WriteDelta(*old_unpacked, *new_unpacked, *old_files, delta);
  if (!stats) return stats;
  if (auto ok =
          Prove(delta, *old_unpacked, *old_files, *new_unpacked, work->path() / "rebuilt.aspkg");
      !ok) {
    return std::unexpected(ok.error());
  }
  file::FileSystem& fs = file::RealFileSystem();
  if (auto ok = fs.Rename(delta, destination); !ok) return std::unexpected(ok.error());
  const fs::path dir =
      destination.parent_path().empty() ? fs::path(".") : destination.parent_path();
  if (auto ok = fs.SyncDirectory(dir); !ok) return std::unexpected(ok.error());
  return stats;
}

}  // namespace aspis::package
