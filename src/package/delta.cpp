#include "package/delta.hpp"

#include <fcntl.h>
#include <stdlib.h>  // mkdtemp

#include <array>
#include <cerrno>
#include <functional>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "core/file.hpp"
#include "crypto/sha256.hpp"
#include "package/errors.hpp"
#include "package/payload_compression.hpp"
#include "package/tar_scan.hpp"
#include "package/zstd_ptr.hpp"

namespace aspis::package {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kChunk = std::size_t{64} << 10;
// The caller is asked whether to go on between operations and at least this often within one.
constexpr std::uint64_t kAskEvery = std::uint64_t{16} << 20;

std::string Shown(std::string_view path) { return "\"" + std::string(path.substr(0, 256)) + "\""; }

std::string VersionName(std::uint32_t v) {
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

// The delta's body: the operations, decompressed, read exactly.
class Body {
 public:
  explicit Body(ZstdSource& source) : source_(&source) {}

  Expected<void> Exactly(std::span<std::uint8_t> out, std::string_view what) {
    std::size_t done = 0;
    while (done < out.size()) {
      auto n = source_->Read(out.subspan(done));
      if (!n) return std::unexpected(std::move(n.error()).WithContext("reading the delta"));
      if (*n == 0) {
        return Fail(PackageErrc::kMalformed, "the delta ends inside " + std::string(what));
      }
      done += *n;
    }
    return {};
  }
  Expected<std::uint64_t> Big(int bytes, std::string_view what) {
    std::array<std::uint8_t, 8> raw{};
    auto part = std::span(raw).first(static_cast<std::size_t>(bytes));
    if (auto ok = Exactly(part, what); !ok) return std::unexpected(ok.error());
    std::uint64_t value = 0;
    for (const std::uint8_t b : part) value = (value << 8) | b;
    return value;
  }
  // A path, refused (kMalformed) unless DeltaPathProblem allows it.
  Expected<std::string> Path(std::string_view op) {
    auto length = Big(2, "an operation");
    if (!length) return std::unexpected(length.error());
    std::string path(static_cast<std::size_t>(*length), '\0');
    auto bytes = std::span(reinterpret_cast<std::uint8_t*>(path.data()), path.size());
    if (auto ok = Exactly(bytes, "an operation"); !ok) return std::unexpected(ok.error());
    if (std::string problem = DeltaPathProblem(path); !problem.empty()) {
      return Fail(PackageErrc::kMalformed, "the delta's " + std::string(op) + " operation's path " +
                                               Shown(path) + " " + problem);
    }
    return path;
  }
  Expected<crypto::Digest> Digest() {
    crypto::Digest digest{};
    if (auto ok = Exactly(digest, "an operation"); !ok) return std::unexpected(ok.error());
    return digest;
  }
  // Whether anything follows the end operation.
  Expected<bool> More() {
    std::uint8_t extra = 0;
    auto n = source_->Read(std::span(&extra, 1));
    if (!n) return std::unexpected(n.error());
    return *n != 0;
  }

 private:
  ZstdSource* source_;
};

// The rebuilt package: a temporary file beside the destination, hashed as it is written, never
// longer than the caller expects, renamed into place only when it is exactly what they expect.
class Output {
 public:
  static Expected<std::unique_ptr<Output>> Create(const fs::path& destination,
                                                  const DeltaTarget& expected) {
    auto hash = crypto::Sha256::Create();
    if (!hash) return std::unexpected(hash.error());
    const fs::path dir =
        destination.parent_path().empty() ? fs::path(".") : destination.parent_path();
    auto temporary = file::RealFileSystem().CreateTemporary(
        dir, "." + destination.filename().string() + ".rebuilding-", 0644);
    if (!temporary) return std::unexpected(temporary.error());
    return std::unique_ptr<Output>(
        new Output(destination, dir, expected, std::move(*hash), *temporary));
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  ~Output() {
    if (open_) {
      // Only after a failure, whose error is already on its way; this one adds nothing.
      [[maybe_unused]] const auto ignored = fs_.Close(temporary_.handle);
    }
    if (!committed_) fs_.Remove(temporary_.path);
  }

  Expected<void> Write(ByteView bytes) {
    if (bytes.size() > expected_.size - written_) {
      return Fail(PackageErrc::kMismatch, "the rebuilt package is larger than the expected " +
                                              std::to_string(expected_.size) + " bytes");
    }
    written_ += bytes.size();
    if (auto ok = hash_.Update(bytes); !ok) return ok;
    return fs_.Write(temporary_.handle, bytes);
  }

  Expected<void> Commit(const DeltaHeader& header) {
    if (written_ != expected_.size) {
      return Fail(PackageErrc::kMismatch, "the rebuilt package has " + std::to_string(written_) +
                                              " bytes, not the expected " +
                                              std::to_string(expected_.size));
    }
    auto digest = hash_.Finish();
    if (!digest) return std::unexpected(digest.error());
    if (*digest != expected_.sha256) {
      std::string hint;
      if (header.compression != 0 && header.zstd_version != PayloadCompressorVersion()) {
        hint = " (the delta was made with libzstd " + VersionName(header.zstd_version) +
               ", which may compress differently from this libzstd " +
               VersionName(PayloadCompressorVersion()) + ")";
      }
      return Fail(PackageErrc::kMismatch, "the rebuilt package's SHA-256 " +
                                              crypto::ToHex(*digest) + " is not the expected " +
                                              crypto::ToHex(expected_.sha256) + hint);
    }
    if (auto ok = fs_.Sync(temporary_.handle); !ok) return ok;
    open_ = false;
    if (auto ok = fs_.Close(temporary_.handle); !ok) return ok;
    if (auto ok = fs_.Rename(temporary_.path, destination_); !ok) return ok;
    committed_ = true;
    return fs_.SyncDirectory(dir_);
  }

 private:
  Output(fs::path destination, fs::path dir, const DeltaTarget& expected, crypto::Sha256 hash,
         file::FileSystem::Temporary temporary)
      : destination_(std::move(destination)),
        dir_(std::move(dir)),
        expected_(expected),
        hash_(std::move(hash)),
        temporary_(std::move(temporary)) {}

  file::FileSystem& fs_ = file::RealFileSystem();
  fs::path destination_;
  fs::path dir_;
  DeltaTarget expected_;
  crypto::Sha256 hash_;
  file::FileSystem::Temporary temporary_;
  std::uint64_t written_ = 0;
  bool open_ = true;
  bool committed_ = false;
};

// The target's payload tar as the operations rebuild it: bounded by its declared size, and
// compressed into the output as the packer compressed it.
class TarSink {
 public:
  static Expected<std::unique_ptr<TarSink>> Create(const DeltaHeader& header, Output& out) {
    std::unique_ptr<TarSink> sink(new TarSink(header.tar_size, out));
    if (header.compression != 0) {
      auto compressor =
          PayloadCompressor::Create([&out](ByteView bytes) { return out.Write(bytes); });
      if (!compressor) return std::unexpected(compressor.error());
      sink->compressor_.emplace(std::move(*compressor));
    }
    return sink;
  }

  std::uint64_t remaining() const { return declared_ - produced_; }

  Expected<void> Write(ByteView bytes) {
    if (bytes.size() > remaining()) {
      return Fail(PackageErrc::kMalformed, "the delta rebuilds more than the " +
                                               std::to_string(declared_) +
                                               " bytes of tar it declares");
    }
    produced_ += bytes.size();
    return compressor_ ? compressor_->Write(bytes) : out_->Write(bytes);
  }

  Expected<void> Finish() {
    if (produced_ != declared_) {
      return Fail(PackageErrc::kMalformed, "the delta rebuilds " + std::to_string(produced_) +
                                               " bytes of tar, not the " +
                                               std::to_string(declared_) + " it declares");
    }
    return compressor_ ? compressor_->Finish() : Expected<void>{};
  }

 private:
  TarSink(std::uint64_t declared, Output& out) : declared_(declared), out_(&out) {}
  std::uint64_t declared_;
  std::uint64_t produced_ = 0;
  Output* out_;
  std::optional<PayloadCompressor> compressor_;
};

// What the operations have done so far, against the bounds that keep a small hostile delta from
// keeping a device busy for hours (MaxDeltaOperations, MaxDeltaBaseBytes), and the caller's say on
// going on.
class Work {
 public:
  Work(std::uint64_t tar_size, const std::function<bool()>& keep_going)
      : tar_size_(tar_size), keep_going_(&keep_going) {}

  // Before each operation but the end: counts it, then asks the caller.
  Expected<void> NextOperation() {
    if (++operations_ > MaxDeltaOperations(tar_size_)) {
      return Fail(PackageErrc::kMalformed, "the delta has more than " +
                                               std::to_string(MaxDeltaOperations(tar_size_)) +
                                               " operations, the most a tar of " +
                                               std::to_string(tar_size_) + " bytes needs");
    }
    return AskCaller();
  }

  // Before a copy or a patch reads `bytes` of the base file at `path`.
  Expected<void> ReadBase(std::uint64_t bytes, std::string_view path) {
    if (bytes > MaxDeltaBaseBytes(tar_size_) - base_bytes_) {
      return Fail(PackageErrc::kMalformed,
                  "the delta reads more than " + std::to_string(MaxDeltaBaseBytes(tar_size_)) +
                      " bytes of base files (at " + Shown(path) + "), the most a tar of " +
                      std::to_string(tar_size_) + " bytes needs");
    }
    base_bytes_ += bytes;
    return {};
  }

  // After `bytes` of work (read from the base or the delta, decoded, or written).
  Expected<void> Did(std::uint64_t bytes) {
    since_asked_ += bytes;
    return since_asked_ >= kAskEvery ? AskCaller() : Expected<void>{};
  }

 private:
  Expected<void> AskCaller() {
    since_asked_ = 0;
    if (*keep_going_ && !(*keep_going_)()) return Fail(PackageErrc::kCancelled, "paused");
    return {};
  }

  std::uint64_t tar_size_;
  const std::function<bool()>* keep_going_;
  std::uint64_t operations_ = 0;
  std::uint64_t base_bytes_ = 0;
  std::uint64_t since_asked_ = 0;
};

// The header's claims about the target must agree with the target's own manifest.
Expected<void> CheckTargetHeader(const DeltaHeader& header) {
  auto length = HeaderLength(header.target_header);
  if (!length || *length != header.target_header.size()) {
    return Fail(PackageErrc::kMalformed, "the delta's target header is not a package header");
  }
  MemorySource source(header.target_header);
  auto reader = Reader::Inspect(source);
  if (!reader) return std::unexpected(std::move(reader.error()).WithContext("the delta's target"));
  const Manifest& m = reader->manifest();
  const bool compressed = m.payload.compression == Compression::kZstd;
  if (m.image_id != header.new_image_id ||
      header.target_size - header.target_header.size() != m.payload.size ||
      header.tar_size != (compressed ? m.payload.unpacked_size : m.payload.size)) {
    return Fail(PackageErrc::kMalformed,
                "the delta's header disagrees with the target's manifest (image ID or sizes)");
  }
  if (header.compression != (compressed ? kPayloadCompressionProfile : 0)) {
    return Fail(PackageErrc::kMalformed, "the delta needs payload compression profile " +
                                             std::to_string(header.compression) +
                                             ", which this build does not have");
  }
  return {};
}

Expected<void> ApplyLiteral(Body& body, TarSink& tar, Work& work) {
  auto length = body.Big(4, "a literal operation");
  if (!length) return std::unexpected(length.error());
  if (*length > tar.remaining()) {
    return Fail(PackageErrc::kMalformed, "a literal of " + std::to_string(*length) +
                                             " bytes runs past the tar's declared size");
  }
  std::vector<std::uint8_t> chunk(kChunk);
  for (std::uint64_t left = *length; left > 0;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk.size()));
    if (auto ok = body.Exactly(std::span(chunk).first(n), "a literal"); !ok) return ok;
    if (auto ok = tar.Write(ByteView(chunk.data(), n)); !ok) return ok;
    if (auto ok = work.Did(n); !ok) return ok;
    left -= n;
  }
  return {};
}

// Opens `path` in the base and checks it has `size` bytes.
Expected<void> OpenBaseFile(DeltaBase& base, const std::string& path, std::uint64_t size) {
  auto actual = base.Open(path);
  if (!actual) return std::unexpected(actual.error());
  if (*actual != size) {
    return Fail(PackageErrc::kMismatch,
                "the base's " + Shown(path) + " has " + std::to_string(*actual) +
                    " bytes; the delta was made from one of " + std::to_string(size));
  }
  return {};
}

Error BaseDiffers(const std::string& path) {
  return Error(PackageErrc::kMismatch,
               "the base's " + Shown(path) + " differs from the one the delta was made from");
}

// An operation that produces no bytes has no business reading a base file: an empty file's data
// is nothing, which its header (in a literal) already says.
Error ProducesNothing(std::string_view op, const std::string& path) {
  return Error(PackageErrc::kMalformed,
               "the " + std::string(op) + " of " + Shown(path) +
                   " produces no bytes (an empty file needs no operation)");
}

Expected<void> ApplyCopy(Body& body, DeltaBase& base, TarSink& tar, Work& work) {
  auto path = body.Path("copy");
  if (!path) return std::unexpected(path.error());
  auto size = body.Big(8, "a copy operation");
  if (!size) return std::unexpected(size.error());
  auto digest = body.Digest();
  if (!digest) return std::unexpected(digest.error());
  if (*size == 0) return std::unexpected(ProducesNothing("copy", *path));
  if (*size > tar.remaining()) {
    return Fail(PackageErrc::kMalformed,
                "the copy of " + Shown(*path) + " runs past the tar's declared size");
  }
  if (auto ok = work.ReadBase(*size, *path); !ok) return ok;
  if (auto ok = OpenBaseFile(base, *path, *size); !ok) return ok;
  auto hash = crypto::Sha256::Create();
  if (!hash) return std::unexpected(hash.error());
  std::vector<std::uint8_t> chunk(kChunk);
  for (std::uint64_t left = *size; left > 0;) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk.size()));
    auto n = base.Read(std::span(chunk).first(want));
    if (!n) return std::unexpected(n.error());
    if (*n == 0) return std::unexpected(BaseDiffers(*path));
    const ByteView got(chunk.data(), *n);
    if (auto ok = hash->Update(got); !ok) return ok;
    if (auto ok = tar.Write(got); !ok) return ok;
    if (auto ok = work.Did(*n); !ok) return ok;
    left -= *n;
  }
  auto actual = hash->Finish();
  if (!actual) return std::unexpected(actual.error());
  if (*actual != *digest) return std::unexpected(BaseDiffers(*path));
  return {};
}

