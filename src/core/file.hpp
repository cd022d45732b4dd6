#pragma once

#include <sys/types.h>
#include <filesystem>
#include <string>

#include "core/bytes.hpp"
#include "core/error.hpp"

namespace aspis::file {

// The one audited durable write: writes `contents` to a temporary file beside `path` with `mode`,
// fsyncs it, renames it over `path`, and fsyncs the directory. After a power loss at any point,
// `path` holds either its old contents or all of the new ones, never a mix. On error `path` is
// untouched and the temporary file is removed.
Expected<void> WriteDurably(const std::filesystem::path& path, ByteView contents, mode_t mode);

// The read limit for small documents: configuration, state records, single certificates.
inline constexpr std::size_t kSmallFileLimit = std::size_t{64} << 10;

// Reads a whole regular file. Files larger than `max_size` bytes are refused (kCorrupt), so a
// hostile or damaged file cannot exhaust memory.
Expected<Bytes> Read(const std::filesystem::path& path, std::size_t max_size = 16u << 20);

// Fails with kPermission when the file can be read or written by group or others: for key files.
Expected<void> RequireOwnerOnly(const std::filesystem::path& path);

// Creates `dir` (and parents) with `mode` if it does not exist; fails if it exists as a
// non-directory.
Expected<void> EnsureDirectory(const std::filesystem::path& dir, mode_t mode);

}  // namespace aspis::file
