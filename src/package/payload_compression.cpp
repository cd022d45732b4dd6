#include "package/payload_compression.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <string>
#include <vector>

#include "package/errors.hpp"
#include "package/zstd_ptr.hpp"

namespace aspis::package {

namespace {

// The profile's parameters. Level 3 with a 2 MiB window is zstd's default for streams of unknown
// size; it is named here so that a new libzstd default cannot change what we write, and it keeps a
// device that rebuilds a package from a delta within a few MiB.
constexpr int kLevel = 3;
constexpr int kWindowLog = 21;
// Input reaches libzstd in chunks of exactly this size (the last may be shorter), so the frame
// does not depend on how the caller cut its writes.
constexpr std::size_t kInputChunk = std::size_t{1} << 20;

Error ZstdError(std::size_t code, std::string_view what) {
  return Error(PackageErrc::kIo, std::string(what) + ": " + ZSTD_getErrorName(code) + " (libzstd)");
}

}  // namespace

struct PayloadCompressor::State {
  ZstdCompressor cctx;
  Sink sink;
  std::vector<std::uint8_t> input;
  std::vector<std::uint8_t> output;
  std::uint64_t consumed = 0;
  bool finished = false;

  // Compresses `input` (all of it) with `mode`, handing every output byte to the sink.
  Expected<void> Drain(ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{input.data(), input.size(), 0};
    for (;;) {
      ZSTD_outBuffer out{output.data(), output.size(), 0};
      const std::size_t left = ZSTD_compressStream2(cctx.get(), &out, &in, mode);
      if (ZSTD_isError(left) != 0) return std::unexpected(ZstdError(left, "compressing"));
      if (out.pos > 0) {
        if (auto ok = sink(ByteView(output.data(), out.pos)); !ok) return ok;
      }
      const bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
      if (done) break;
    }
    input.clear();
    return {};
  }
};

PayloadCompressor::PayloadCompressor(std::unique_ptr<State> state) : state_(std::move(state)) {}
PayloadCompressor::PayloadCompressor(PayloadCompressor&&) noexcept = default;
PayloadCompressor& PayloadCompressor::operator=(PayloadCompressor&&) noexcept = default;
PayloadCompressor::~PayloadCompressor() = default;

Expected<PayloadCompressor> PayloadCompressor::Create(Sink sink) {
  auto state = std::make_unique<State>();
  state->cctx.reset(ZSTD_createCCtx());
  if (!state->cctx) return Fail(PackageErrc::kIo, "out of memory for the zstd compressor");
  for (const auto& [parameter, value] :
       {std::pair{ZSTD_c_compressionLevel, kLevel}, std::pair{ZSTD_c_windowLog, kWindowLog},
        std::pair{ZSTD_c_checksumFlag, 1}, std::pair{ZSTD_c_contentSizeFlag, 0},
        std::pair{ZSTD_c_nbWorkers, 0}}) {
    const std::size_t rc = ZSTD_CCtx_setParameter(state->cctx.get(), parameter, value);
    if (ZSTD_isError(rc) != 0) return std::unexpected(ZstdError(rc, "setting up zstd"));
  }
  state->sink = std::move(sink);
  state->input.reserve(kInputChunk);
  state->output.resize(ZSTD_CStreamOutSize());
  return PayloadCompressor(std::move(state));
}

Expected<void> PayloadCompressor::Write(ByteView data) {
  State& s = *state_;
  if (s.finished) return Fail(PackageErrc::kIo, "the payload was already finished");
  while (!data.empty()) {
    const std::size_t take = std::min(kInputChunk - s.input.size(), data.size());
    s.input.insert(s.input.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
    data = data.subspan(take);
    s.consumed += take;
    if (s.input.size() == kInputChunk) {
      if (auto ok = s.Drain(ZSTD_e_continue); !ok) return ok;
    }
  }
  return {};
}

Expected<void> PayloadCompressor::Finish() {
  State& s = *state_;
  if (s.finished) return Fail(PackageErrc::kIo, "the payload was already finished");
  s.finished = true;
  return s.Drain(ZSTD_e_end);
}

std::uint64_t PayloadCompressor::consumed() const { return state_->consumed; }

struct ZstdSource::State {
  Source* inner = nullptr;
  ZstdDecompressor dctx;
  bool single_frame = false;
  std::vector<std::uint8_t> input;
  std::size_t in_pos = 0;
  std::size_t in_size = 0;
  bool inner_ended = false;
  bool at_boundary = true;  // no frame begun, or the last one complete
  bool done = false;        // single_frame: the frame is complete
};

ZstdSource::ZstdSource(std::unique_ptr<State> state) : state_(std::move(state)) {}
ZstdSource::ZstdSource(ZstdSource&&) noexcept = default;
ZstdSource& ZstdSource::operator=(ZstdSource&&) noexcept = default;
ZstdSource::~ZstdSource() = default;

Expected<ZstdSource> ZstdSource::Create(Source& inner, int window_log_max, bool single_frame) {
  auto state = std::make_unique<State>();
  state->inner = &inner;
  state->single_frame = single_frame;
  state->dctx.reset(ZSTD_createDCtx());
  if (!state->dctx) return Fail(PackageErrc::kIo, "out of memory for the zstd decompressor");
  const std::size_t rc =
      ZSTD_DCtx_setParameter(state->dctx.get(), ZSTD_d_windowLogMax, window_log_max);
  if (ZSTD_isError(rc) != 0) return std::unexpected(ZstdError(rc, "setting up zstd"));
  state->input.resize(ZSTD_DStreamInSize());
  return ZstdSource(std::move(state));
}

Expected<std::size_t> ZstdSource::Read(std::span<std::uint8_t> buffer) {
  State& s = *state_;
  if (buffer.empty() || s.done) return 0;
  for (;;) {
    if (s.in_pos == s.in_size && !s.inner_ended) {
      auto n = s.inner->Read(s.input);
      if (!n) return std::unexpected(n.error());
      s.in_pos = 0;
      s.in_size = *n;
      s.inner_ended = *n == 0;
    }
    ZSTD_inBuffer in{s.input.data(), s.in_size, s.in_pos};
    ZSTD_outBuffer out{buffer.data(), buffer.size(), 0};
    const std::size_t rc = ZSTD_decompressStream(s.dctx.get(), &out, &in);
    if (ZSTD_isError(rc) != 0) {
      if (ZSTD_getErrorCode(rc) == ZSTD_error_frameParameter_windowTooLarge) {
        return Fail(PackageErrc::kTooLarge,
                    "the zstd stream needs a window larger than this "
                    "reader allows");
      }
      return Fail(PackageErrc::kMalformed,
                  std::string("the zstd stream is damaged: ") + ZSTD_getErrorName(rc));
    }
    if (in.pos > s.in_pos || out.pos > 0) s.at_boundary = rc == 0;
    s.in_pos = in.pos;
    if (rc == 0 && s.single_frame) s.done = true;
    if (out.pos > 0 || s.done) return out.pos;
    if (s.inner_ended && s.in_pos == s.in_size) {
      if (!s.at_boundary)
        return Fail(PackageErrc::kMalformed, "the zstd stream ends inside a frame");
      if (s.single_frame) return Fail(PackageErrc::kMalformed, "the zstd stream holds no frame");
      return 0;
    }
  }
}

Expected<void> ZstdSource::ExpectEnd() {
  State& s = *state_;
  if (s.in_pos < s.in_size) return Fail(PackageErrc::kMalformed, "bytes follow the zstd frame");
  if (s.inner_ended) return {};
  std::uint8_t extra = 0;
  auto n = s.inner->Read(std::span(&extra, 1));
  if (!n) return std::unexpected(n.error());
  if (*n != 0) return Fail(PackageErrc::kMalformed, "bytes follow the zstd frame");
  return {};
}

std::uint32_t PayloadCompressorVersion() { return ZSTD_versionNumber(); }

Expected<std::uint64_t> CompressFile(const std::filesystem::path& image,
                                     const std::filesystem::path& destination) {
  std::ifstream in(image, std::ios::binary);
  if (!in) return Fail(PackageErrc::kIo, "cannot read " + image.string());
  std::ofstream out(destination, std::ios::binary | std::ios::trunc);
  if (!out) return Fail(PackageErrc::kIo, "cannot write " + destination.string());
  auto compressor = PayloadCompressor::Create([&](ByteView bytes) -> Expected<void> {
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) return Fail(PackageErrc::kIo, "writing " + destination.string());
    return {};
  });
  if (!compressor) return std::unexpected(compressor.error());
  std::array<char, std::size_t{1} << 16> buffer{};
  while (in) {
    in.read(buffer.data(), buffer.size());
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    if (auto ok = compressor->Write({reinterpret_cast<const std::uint8_t*>(buffer.data()), n});
        !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (in.bad()) return Fail(PackageErrc::kIo, "reading " + image.string());
  if (auto ok = compressor->Finish(); !ok) return std::unexpected(ok.error());
  out.close();
  if (!out) return Fail(PackageErrc::kIo, "writing " + destination.string());
  return compressor->consumed();
}

}  // namespace aspis::package
