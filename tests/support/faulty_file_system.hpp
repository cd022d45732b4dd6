#pragma once

#include <filesystem>
#include <map>
#include <optional>

#include "core/file.hpp"

namespace aspis::testing {

// An in-memory file system that models what survives a power cut: file contents written since the
// last Sync, and directory entries changed since the last SyncDirectory of their directory, are
// lost by Crash(). FailAfter(n) makes every operation after the next n fail, as if power went out
// there. Directories need not be created. Not thread-safe.
class FaultyFileSystem final : public file::FileSystem {
 public:
  Expected<Temporary> CreateTemporary(const std::filesystem::path& dir, std::string_view prefix,
                                      mode_t mode) override;
  Expected<Handle> OpenAppend(const std::filesystem::path& path, mode_t mode) override;
  Expected<void> Write(Handle handle, ByteView data) override;
  Expected<void> Sync(Handle handle) override;
  Expected<void> Close(Handle handle) override;
  Expected<void> Rename(const std::filesystem::path& from,
                        const std::filesystem::path& to) override;
  Expected<void> SyncDirectory(const std::filesystem::path& dir) override;
  void Remove(const std::filesystem::path& path) override;
  Expected<Bytes> Read(const std::filesystem::path& path, std::size_t max_size) override;

  void FailAfter(int operations) { budget_ = operations; }
  // Power loss: drops everything not yet synced and clears FailAfter.
  void Crash();
  // Operations performed so far (each call counts once).
  int operations() const { return operations_; }
  std::size_t EntryCount() const { return entries_.size(); }

 private:
  struct Inode {
    Bytes data;
    Bytes synced;
  };
  Expected<void> Spend();

  std::map<int, Inode> inodes_;
  std::map<std::filesystem::path, int> entries_;
  std::map<std::filesystem::path, int> durable_entries_;
  std::map<Handle, int> open_;
  int next_inode_ = 1;
  int next_handle_ = 100;
  int operations_ = 0;
  std::optional<int> budget_;
};

}  // namespace aspis::testing
