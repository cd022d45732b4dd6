#pragma once

#include <sys/types.h>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "core/error.hpp"

namespace aspis::file {

// The errno a failed file operation stands for, for callers that answer with errno values (as
// applibs does): ENOENT, EACCES, ENOSPC, or EIO for anything else.
int ErrnoOf(const Error& error);

// The operations a durable write is made of, so tests can cut power between any two of them
// (tests/support/faulty_file_system.hpp). Implementations are not required to be thread-safe.
// System errors are kNotFound, kPermission, kNoSpace (a full file system or quota) or kIo.
class FileSystem {
 public:
  using Handle = int;
  struct Temporary {
    Handle handle;
    std::filesystem::path path;
  };

  virtual ~FileSystem() = default;
  // A new empty file in `dir` whose name starts with `prefix`, open for writing, with `mode`.
  virtual Expected<Temporary> CreateTemporary(const std::filesystem::path& dir,
                                              std::string_view prefix, mode_t mode) = 0;
  // `path` open for appending, created with `mode` when missing; never through a symbolic link.
  virtual Expected<Handle> OpenAppend(const std::filesystem::path& path, mode_t mode) = 0;
  virtual Expected<void> Write(Handle handle, ByteView data) = 0;
  virtual Expected<void> Sync(Handle handle) = 0;
  // Releases the handle even when it reports an error.
  virtual Expected<void> Close(Handle handle) = 0;
  virtual Expected<void> Rename(const std::filesystem::path& from,
                                const std::filesystem::path& to) = 0;
  virtual Expected<void> SyncDirectory(const std::filesystem::path& dir) = 0;
  // Best effort: for cleaning up after a failure.
  virtual void Remove(const std::filesystem::path& path) = 0;
  virtual Expected<Bytes> Read(const std::filesystem::path& path, std::size_t max_size) = 0;
};

// The operating system's file system. Thread-safe.
FileSystem& RealFileSystem();

// The one audited durable write: writes `contents` to a temporary file beside `path` with `mode`,
// fsyncs it, renames it over `path`, and fsyncs the directory. After a power loss at any point,
// `path` holds either its old contents or all of the new ones, never a mix. On error `path` is
// untouched and the temporary file is removed.
Expected<void> WriteDurably(FileSystem& fs, const std::filesystem::path& path, ByteView contents,
                            mode_t mode);
inline Expected<void> WriteDurably(const std::filesystem::path& path, ByteView contents,
                                   mode_t mode) {
  return WriteDurably(RealFileSystem(), path, contents, mode);
}

// The read limit for small documents: configuration, state records, single certificates.
inline constexpr std::size_t kSmallFileLimit = std::size_t{64} << 10;

// Reads a whole regular file. Files larger than `max_size` bytes are refused (kCorrupt), so a
// hostile or damaged file cannot exhaust memory.
inline constexpr std::size_t kDefaultReadLimit = std::size_t{16} << 20;
inline Expected<Bytes> Read(const std::filesystem::path& path,
                            std::size_t max_size = kDefaultReadLimit) {
  return RealFileSystem().Read(path, max_size);
}

// Fails with kPermission when the file can be read or written by group or others: for key files.
Expected<void> RequireOwnerOnly(const std::filesystem::path& path);

// Creates `dir` (and parents) with `mode` if it does not exist; fails if it exists as a
// non-directory.
Expected<void> EnsureDirectory(const std::filesystem::path& dir, mode_t mode);

}  // namespace aspis::file
