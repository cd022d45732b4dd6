#include "package/delta_format.hpp"

#include <algorithm>
#include <array>
#include <bit>

#include "crypto/dsse.hpp"
#include "package/errors.hpp"
#include "package/manifest.hpp"
#include "package/zstd_ptr.hpp"

namespace aspis::package {

namespace {

constexpr std::size_t kMaxImageId = 64;

void PutBig(Bytes& out, std::uint64_t value, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(value >> shift));
  }
}

void PutPath(Bytes& out, std::string_view path) {
  PutBig(out, path.size(), 2);
  out.insert(out.end(), path.begin(), path.end());
}

Error ZstdError(std::size_t code, std::string_view what) {
  return Error(PackageErrc::kIo, std::string(what) + ": " + ZSTD_getErrorName(code) + " (libzstd)");
}

Error Malformed(std::string_view why) {
  return Error(PackageErrc::kMalformed, "not a valid delta: " + std::string(why));
}

// Reads exactly `out.size()` bytes. Errors: kMalformed naming `what` when the source ends first.
Expected<void> ReadExactly(Source& source, std::span<std::uint8_t> out, std::string_view what) {
  std::size_t done = 0;
  while (done < out.size()) {
    auto n = source.Read(out.subspan(done));
    if (!n) return std::unexpected(n.error());
    if (*n == 0) return std::unexpected(Malformed("it ends in " + std::string(what)));
    done += *n;
  }
  return {};
}

Expected<std::uint64_t> ReadBig(Source& source, int bytes, std::string_view what) {
  std::array<std::uint8_t, 8> raw{};
  if (auto ok = ReadExactly(source, std::span(raw).first(static_cast<std::size_t>(bytes)), what);
      !ok) {
    return std::unexpected(ok.error());
  }
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | raw[static_cast<std::size_t>(i)];
  return value;
}

Expected<std::string> ReadImageId(Source& source, std::string_view what) {
  auto length = ReadBig(source, 1, what);
  if (!length) return std::unexpected(length.error());
  if (*length > kMaxImageId) return std::unexpected(Malformed(std::string(what) + " is too long"));
  std::string id(static_cast<std::size_t>(*length), '\0');
  if (auto ok = ReadExactly(source,
                            std::span(reinterpret_cast<std::uint8_t*>(id.data()), id.size()), what);
      !ok)
    return std::unexpected(ok.error());
  return id;
}

}  // namespace

std::string DeltaPathProblem(std::string_view path) {
  if (path.empty()) return "is empty";
  if (path.size() > kMaxDeltaPath) return "is longer than 4096 bytes";
  if (path.find('\0') != std::string_view::npos) return "holds a NUL byte";
  if (path.front() == '/') return "is absolute";
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == ".") return "has an empty or . component";
    if (part == "..") return "climbs out of the base with ..";
    if (end == path.size()) return {};
    start = end + 1;
  }
}

