#pragma once

#include <cstdint>
#include <filesystem>

#include "core/error.hpp"

// The tar payloads of app (and simulator OS) packages, through libarchive: packing a directory
// into a zstd-compressed tar, and unpacking one without ever writing outside the target.
namespace aspis::package {

// What a tree may hold besides regular files and directories. App trees hold nothing else; OS
// trees (the simulator's root file systems) also hold symbolic links whose target is relative and
// stays inside the tree when resolved from the link's directory, as `bin -> usr/bin`.
struct TreeRules {
  bool symlinks = false;
};

struct Packed {
  std::uint64_t unpacked_size = 0;  // bytes of the tar before compression
};

// Writes the entries under `dir` to `destination` as a zstd-compressed pax tar, in path order,
// owned by 0:0, dated 0, with permission bits only (so the same tree packs to the same bytes).
// Entries `rules` do not allow are refused (kUnsafeEntry): hard links, device nodes, FIFOs and
// sockets always, as are setuid, setgid and sticky bits. Errors: kUnsafeEntry, kIo.
Expected<Packed> PackDirectory(const std::filesystem::path& dir,
                               const std::filesystem::path& destination, TreeRules rules = {});

// Unpacks the zstd-compressed (or plain) tar at `archive` into `target`, which must not exist
// and is created (0755). Every entry is checked before anything of it is written: a relative path
// without `..`, a regular file or directory (or a symbolic link `rules` allows), no setuid, setgid
// or sticky bit; otherwise kUnsafeEntry naming the entry, and `target` is removed. Nothing is
// written through a link. The entries' sizes together may not
// exceed `max_unpacked` (kTooLarge). Errors also: kMalformed (not a tar), kIo.
Expected<void> UnpackArchive(const std::filesystem::path& archive,
                             const std::filesystem::path& target, std::uint64_t max_unpacked,
                             TreeRules rules = {});

}  // namespace aspis::package
