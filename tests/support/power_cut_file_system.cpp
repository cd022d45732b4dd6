#include "support/power_cut_file_system.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>

namespace aspis::testing {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kLargest = std::size_t{1} << 30;

file::FileSystem& Real() { return file::RealFileSystem(); }

// Puts `contents` at `path` as it is, keeping the file's mode when it exists.
void Restore(const fs::path& path, const Bytes& contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

Expected<void> PowerCutFileSystem::Spend() {
  ++operations_;
  if (budget_) {
    if (*budget_ <= 0) {
      if (on_cut_) std::exchange(on_cut_, nullptr)();
      return Fail(CoreErrc::kIo, "simulated power cut");
    }
    --*budget_;
  }
  return {};
}

void PowerCutFileSystem::Track(const fs::path& path) {
  if (durable_.contains(path)) return;
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  if (fs::is_regular_file(status)) {
    auto contents = Real().Read(path, kLargest);
    const Inode inode = NewInode(contents ? std::move(*contents) : Bytes());
    names_[path] = inode;
    durable_[path] = inode;
  } else if (!fs::exists(status)) {
    durable_[path] = std::nullopt;
  }
}

PowerCutFileSystem::Inode PowerCutFileSystem::NewInode(Bytes synced) {
  const Inode inode = next_inode_++;
  synced_[inode] = std::move(synced);
  return inode;
}

Expected<PowerCutFileSystem::Temporary> PowerCutFileSystem::CreateTemporary(const fs::path& dir,
                                                                            std::string_view prefix,
                                                                            mode_t mode) {
  const std::lock_guard lock(mutex_);
  if (auto ok = Spend(); !ok) return std::unexpected(ok.error());
  auto temporary = Real().CreateTemporary(dir, prefix, mode);
  if (!temporary) return temporary;
  durable_[temporary->path] = std::nullopt;
  names_[temporary->path] = NewInode({});
  open_[temporary->handle] = names_[temporary->path];
  return temporary;
}

Expected<PowerCutFileSystem::Handle> PowerCutFileSystem::OpenAppend(const fs::path& path,
                                                                    mode_t mode) {
  const std::lock_guard lock(mutex_);
  if (auto ok = Spend(); !ok) return std::unexpected(ok.error());
  Track(path);
  auto handle = Real().OpenAppend(path, mode);
  if (!handle) return handle;
  if (!names_.contains(path)) names_[path] = NewInode({});
  open_[*handle] = names_[path];
  return handle;
}

Expected<void> PowerCutFileSystem::Write(Handle handle, ByteView data) {
  const std::lock_guard lock(mutex_);
  if (auto ok = Spend(); !ok) return ok;
  return Real().Write(handle, data);
}

Expected<void> PowerCutFileSystem::Sync(Handle handle) {
  const std::lock_guard lock(mutex_);
  if (auto ok = Spend(); !ok) return ok;
  if (auto ok = Real().Sync(handle); !ok) return ok;
  auto contents = Real().Read("/proc/self/fd/" + std::to_string(handle), kLargest);
  if (!contents) return std::unexpected(contents.error());
  if (const auto inode = open_.find(handle); inode != open_.end()) {
    synced_[inode->second] = std::move(*contents);
  }
  return {};
}

Expected<void> PowerCutFileSystem::Close(Handle handle) {
  const std::lock_guard lock(mutex_);
  open_.erase(handle);
  auto closed = Real().Close(handle);
  if (auto ok = Spend(); !ok) return ok;
  return closed;
}

Expected<void> PowerCutFileSystem::Rename(const fs::path& from, const fs::path& to) {
  const std::lock_guard lock(mutex_);
  if (auto ok = Spend(); !ok) return ok;
  Track(from);
  Track(to);
  if (auto ok = Real().Rename(from, to); !ok) return ok;
  if (const auto moved = names_.find(from); moved != names_.end()) {
    names_[to] = moved->second;
    names_.erase(moved);
  } else {
    names_.erase(to);
  }
  return {};
}

Expected<void> PowerCutFileSystem::SyncDirectory(const fs::path& dir) {
  const std::lock_guard lock(mutex_);
  if (auto ok = Spend(); !ok) return ok;
  if (auto ok = Real().SyncDirectory(dir); !ok) return ok;
  for (auto& [path, inode] : durable_) {
    if (path.parent_path() != dir) continue;
    const auto now = names_.find(path);
    inode = now == names_.end() ? std::nullopt : std::optional(now->second);
  }
  return {};
}

void PowerCutFileSystem::Remove(const fs::path& path) {
  const std::lock_guard lock(mutex_);
  if (!Spend()) return;
  Track(path);
  Real().Remove(path);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) names_.erase(path);
}

Expected<Bytes> PowerCutFileSystem::Read(const fs::path& path, std::size_t max_size) {
  return Real().Read(path, max_size);
}

void PowerCutFileSystem::CutAfter(int operations, std::function<void()> cut) {
  const std::lock_guard lock(mutex_);
  budget_ = operations;
  on_cut_ = std::move(cut);
}

bool PowerCutFileSystem::cut() const {
  const std::lock_guard lock(mutex_);
  return budget_ && *budget_ <= 0;
}

int PowerCutFileSystem::operations() const {
  const std::lock_guard lock(mutex_);
  return operations_;
}

void PowerCutFileSystem::Crash() {
  const std::lock_guard lock(mutex_);
  for (const auto& [handle, inode] : open_) ::close(handle);
  for (const auto& [path, inode] : durable_) {
    std::error_code ec;
    if (inode) {
      Restore(path, synced_.at(*inode));
    } else {
      fs::remove(path, ec);
    }
  }
  open_.clear();
  names_.clear();
  durable_.clear();
  synced_.clear();
  budget_.reset();
  on_cut_ = nullptr;
}

}  // namespace aspis::testing
