#include "support/faulty_file_system.hpp"

namespace aspis::testing {

namespace {

std::unexpected<Error> PowerCut() { return Fail(CoreErrc::kIo, "simulated power cut"); }

}  // namespace

Expected<void> FaultyFileSystem::Spend() {
  ++operations_;
  if (budget_) {
    if (*budget_ <= 0) return PowerCut();
    --*budget_;
  }
  return {};
}

Expected<FaultyFileSystem::Temporary> FaultyFileSystem::CreateTemporary(
    const std::filesystem::path& dir, std::string_view prefix, mode_t /*mode*/) {
  if (auto ok = Spend(); !ok) return std::unexpected(ok.error());
  const int inode = next_inode_++;
  const auto path = dir / (std::string(prefix) + std::to_string(inode));
  inodes_[inode] = {};
  entries_[path] = inode;
  const Handle handle = next_handle_++;
  open_[handle] = inode;
  return Temporary{handle, path};
}

Expected<FaultyFileSystem::Handle> FaultyFileSystem::OpenAppend(const std::filesystem::path& path,
                                                                mode_t /*mode*/) {
  if (auto ok = Spend(); !ok) return std::unexpected(ok.error());
  auto [entry, created] = entries_.try_emplace(path, next_inode_);
  if (created) inodes_[next_inode_++] = {};
  const Handle handle = next_handle_++;
  open_[handle] = entry->second;
  return handle;
}

Expected<void> FaultyFileSystem::Write(Handle handle, ByteView data) {
  if (auto ok = Spend(); !ok) return ok;
  Bytes& bytes = inodes_.at(open_.at(handle)).data;
  bytes.insert(bytes.end(), data.begin(), data.end());
  return {};
}

Expected<void> FaultyFileSystem::Sync(Handle handle) {
  if (auto ok = Spend(); !ok) return ok;
  Inode& inode = inodes_.at(open_.at(handle));
  inode.synced = inode.data;
  return {};
}

Expected<void> FaultyFileSystem::Close(Handle handle) {
  open_.erase(handle);
  return Spend();
}

Expected<void> FaultyFileSystem::Rename(const std::filesystem::path& from,
                                        const std::filesystem::path& to) {
  if (auto ok = Spend(); !ok) return ok;
  const auto it = entries_.find(from);
  if (it == entries_.end()) return Fail(CoreErrc::kNotFound, from.string() + " does not exist");
  entries_[to] = it->second;
  entries_.erase(from);
  return {};
}

Expected<void> FaultyFileSystem::SyncDirectory(const std::filesystem::path& dir) {
  if (auto ok = Spend(); !ok) return ok;
  std::erase_if(durable_entries_, [&](const auto& e) { return e.first.parent_path() == dir; });
  for (const auto& [path, inode] : entries_) {
    if (path.parent_path() == dir) durable_entries_[path] = inode;
  }
  return {};
}

void FaultyFileSystem::Remove(const std::filesystem::path& path) {
  ++operations_;
  entries_.erase(path);
}

Expected<Bytes> FaultyFileSystem::Read(const std::filesystem::path& path, std::size_t max_size) {
  const auto it = entries_.find(path);
  if (it == entries_.end()) return Fail(CoreErrc::kNotFound, path.string() + " does not exist");
  const Bytes& data = inodes_.at(it->second).data;
  if (data.size() > max_size) return Fail(CoreErrc::kCorrupt, path.string() + " is too large");
  return data;
}

void FaultyFileSystem::Crash() {
  entries_ = durable_entries_;
  for (auto& [id, inode] : inodes_) inode.data = inode.synced;
  open_.clear();
  budget_.reset();
}

}  // namespace aspis::testing
