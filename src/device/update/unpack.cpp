#include "device/update/unpack.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "core/fd.hpp"
#include "device/update/errors.hpp"
#include "package/manifest.hpp"

namespace aspis::device::update {

namespace fs = std::filesystem;

namespace {

Error InstallError(std::string message) { return Error(UpdateErrc::kInstall, std::move(message)); }

Expected<void> WritePayload(package::Reader& reader, const fs::path& path) {
  const Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (out.get() < 0) return std::unexpected(InstallError("cannot create " + path.string()));
  return reader.StreamPayload([&](ByteView chunk) -> Expected<void> {
    while (!chunk.empty()) {
      const ssize_t n = ::write(out.get(), chunk.data(), chunk.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(InstallError("writing " + path.string() + " failed"));
      }
      chunk = chunk.subspan(static_cast<std::size_t>(n));
    }
    return {};
  });
}

}  // namespace

Expected<void> SyncTree(const fs::path& dir) {
  const Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::syncfs(fd.get()) != 0) {
    return std::unexpected(InstallError("flushing " + dir.string() + " failed"));
  }
  return {};
}

Expected<void> UnpackPayload(package::Reader& reader, const fs::path& target,
                             package::TreeRules rules) {
  const fs::path payload = target.parent_path() / (target.filename().string() + ".payload");
  std::error_code ec;
  fs::remove(payload, ec);
  auto unpacked = WritePayload(reader, payload);
  // The signed unpacked size bounds what is written, whatever the archive says of itself.
  if (unpacked) {
    unpacked =
        package::UnpackArchive(payload, target, reader.manifest().payload.unpacked_size, rules);
  }
  fs::remove(payload, ec);
  if (unpacked) unpacked = SyncTree(target);
  if (!unpacked) fs::remove_all(target, ec);
  return unpacked;
}

}  // namespace aspis::device::update
