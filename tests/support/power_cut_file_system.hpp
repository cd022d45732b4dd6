#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include "core/file.hpp"

namespace aspis::testing {

// The real file system, with what a power cut would undo (LevelDB's FaultInjectionTestEnv): it
// remembers, for every file it wrote, renamed or removed, what would survive, and Crash() puts
// those files back that way. Data written since the file's last Sync is lost; a directory entry
// created, renamed or removed since the last SyncDirectory of its directory goes back to what it
// was. CutAfter(n) lets n more operations through and fails every one after (the power went out);
// cut() says whether it has. Files never touched through it are left alone. Thread-safe.
class PowerCutFileSystem final : public file::FileSystem {
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

  // `cut` runs once, when the first operation is refused; it must not call back into this.
  void CutAfter(int operations, std::function<void()> cut = {});
  bool cut() const;
  // Operations that changed something so far (reads are not counted).
  int operations() const;
  // Power loss: every file touched goes back to what survives, and the cut is cleared.
  void Crash();

 private:
  using Inode = int;
  Expected<void> Spend();
  // Starts remembering `path`: what is there now is taken as durable.
  void Track(const std::filesystem::path& path);
  Inode NewInode(Bytes synced);

  mutable std::mutex mutex_;
  std::map<Inode, Bytes> synced_;                                  // what survives of each file
  std::map<std::filesystem::path, Inode> names_;                   // the tracked names now
  std::map<std::filesystem::path, std::optional<Inode>> durable_;  // and after a power cut
  std::map<Handle, Inode> open_;
  Inode next_inode_ = 1;
  int operations_ = 0;
  std::optional<int> budget_;
  std::function<void()> on_cut_;
};

}  // namespace aspis::testing
