#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
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

// The most entries a tar may have for making a delta (MakeDelta) or serving as a PackageBase;
// more is kTooLarge. Each costs an index entry of its path in memory.
inline constexpr std::uint64_t kMaxDeltaTarEntries = 1'000'000;

// The old version as its package (what the CLI has). The package's signature is not checked:
// every file taken from it is checked against the SHA-256 the delta names, and the result against
// the caller's digest. Create reads the payload once, forward, to index where each path lies (at
// most kMaxDeltaTarEntries entries; the index's memory grows with their paths), so a path the
// package lacks costs nothing to refuse. Files are then read from the payload forward; opening a
// file behind the read position starts the read again from the beginning (deltas from MakeDelta
// name files in the new tar's order, which is the old one's for packages from PackDirectory).
class PackageBase final : public DeltaBase {
 public:
  // Errors: kIo, kMalformed (not a package, a payload compressed otherwise than zstd or none, or
  // whose tar is damaged), kTooLarge (more than kMaxDeltaTarEntries entries).
  static Expected<std::unique_ptr<PackageBase>> Create(const std::filesystem::path& package);
  ~PackageBase() override;
  Expected<std::uint64_t> Open(std::string_view path) override;
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override;

 private:
  struct Cursor;
  struct Index;
  explicit PackageBase(std::filesystem::path package);
  Expected<void> Restart();
  Expected<void> BuildIndex();
  std::filesystem::path package_;
  std::unique_ptr<Cursor> cursor_;
  std::unique_ptr<Index> index_;
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
// kApplyMemoryBound. The work is bounded by the target's tar size T, whatever the delta says: at
// most MaxDeltaOperations(T) operations and MaxDeltaBaseBytes(T) bytes read from base files, and
// no copy or patch that produces nothing.
//
// `keep_going` (empty: never stop) is called on the calling thread before each operation and at
// least every 16 MiB of work within one; when it returns false, applying stops with kCancelled
// ("paused") and nothing is left behind, so the caller may start again later.
//
// Errors: kMalformed (a damaged or hostile delta: bad operations or paths, an operation claiming
// more than remains or producing nothing, a patch larger than it declares, more operations or
// base reads than the bounds above), kMismatch (the delta is for another target, a base file is
// missing or differs from the one the delta was made from, or the result is not `expected`),
// kTooLarge, kUnsafeEntry, kIo, kCancelled. Returns the delta's header.
Expected<DeltaHeader> ApplyDelta(Source& delta, DeltaBase& base, const DeltaTarget& expected,
                                 const std::filesystem::path& destination,
                                 const std::function<bool()>& keep_going = {});

struct DeltaStats {
  std::uint64_t full_size = 0;   // bytes of the new package
  std::uint64_t delta_size = 0;  // bytes of the delta
  std::uint64_t tar_size = 0;    // bytes of the new payload's tar
  std::uint64_t copied_files = 0;
  std::uint64_t patched_files = 0;
  std::uint64_t literal_files = 0;  // changed or new files sent whole
};

// Bytes free to an unprivileged writer on the file system holding the directory `dir`. Errors:
// kIo.
using FreeSpaceProbe = std::function<Expected<std::uint64_t>(const std::filesystem::path& dir)>;

// What MakeDelta needs free beside its destination before it starts: both packages' tars as their
// manifests declare them (payload.unpacked_size), the new package rebuilt once more to prove the
// delta, and 64 MiB for the delta and slack.
std::uint64_t MakeDeltaSpaceNeeded(std::uint64_t old_unpacked_size, std::uint64_t new_unpacked_size,
                                   std::uint64_t new_package_size);

// Makes the delta that rebuilds `new_package` from `old_package` (two versions of one component)
// and writes it to `destination` durably. Neither signature is checked (the caller trusts the
// packages, as the service does after verifying their upload); each payload is checked against its
// manifest. Before writing, the delta is applied to the old version's files and must rebuild
// `new_package` byte for byte; when it does not (a payload the PayloadCompressor does not
// reproduce, as one packed by an older Aspis) the result is kMismatch and only the full package
// can be offered. The delta respects the bounds ApplyDelta enforces (files beyond them travel as
// literals).
//
// Uses temporary files of about both tars' size beside `destination`, and refuses to start unless
// `free_space` (empty: statvfs of the destination's directory) reports MakeDeltaSpaceNeeded. A
// payload that decompresses to more than its manifest's payload.unpacked_size is stopped there
// (kTooLarge), so a small hostile package cannot fill the disk; a tar of more than
// kMaxDeltaTarEntries entries is kTooLarge. Time and memory grow linearly with the packages.
//
// Errors say whether trying again can help:
// - permanent, a property of the two packages (offer only the full package): kMismatch (different
//   components, a payload that differs from its manifest, a delta that does not rebuild the new
//   package), kMalformed (not packages, payloads that are not tars), kTooLarge (a payload larger
//   than its manifest declares, too many tar entries);
// - transient, of this machine (try again later): kIo, including too little free space.
Expected<DeltaStats> MakeDelta(const std::filesystem::path& old_package,
                               const std::filesystem::path& new_package,
                               const std::filesystem::path& destination,
                               const FreeSpaceProbe& free_space = {});

}  // namespace aspis::package
