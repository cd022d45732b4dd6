// Making a delta: cut the new payload's tar into what a device has (old files, copied or
// patched) and what must travel (literals), then prove the delta by applying it.
#include <fcntl.h>
#include <stdlib.h>  // mkdtemp

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
  std::vector<std::uint8_t> buffer(ZSTD_DStreamOutSize());
  std::size_t rc = 0;
  auto streamed = reader->StreamPayload([&](ByteView chunk) -> Expected<void> {
    if (!compressed) {
      u.tar_size += chunk.size();
      return WriteAll(out.get(), chunk, tar);
    }
    ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer o{buffer.data(), buffer.size(), 0};
      rc = ZSTD_decompressStream(dctx.get(), &o, &in);
      if (ZSTD_isError(rc) != 0) {
        return Fail(PackageErrc::kMalformed,
                    std::string("the payload is not zstd: ") + ZSTD_getErrorName(rc));
      }
      u.tar_size += o.pos;
      if (auto ok = WriteAll(out.get(), ByteView(buffer.data(), o.pos), tar); !ok) return ok;
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

Expected<std::map<std::string, OldFile, std::less<>>> IndexFiles(const fs::path& tar) {
  auto source = FileSource::Open(tar);
  if (!source) return std::unexpected(source.error());
  TarScanner scanner(*source);
  std::map<std::string, OldFile, std::less<>> files;
  for (;;) {
    auto entry = scanner.Next();
    if (!entry) return std::unexpected(entry.error());
    if (!*entry) return files;
    if ((*entry)->regular()) files[(*entry)->path] = {(*entry)->data_offset, (*entry)->size};
  }
}

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

// Writes the operations for the new tar, reading both tars by offset.
class OperationMaker {
 public:
  OperationMaker(DeltaWriter& writer, const Unpacked& old_package, const Unpacked& new_package,
                 Fd old_tar, Fd new_tar)
      : writer_(&writer),
        old_(&old_package),
        new_(&new_package),
        old_tar_(std::move(old_tar)),
        new_tar_(std::move(new_tar)) {}

  Expected<DeltaStats> Run() {
    auto old_files = IndexFiles(old_->tar);
    if (!old_files) return std::unexpected(old_files.error());
    auto source = FileSource::Open(new_->tar);
    if (!source) return std::unexpected(source.error());
    TarScanner scanner(*source);
    std::uint64_t cursor = 0;
    for (;;) {
      auto entry = scanner.Next();
      if (!entry) return std::unexpected(entry.error());
      if (!*entry) break;
      const TarEntry& e = **entry;
      if (!e.regular() || e.size == 0) continue;
      const auto old = old_files->find(e.path);
      if (old == old_files->end() || !DeltaPathProblem(e.path).empty()) {
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

  // A file both tars hold: copied when unchanged, patched when that is smaller than sending it.
  Expected<void> File(const TarEntry& e, const OldFile& old) {
    auto old_sha256 = HashRange(old_tar_.get(), old.offset, old.size, old_->tar);
    if (!old_sha256) return std::unexpected(old_sha256.error());
    if (old.size == e.size) {
      auto new_sha256 = HashRange(new_tar_.get(), e.data_offset, e.size, new_->tar);
      if (!new_sha256) return std::unexpected(new_sha256.error());
      if (*new_sha256 == *old_sha256) {
        ++stats_.copied_files;
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
  Fd old_tar_;
  Fd new_tar_;
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
                                const fs::path& path) {
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
  OperationMaker maker(*writer, old_package, new_package, std::move(old_tar), std::move(new_tar));
  auto stats = maker.Run();
  if (!stats) return stats;
  if (auto ok = writer->Finish(); !ok) return std::unexpected(ok.error());
  if (::fsync(out.get()) != 0 || out.Close() != 0) return std::unexpected(IoError("writing", path));
  stats->full_size = new_package.file_size;
  stats->delta_size = writer->written();
  stats->tar_size = new_package.tar_size;
  return stats;
}

// Applies the delta at `delta` to `old_package`, as a device would, into `scratch`.
Expected<void> Prove(const fs::path& delta, const fs::path& old_package,
                     const Unpacked& new_package, const fs::path& scratch) {
  auto base = PackageBase::Create(old_package);
  if (!base) return std::unexpected(base.error());
  auto source = FileSource::Open(delta);
  if (!source) return std::unexpected(source.error());
  auto rebuilt =
      ApplyDelta(*source, **base, {new_package.file_sha256, new_package.file_size}, scratch);
  if (!rebuilt) {
    return Fail(PackageErrc::kMismatch,
                "the delta does not rebuild the new package byte for byte, so only the full "
                "package can be offered (a payload not compressed by this Aspis's packer?): " +
                    rebuilt.error().message());
  }
  return {};
}

}  // namespace

Expected<DeltaStats> MakeDelta(const fs::path& old_package, const fs::path& new_package,
                               const fs::path& destination) {
  auto work = WorkDir::Create(destination);
  if (!work) return std::unexpected(work.error());
  auto old_unpacked = Unpack(old_package, work->path() / "old.tar");
  if (!old_unpacked) return std::unexpected(old_unpacked.error());
  auto new_unpacked = Unpack(new_package, work->path() / "new.tar");
  if (!new_unpacked) return std::unexpected(new_unpacked.error());
  if (auto ok = CheckPair(*old_unpacked, *new_unpacked); !ok) return std::unexpected(ok.error());
  const fs::path delta = work->path() / "delta";
  auto stats = WriteDelta(*old_unpacked, *new_unpacked, delta);
  if (!stats) return stats;
  if (auto ok = Prove(delta, old_package, *new_unpacked, work->path() / "rebuilt.aspkg"); !ok) {
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