// The whole of a base file a patch refers to, checked against the delta's digest.
Expected<Bytes> ReadReference(DeltaBase& base, const std::string& path, std::uint64_t size,
                              const crypto::Digest& digest, Work& work) {
  if (auto ok = OpenBaseFile(base, path, size); !ok) return std::unexpected(ok.error());
  Bytes reference(static_cast<std::size_t>(size));
  for (std::size_t done = 0; done < reference.size();) {
    auto n = base.Read(std::span(reference).subspan(done));
    if (!n) return std::unexpected(n.error());
    if (*n == 0) return std::unexpected(BaseDiffers(path));
    done += *n;
    if (auto ok = work.Did(*n); !ok) return std::unexpected(ok.error());
  }
  auto actual = crypto::Sha256Of(reference);
  if (!actual) return std::unexpected(actual.error());
  if (*actual != digest) return std::unexpected(BaseDiffers(path));
  return reference;
}

struct PatchOp {
  std::string path;
  std::uint64_t old_size = 0;
  crypto::Digest old_sha256{};
  std::uint64_t new_size = 0;
  std::uint64_t frame_size = 0;
};

Expected<PatchOp> ReadPatchOp(Body& body, const TarSink& tar) {
  PatchOp op;
  auto path = body.Path("patch");
  if (!path) return std::unexpected(path.error());
  op.path = std::move(*path);
  auto old_size = body.Big(8, "a patch operation");
  if (!old_size) return std::unexpected(old_size.error());
  auto old_sha256 = body.Digest();
  if (!old_sha256) return std::unexpected(old_sha256.error());
  auto new_size = body.Big(8, "a patch operation");
  if (!new_size) return std::unexpected(new_size.error());
  auto frame_size = body.Big(4, "a patch operation");
  if (!frame_size) return std::unexpected(frame_size.error());
  op.old_size = *old_size;
  op.old_sha256 = *old_sha256;
  op.new_size = *new_size;
  op.frame_size = *frame_size;
  if (op.old_size > kMaxPatchedFileSize || op.new_size > kMaxPatchedFileSize ||
      op.frame_size > ZSTD_compressBound(kMaxPatchedFileSize)) {
    return Fail(PackageErrc::kMalformed,
                "the patch of " + Shown(op.path) + " is over the 16 MiB limit of patched files");
  }
  if (op.new_size == 0) return std::unexpected(ProducesNothing("patch", op.path));
  if (op.new_size > tar.remaining()) {
    return Fail(PackageErrc::kMalformed,
                "the patch of " + Shown(op.path) + " runs past the tar's declared size");
  }
  return op;
}

