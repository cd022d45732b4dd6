#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "crypto/sha256.hpp"
#include "package/delta_format.hpp"
#include "package/package.hpp"

// Deltas between two versions of an image package (docs/formats/aspkg.md, "Deltas"): a device
// that has version OLD of a component rebuilds the exact bytes of NEW's .aspkg from OLD's files
// and a small delta, and checks them like a full download. The delta describes NEW's payload tar
// as literal bytes (headers, new files), old files copied whole, and old files patched (zstd with
// the old file as reference); it carries NEW's signed header verbatim, and NEW's payload is
// recompressed with PayloadCompressor, which reproduces the packer's bytes.
namespace aspis::package {

// Where an applier finds the files of the old version. A base holds at most one file open: Open
// ends the previous one. Implementations are not thread-safe.
class DeltaBase {
 public:
  virtual ~DeltaBase() = default;
  // Opens the regular file at `path` (relative, already checked with DeltaPathProblem) and
  // returns its size. Errors: kMismatch (no such regular file in the base), kUnsafeEntry (the
  // path leads out of the base), kMalformed (a damaged base package), kIo.
  virtual Expected<std::uint64_t> Open(std::string_view path) = 0;
  // Reads the open file's next bytes; 0 at its end. Errors: kIo, kMalformed.
  virtual Expected<std::size_t> Read(std::span<std::uint8_t> buffer) = 0;
};

// The old version as its package (what the service and the CLI have). The package's signature
// is not checked: every file taken from it is checked against the SHA-256 the delta names, and
// the result against the caller's digest. Files are found by reading the payload forward; a path
// behind the last one opened starts the read again from the beginning.
class PackageBase final : public DeltaBase {
 public:
  // Errors: kIo, kMalformed (not a package, or a payload compressed otherwise than zstd or none).
  static Expected<std::unique_ptr<PackageBase>> Create(const std::filesystem::path& package);
  ~PackageBase() override;
  Expected<std::uint64_t> Open(std::string_view path) override;
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override;

 private:
  struct Cursor;
  explicit PackageBase(std::filesystem::path package);
  Expected<void> Restart();
  std::filesystem::path package_;
  std::unique_ptr<Cursor> cursor_;
};

// The old version as an installed tree (what the device has: the OS slot or app directory the
// old package was unpacked to). Paths are resolved one component at a time below the root
// without following any symbolic link (O_NOFOLLOW), so a base read never leaves the tree.
class TreeBase final : public DeltaBase {
 public:
  // Errors: kIo (the root is not a readable directory).
  static Expected<std::unique_ptr<TreeBase>> Create(const std::filesystem::path& root);
  Expected<std::uint64_t> Open(std::string_view path) override;
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override;

 private:
  explicit TreeBase(Fd root) : root_(std::move(root)) {}
  Fd root_;
  Fd file_{-1};
};

// The package the caller expects, from its signed update manifest.
struct DeltaTarget {
  crypto::Digest sha256{};  // of the whole .aspkg file
  std::uint64_t size = 0;   // bytes of the whole .aspkg file
};

// Memory an applier needs at most, whatever the package's size: two files of
// kMaxPatchedFileSize (a patch's reference and its window), the body's window, a base package's
// decompression window and the payload compressor.
inline constexpr std::uint64_t kApplyMemoryBound = std::uint64_t{52} << 20;

// Rebuilds the target package from `delta` (hostile until proven otherwise) and `base`, writing it
// to `destination` durably (temporary file beside it, fsync, rename, fsync of the directory) while
// hashing it, and succeeds only when it is exactly `expected` (the caller's, never the delta's).
// On error `destination` is untouched and nothing else is left behind. Memory stays under
// kApplyMemoryBound. Errors: kMalformed (a damaged or hostile delta: bad operations or paths, an
// operation claiming more than remains, a patch larger than it declares), kMismatch (the delta is
// for another target, a base file is missing or differs from the one the delta was made from, or
// the result is not `expected`), kTooLarge, kUnsafeEntry, kIo. Returns the delta's header.
Expected<DeltaHeader> ApplyDelta(Source& delta, DeltaBase& base, const DeltaTarget& expected,
                                 const std::filesystem::path& destination);

struct DeltaStats {
  std::uint64_t full_size = 0;   // bytes of the new package
  std::uint64_t delta_size = 0;  // bytes of the delta
  std::uint64_t tar_size = 0;    // bytes of the new payload's tar
  std::uint64_t copied_files = 0;
  std::uint64_t patched_files = 0;
  std::uint64_t literal_files = 0;  // changed or new files sent whole
};

// Makes the delta that rebuilds `new_package` from `old_package` (two versions of one component)
// and writes it to `destination` durably. Neither signature is checked (the caller trusts the
// packages, as the service does after verifying their upload); each payload is checked against its
// manifest. Before writing, the delta is applied to `old_package` and must rebuild `new_package`
// byte for byte; when it does not (a payload the PayloadCompressor does not reproduce, as one
// packed by an older Aspis) the result is kMismatch and only the full package can be offered.
// Uses temporary files of about both tars' size beside `destination`. Errors: kMismatch,
// kMalformed (not packages, payloads that are not tars), kIo.
Expected<DeltaStats> MakeDelta(const std::filesystem::path& old_package,
                               const std::filesystem::path& new_package,
                               const std::filesystem::path& destination);

}  // namespace aspis::package