Expected<DeltaHeader> ReadDeltaHeader(Source& source) {
  std::array<std::uint8_t, kDeltaMagic.size()> magic{};
  if (auto ok = ReadExactly(source, magic, "its magic"); !ok) return std::unexpected(ok.error());
  if (!std::equal(magic.begin(), magic.end(), kDeltaMagic.begin())) {
    return std::unexpected(Malformed("no ASPISDLT magic"));
  }
  auto version = ReadBig(source, 4, "its version");
  if (!version) return std::unexpected(version.error());
  if (*version != kDeltaVersion) {
    return std::unexpected(Malformed("format version " + std::to_string(*version) +
                                     ", this build reads version " +
                                     std::to_string(kDeltaVersion)));
  }
  DeltaHeader header;
  auto old_id = ReadImageId(source, "the old image ID");
  if (!old_id) return std::unexpected(old_id.error());
  header.old_image_id = std::move(*old_id);
  auto new_id = ReadImageId(source, "the new image ID");
  if (!new_id) return std::unexpected(new_id.error());
  header.new_image_id = std::move(*new_id);
  if (auto ok = ReadExactly(source, header.target_sha256, "the target's SHA-256"); !ok) {
    return std::unexpected(ok.error());
  }
  auto target_size = ReadBig(source, 8, "the target's size");
  auto tar_size = ReadBig(source, 8, "the tar's size");
  auto compression = ReadBig(source, 1, "the compression");
  auto zstd_version = ReadBig(source, 4, "the zstd version");
  auto header_length = ReadBig(source, 4, "the target's header length");
  for (const auto* field : {&target_size, &tar_size, &compression, &zstd_version, &header_length}) {
    if (!*field) return std::unexpected(field->error());
  }
  constexpr std::uint64_t kMaxHeader = kPrefixSize + crypto::dsse::kMaxEnvelopeSize;
  if (*header_length < kPrefixSize || *header_length > kMaxHeader) {
    return std::unexpected(Malformed("the target's header length is out of range"));
  }
  if (*target_size < *header_length || *target_size - *header_length > kMaxPayloadSize ||
      *tar_size > kMaxPayloadSize) {
    return std::unexpected(Malformed("the target's size is out of range"));
  }
  header.target_size = *target_size;
  header.tar_size = *tar_size;
  header.compression = static_cast<std::uint8_t>(*compression);
  header.zstd_version = static_cast<std::uint32_t>(*zstd_version);
  header.target_header.resize(static_cast<std::size_t>(*header_length));
  if (auto ok = ReadExactly(source, header.target_header, "the target's header"); !ok) {
    return std::unexpected(ok.error());
  }
  return header;
}

struct DeltaWriter::State {
  Sink sink;
  ZstdCompressor cctx;
  std::vector<std::uint8_t> output;
  std::uint64_t written = 0;

  Expected<void> Emit(ByteView bytes) {
    written += bytes.size();
    return sink(bytes);
  }
  Expected<void> Compress(ByteView bytes, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
    for (;;) {
      ZSTD_outBuffer out{output.data(), output.size(), 0};
      const std::size_t left = ZSTD_compressStream2(cctx.get(), &out, &in, mode);
      if (ZSTD_isError(left) != 0) return std::unexpected(ZstdError(left, "compressing a delta"));
      if (out.pos > 0) {
        if (auto ok = Emit(ByteView(output.data(), out.pos)); !ok) return ok;
      }
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) return {};
    }
  }
};

DeltaWriter::DeltaWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
DeltaWriter::DeltaWriter(DeltaWriter&&) noexcept = default;
DeltaWriter& DeltaWriter::operator=(DeltaWriter&&) noexcept = default;
DeltaWriter::~DeltaWriter() = default;

Expected<DeltaWriter> DeltaWriter::Create(const DeltaHeader& header, Sink sink, int level) {
  auto state = std::make_unique<State>();
  state->sink = std::move(sink);
  state->cctx.reset(ZSTD_createCCtx());
  if (!state->cctx) return Fail(PackageErrc::kIo, "out of memory for the zstd compressor");
  for (const auto& [parameter, value] :
       {std::pair{ZSTD_c_compressionLevel, level}, std::pair{ZSTD_c_windowLog, kDeltaBodyWindowLog},
        std::pair{ZSTD_c_checksumFlag, 1}}) {
    const std::size_t rc = ZSTD_CCtx_setParameter(state->cctx.get(), parameter, value);
    if (ZSTD_isError(rc) != 0) return std::unexpected(ZstdError(rc, "setting up zstd"));
  }
  state->output.resize(ZSTD_CStreamOutSize());
  Bytes out(kDeltaMagic.begin(), kDeltaMagic.end());
  PutBig(out, kDeltaVersion, 4);
  for (const std::string* id : {&header.old_image_id, &header.new_image_id}) {
    PutBig(out, id->size(), 1);
    out.insert(out.end(), id->begin(), id->end());
  }
  out.insert(out.end(), header.target_sha256.begin(), header.target_sha256.end());
  PutBig(out, header.target_size, 8);
  PutBig(out, header.tar_size, 8);
  PutBig(out, header.compression, 1);
  PutBig(out, header.zstd_version, 4);
  PutBig(out, header.target_header.size(), 4);
  out.insert(out.end(), header.target_header.begin(), header.target_header.end());
  if (auto ok = state->Emit(out); !ok) return std::unexpected(ok.error());
  return DeltaWriter(std::move(state));
}

