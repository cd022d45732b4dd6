#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/sha256.hpp"
#include "package/package.hpp"

// The delta file format (docs/formats/aspkg.md, "Deltas"): a header that carries the target
// package's own header verbatim, then one zstd frame of operations that rebuild the target's
// payload tar from literal bytes and the files of the old version. This header is the encoder and
// the format's limits; delta.hpp makes and applies deltas.
namespace aspis::package {

inline constexpr std::string_view kDeltaMagic = "ASPISDLT";
inline constexpr std::uint32_t kDeltaVersion = 1;

// Files larger than this (old or new) are never patched, only copied whole or sent as literals,
// so that applying a patch holds at most two such files.
inline constexpr std::uint64_t kMaxPatchedFileSize = std::uint64_t{16} << 20;
// The largest window the operation stream's zstd frame may use (8 MiB).
inline constexpr int kDeltaBodyWindowLog = 23;
// The largest window a patch frame may use: the old file and the new one together (32 MiB).
inline constexpr int kPatchWindowLog = 25;
// The longest path an operation may name.
inline constexpr std::size_t kMaxDeltaPath = 4096;

// The most operations (kEnd aside) a delta may hold for a tar of `tar_size` bytes. Every tar entry
// starts with a 512-byte header, so an honest delta needs at most one literal and one copy or patch
// per entry of at least 1024 bytes; the bound keeps a small delta of empty operations from keeping
// a device busy.
constexpr std::uint64_t MaxDeltaOperations(std::uint64_t tar_size) { return tar_size / 512 + 16; }

// The most bytes of base files a delta may read for a tar of `tar_size` bytes: the sizes of its
// copies and the old sizes of its patches, summed. Copies alone never read more than the tar; the
// rest leaves room for patches from larger old files, but not for reading a base file over and
// over to produce little.
constexpr std::uint64_t MaxDeltaBaseBytes(std::uint64_t tar_size) {
  return 4 * tar_size + (std::uint64_t{64} << 20);
}

// What a delta says about itself. Only cross-checks: an applier trusts the SHA-256 and size of
// the target its signed update manifest gives, never these.
struct DeltaHeader {
  std::string old_image_id;        // the package the delta was made from
  std::string new_image_id;        // the package it rebuilds
  crypto::Digest target_sha256{};  // of the whole target .aspkg file
  std::uint64_t target_size = 0;   // bytes of the whole target .aspkg file
  std::uint64_t tar_size = 0;      // bytes of the target's uncompressed payload tar
  // 0: the payload is the tar itself (compression `none`); otherwise the PayloadCompressor
  // profile (kPayloadCompressionProfile) that turns the tar into the payload.
  std::uint8_t compression = 0;
  std::uint32_t zstd_version = 0;  // the maker's libzstd (ZSTD_versionNumber), for diagnostics
  Bytes target_header;             // the target's magic, envelope length and envelope
};

// The operations of a delta's body, in the order the target tar's bytes come.
enum class DeltaOp : std::uint8_t {
  kEnd = 0,      // the tar is complete
  kLiteral = 1,  // u32 length, then that many bytes
  kCopy = 2,     // path, u64 size, SHA-256: an old file, unchanged
  kPatch = 3,    // path, u64 old size, old SHA-256, u64 new size, u32 length, a zstd patch frame
};

// Whether `path` may name a base file: relative, not empty, at most kMaxDeltaPath bytes, no NUL,
// no empty, `.` or `..` component. Returns why not, or empty when it may.
std::string DeltaPathProblem(std::string_view path);

// Reads and checks a delta's header from `source`, leaving it at the start of the body. Errors:
// kMalformed (not a delta, a version this build does not read, a field out of range), the
// source's.
Expected<DeltaHeader> ReadDeltaHeader(Source& source);

// Encodes a delta, handing its bytes to a sink in order. It checks nothing (ApplyDelta checks
// everything), so that tests can make hostile deltas with it. Not thread-safe.
class DeltaWriter {
 public:
  using Sink = std::function<Expected<void>(ByteView)>;

  // Writes the header. `level` is the zstd level of the operation stream. Errors: kIo, the sink's.
  static Expected<DeltaWriter> Create(const DeltaHeader& header, Sink sink, int level = 19);
  DeltaWriter(DeltaWriter&&) noexcept;
  DeltaWriter& operator=(DeltaWriter&&) noexcept;
  ~DeltaWriter();

  Expected<void> Literal(ByteView bytes);
  Expected<void> Copy(std::string_view path, std::uint64_t size, const crypto::Digest& sha256);
  Expected<void> Patch(std::string_view path, std::uint64_t old_size,
                       const crypto::Digest& old_sha256, std::uint64_t new_size, ByteView frame);
  // Writes kEnd and ends the frame; call once, last.
  Expected<void> Finish();
  // Bytes handed to the sink so far.
  std::uint64_t written() const;

 private:
  struct State;
  explicit DeltaWriter(std::unique_ptr<State> state);
  Expected<void> Op(ByteView bytes);
  std::unique_ptr<State> state_;
};

// A zstd frame that decompresses to `updated` given `old` as its reference (ZSTD_CCtx_refPrefix,
// as `zstd --patch-from` does for a whole file), with its content size declared and a window
// covering both (at most 2^kPatchWindowLog). Errors: kTooLarge (either is over
// kMaxPatchedFileSize), kIo.
Expected<Bytes> MakePatch(ByteView old, ByteView updated, int level = 19);

}  // namespace aspis::package
