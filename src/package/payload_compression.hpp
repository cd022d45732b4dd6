#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "package/package.hpp"

// The one way Aspis compresses a package payload, shared by the packer (PackDirectory) and the
// delta applier (delta.hpp), which must produce the very bytes the packer wrote: one zstd frame
// with a content checksum, made by libzstd on one thread at a fixed level and window, from input
// cut into fixed chunks whatever sizes the caller writes in. The same tar therefore compresses to
// the same bytes with the same libzstd; `zstd -d` reads the result.
namespace aspis::package {

// Identifies the parameters below; a delta records it, and a change to the parameters is a new
// value.
inline constexpr std::uint8_t kPayloadCompressionProfile = 1;

class PayloadCompressor {
 public:
  // Receives compressed bytes, in order; an error stops the compression.
  using Sink = std::function<Expected<void>(ByteView)>;

  // Errors: kIo (libzstd could not be set up).
  static Expected<PayloadCompressor> Create(Sink sink);
  PayloadCompressor(PayloadCompressor&&) noexcept;
  PayloadCompressor& operator=(PayloadCompressor&&) noexcept;
  ~PayloadCompressor();

  // Adds uncompressed bytes. Errors: kIo, or the sink's.
  Expected<void> Write(ByteView data);
  // Ends the frame and hands the rest to the sink; call once, after the last Write.
  Expected<void> Finish();
  // Uncompressed bytes written so far.
  std::uint64_t consumed() const;

 private:
  struct State;
  explicit PayloadCompressor(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Compresses the file at `image` (an OS partition image) with PayloadCompressor into a new file
// at `destination`; returns the image's size. Errors: kIo.
Expected<std::uint64_t> CompressFile(const std::filesystem::path& image,
                                     const std::filesystem::path& destination);

// Reads zstd-compressed bytes from `inner` (which must outlive it) and hands them out
// decompressed: the Source of a compressed payload or delta. Frames whose window is over
// 2^window_log_max bytes are refused (kTooLarge), so a hostile stream cannot make it allocate
// more than that. With `single_frame`, the stream is one frame and nothing may follow it.
class ZstdSource final : public Source {
 public:
  // Errors: kIo (libzstd could not be set up).
  static Expected<ZstdSource> Create(Source& inner, int window_log_max, bool single_frame);
  ZstdSource(ZstdSource&&) noexcept;
  ZstdSource& operator=(ZstdSource&&) noexcept;
  ~ZstdSource() override;

  // Errors: kMalformed (not zstd, damaged, or ends inside a frame), kTooLarge, or the inner
  // source's.
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override;
  // After Read returned 0 with `single_frame`: fails (kMalformed) when bytes follow the frame.
  Expected<void> ExpectEnd();

 private:
  struct State;
  explicit ZstdSource(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The libzstd version (ZSTD_versionNumber) this build compresses with, e.g. 10504 for 1.5.4.
std::uint32_t PayloadCompressorVersion();

}  // namespace aspis::package