Error PatchBeyond(const PatchOp& op) {
  return Error(PackageErrc::kMalformed, "the patch of " + Shown(op.path) +
                                            " decompresses beyond its declared size of " +
                                            std::to_string(op.new_size) + " bytes");
}

// Checks the patch frame's header, whose first bytes are `head`, before any decoding: a zstd
// frame declaring exactly the operation's size, which bounds what the decoder allocates.
Expected<void> CheckPatchFrame(const PatchOp& op, ByteView head) {
  const unsigned long long size = ZSTD_getFrameContentSize(head.data(), head.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) {
    return Fail(PackageErrc::kMalformed, "the patch of " + Shown(op.path) + " is not a zstd frame");
  }
  if (size != op.new_size) return std::unexpected(PatchBeyond(op));
  return {};
}

Expected<void> ApplyPatch(Body& body, DeltaBase& base, TarSink& tar, Work& work) {
  auto op = ReadPatchOp(body, tar);
  if (!op) return std::unexpected(op.error());
  if (auto ok = work.ReadBase(op->old_size, op->path); !ok) return ok;
  auto reference = ReadReference(base, op->path, op->old_size, op->old_sha256, work);
  if (!reference) return std::unexpected(reference.error());
  ZstdDecompressor dctx(ZSTD_createDCtx());
  if (!dctx) return Fail(PackageErrc::kIo, "out of memory for the zstd decompressor");
  if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, kPatchWindowLog)) != 0 ||
      ZSTD_isError(ZSTD_DCtx_refPrefix(dctx.get(), reference->data(), reference->size())) != 0) {
    return Fail(PackageErrc::kIo, "setting up the zstd decompressor");
  }
  std::vector<std::uint8_t> in(kChunk);
  std::vector<std::uint8_t> out(kChunk);
  std::size_t in_pos = 0;
  std::size_t in_size = 0;
  std::uint64_t left = op->frame_size;
  std::uint64_t produced = 0;
  for (bool first = true;; first = false) {
    if (in_pos == in_size && left > 0) {
      in_size = static_cast<std::size_t>(std::min<std::uint64_t>(left, in.size()));
      in_pos = 0;
      left -= in_size;
      if (auto ok = body.Exactly(std::span(in).first(in_size), "a patch"); !ok) return ok;
      if (first) {
        if (auto ok = CheckPatchFrame(*op, ByteView(in.data(), in_size)); !ok) return ok;
      }
    }
    ZSTD_inBuffer input{in.data(), in_size, in_pos};
    ZSTD_outBuffer output{out.data(), out.size(), 0};
    const std::size_t rc = ZSTD_decompressStream(dctx.get(), &output, &input);
    if (ZSTD_isError(rc) != 0) {
      return Fail(PackageErrc::kMalformed,
                  "the patch of " + Shown(op->path) + " is damaged: " + ZSTD_getErrorName(rc));
    }
    const std::size_t consumed = input.pos - in_pos;
    in_pos = input.pos;
    produced += output.pos;
    if (produced > op->new_size) return std::unexpected(PatchBeyond(*op));
    if (auto ok = tar.Write(ByteView(out.data(), output.pos)); !ok) return ok;
    if (auto ok = work.Did(consumed + output.pos); !ok) return ok;
    if (rc == 0) break;
    if (output.pos == 0 && in_pos == in_size && left == 0) {
      return Fail(PackageErrc::kMalformed, "the patch of " + Shown(op->path) + " is truncated");
    }
  }
  if (in_pos != in_size || left != 0 || produced != op->new_size) {
    return Fail(PackageErrc::kMalformed,
                "the patch of " + Shown(op->path) + " does not end where its operation says");
  }
  return {};
}

