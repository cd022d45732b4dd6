#include "device/state/state_store.hpp"

#include <algorithm>

namespace aspis::device::state {

Expected<std::filesystem::path> StateStore::PathOf(std::string_view name) const {
  const bool valid =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      });
  if (!valid) return Fail(CoreErrc::kInvalidArgument, "bad state record name");
  return dir_ / (std::string(name) + ".json");
}

Expected<std::optional<json::Json>> StateStore::Get(std::string_view name) const {
  auto path = PathOf(name);
  if (!path) return std::unexpected(path.error());
  auto text = fs_.Read(*path, kMaxRecordSize);
  if (!text) {
    if (text.error() == CoreErrc::kNotFound) return std::optional<json::Json>();
    return std::unexpected(std::move(text.error()).WithContext("state record " + path->string()));
  }
  auto doc = json::Parse(AsString(*text));
  if (!doc || !doc->is_object()) {
    return Fail(CoreErrc::kCorrupt, "state record " + path->string() + " is not a JSON object");
  }
  return std::optional<json::Json>(std::move(*doc));
}

Expected<void> StateStore::Put(std::string_view name, const json::Json& record) {
  auto path = PathOf(name);
  if (!path) return std::unexpected(path.error());
  const std::string text = record.dump();
  if (text.size() > kMaxRecordSize) {
    return Fail(CoreErrc::kInvalidArgument, "state record " + std::string(name) + " is too large");
  }
  return file::WriteDurably(fs_, *path, AsBytes(text), 0600);
}

Expected<void> StateStore::Erase(std::string_view name) {
  auto path = PathOf(name);
  if (!path) return std::unexpected(path.error());
  fs_.Remove(*path);
  return fs_.SyncDirectory(dir_);
}

}  // namespace aspis::device::state