Expected<void> DeltaWriter::Op(ByteView bytes) { return state_->Compress(bytes, ZSTD_e_continue); }

Expected<void> DeltaWriter::Literal(ByteView bytes) {
  Bytes op{static_cast<std::uint8_t>(DeltaOp::kLiteral)};
  PutBig(op, bytes.size(), 4);
  if (auto ok = Op(op); !ok) return ok;
  return Op(bytes);
}

Expected<void> DeltaWriter::Copy(std::string_view path, std::uint64_t size,
                                 const crypto::Digest& sha256) {
  Bytes op{static_cast<std::uint8_t>(DeltaOp::kCopy)};
  PutPath(op, path);
  PutBig(op, size, 8);
  op.insert(op.end(), sha256.begin(), sha256.end());
  return Op(op);
}

Expected<void> DeltaWriter::Patch(std::string_view path, std::uint64_t old_size,
                                  const crypto::Digest& old_sha256, std::uint64_t new_size,
                                  ByteView frame) {
  Bytes op{static_cast<std::uint8_t>(DeltaOp::kPatch)};
  PutPath(op, path);
  PutBig(op, old_size, 8);
  op.insert(op.end(), old_sha256.begin(), old_sha256.end());
  PutBig(op, new_size, 8);
  PutBig(op, frame.size(), 4);
  if (auto ok = Op(op); !ok) return ok;
  return Op(frame);
}

Expected<void> DeltaWriter::Finish() {
  const std::array<std::uint8_t, 1> end{static_cast<std::uint8_t>(DeltaOp::kEnd)};
  return state_->Compress(end, ZSTD_e_end);
}

std::uint64_t DeltaWriter::written() const { return state_->written; }

Expected<Bytes> MakePatch(ByteView old, ByteView updated, int level) {
  if (old.size() > kMaxPatchedFileSize || updated.size() > kMaxPatchedFileSize) {
    return Fail(PackageErrc::kTooLarge, "files over 16 MiB are not patched");
  }
  ZstdCompressor cctx(ZSTD_createCCtx());
  if (!cctx) return Fail(PackageErrc::kIo, "out of memory for the zstd compressor");
  const int window_log = std::clamp(
      static_cast<int>(std::bit_width(std::max<std::uint64_t>(old.size() + updated.size(), 1))), 10,
      kPatchWindowLog);
  for (const auto& [parameter, value] :
       {std::pair{ZSTD_c_compressionLevel, level}, std::pair{ZSTD_c_windowLog, window_log},
        std::pair{ZSTD_c_contentSizeFlag, 1}, std::pair{ZSTD_c_checksumFlag, 0}}) {
    const std::size_t rc = ZSTD_CCtx_setParameter(cctx.get(), parameter, value);
    if (ZSTD_isError(rc) != 0) return std::unexpected(ZstdError(rc, "setting up zstd"));
  }
  const std::size_t rc = ZSTD_CCtx_refPrefix(cctx.get(), old.data(), old.size());
  if (ZSTD_isError(rc) != 0) return std::unexpected(ZstdError(rc, "referencing the old file"));
  Bytes frame(ZSTD_compressBound(updated.size()));
  const std::size_t size =
      ZSTD_compress2(cctx.get(), frame.data(), frame.size(), updated.data(), updated.size());
  if (ZSTD_isError(size) != 0) return std::unexpected(ZstdError(size, "making a patch"));
  frame.resize(size);
  return frame;
}

}  // namespace aspis::package