Expected<void> ApplyOperations(Body& body, DeltaBase& base, TarSink& tar, Work& work) {
  for (;;) {
    auto op = body.Big(1, "its operations");
    if (!op) return std::unexpected(op.error());
    if (static_cast<DeltaOp>(*op) == DeltaOp::kEnd) {
      auto more = body.More();
      if (!more) return std::unexpected(more.error());
      if (*more) return Fail(PackageErrc::kMalformed, "operations follow the delta's end");
      return {};
    }
    if (auto ok = work.NextOperation(); !ok) return ok;
    Expected<void> done;
    switch (static_cast<DeltaOp>(*op)) {
      case DeltaOp::kLiteral:
        done = ApplyLiteral(body, tar, work);
        break;
      case DeltaOp::kCopy:
        done = ApplyCopy(body, base, tar, work);
        break;
      case DeltaOp::kPatch:
        done = ApplyPatch(body, base, tar, work);
        break;
      default:
        return Fail(PackageErrc::kMalformed, "unknown delta operation " + std::to_string(*op));
    }
    if (!done) return done;
  }
}

}  // namespace

Expected<DeltaHeader> ApplyDelta(Source& delta, DeltaBase& base, const DeltaTarget& expected,
                                 const fs::path& destination,
                                 const std::function<bool()>& keep_going) {
  auto header = ReadDeltaHeader(delta);
  if (!header) return std::unexpected(header.error());
  if (header->target_sha256 != expected.sha256 || header->target_size != expected.size) {
    return Fail(
        PackageErrc::kMismatch,
        "the delta rebuilds the package with SHA-256 " + crypto::ToHex(header->target_sha256) +
            " (" + std::to_string(header->target_size) + " bytes), not the expected " +
            crypto::ToHex(expected.sha256) + " (" + std::to_string(expected.size) + " bytes)");
  }
  if (auto ok = CheckTargetHeader(*header); !ok) return std::unexpected(ok.error());
  auto source = ZstdSource::Create(delta, kDeltaBodyWindowLog, true);
  if (!source) return std::unexpected(source.error());
  auto out = Output::Create(destination, expected);
  if (!out) return std::unexpected(out.error());
  if (auto ok = (*out)->Write(header->target_header); !ok) return std::unexpected(ok.error());
  auto tar = TarSink::Create(*header, **out);
  if (!tar) return std::unexpected(tar.error());
  Body body(*source);
  Work work(header->tar_size, keep_going);
  auto applied = ApplyOperations(body, base, **tar, work);
  if (applied) applied = source->ExpectEnd();
  if (applied) applied = (*tar)->Finish();
  if (applied) applied = (*out)->Commit(*header);
  if (!applied) {
    return std::unexpected(
        std::move(applied.error()).WithContext("rebuilding " + destination.string()));
  }
  return header;
}

}  // namespace aspis::package
