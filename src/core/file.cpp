#include "core/file.hpp"
#include "core/fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <system_error>

#include <fmt/format.h>

namespace aspis::file {

namespace {

Error SysError(std::string_view what, const std::filesystem::path& path) {
  const int err = errno;
  const CoreErrc code = err == ENOENT                      ? CoreErrc::kNotFound
                        : (err == EACCES || err == EPERM)  ? CoreErrc::kPermission
                        : (err == ENOSPC || err == EDQUOT) ? CoreErrc::kNoSpace
                                                           : CoreErrc::kIo;
  return Error(
      code, std::string(what) + " " + path.string() + ": " + std::generic_category().message(err));
}

Expected<void> WriteAll(int fd, ByteView data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(SysError("writing", path));
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

class RealFs final : public FileSystem {
 public:
  Expected<Temporary> CreateTemporary(const std::filesystem::path& dir, std::string_view prefix,
                                      mode_t mode) override {
    std::string name = (dir / (std::string(prefix) + "XXXXXX")).string();
    const int fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) return std::unexpected(SysError("creating temporary file in", dir));
    if (::fchmod(fd, mode) != 0) {
      Error error = SysError("setting mode of", name);
      ::close(fd);
      ::unlink(name.c_str());
      return std::unexpected(std::move(error));
    }
    return Temporary{fd, name};
  }

  Expected<Handle> OpenAppend(const std::filesystem::path& path, mode_t mode) override {
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return std::unexpected(SysError("opening", path));
    return fd;
  }

  Expected<void> Write(Handle handle, ByteView data) override {
    return WriteAll(handle, data, "fd " + std::to_string(handle));
  }

  Expected<void> Sync(Handle handle) override {
    if (::fsync(handle) != 0)
      return std::unexpected(SysError("syncing", "fd " + std::to_string(handle)));
    return {};
  }

  Expected<void> Close(Handle handle) override {
    if (::close(handle) != 0)
      return std::unexpected(SysError("closing", "fd " + std::to_string(handle)));
    return {};
  }

  Expected<void> Rename(const std::filesystem::path& from,
                        const std::filesystem::path& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return std::unexpected(SysError("replacing", to));
    return {};
  }

  Expected<void> SyncDirectory(const std::filesystem::path& dir) override {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return std::unexpected(SysError("opening directory", dir));
    if (::fsync(fd.get()) != 0) return std::unexpected(SysError("syncing directory", dir));
    return {};
  }

  void Remove(const std::filesystem::path& path) override { ::unlink(path.c_str()); }

  Expected<Bytes> Read(const std::filesystem::path& path, std::size_t max_size) override {
    // Non-blocking: a FIFO put where a file was expected is refused, not waited on.
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) return std::unexpected(SysError("opening", path));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return std::unexpected(SysError("inspecting", path));
    if (!S_ISREG(st.st_mode)) {
      return Fail(CoreErrc::kInvalidArgument, path.string() + " is not a regular file");
    }
    if (static_cast<std::size_t>(st.st_size) > max_size) {
      return Fail(CoreErrc::kCorrupt, path.string() + " is " + std::to_string(st.st_size) +
                                          " bytes, more than the " + std::to_string(max_size) +
                                          " allowed");
    }
    // Read to the end, not to st_size: procfs files report size 0.
    Bytes out(std::max<std::size_t>(static_cast<std::size_t>(st.st_size), 4096));
    std::size_t done = 0;
    for (;;) {
      if (done == out.size()) {
        if (done > max_size) break;
        out.resize(std::min(out.size() * 2, max_size + 1));
      }
      const ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(SysError("reading", path));
      }
      if (n == 0) break;
      done += static_cast<std::size_t>(n);
    }
    if (done > max_size) {
      return Fail(CoreErrc::kCorrupt,
                  path.string() + " grew past the " + std::to_string(max_size) + " bytes allowed");
    }
    out.resize(done);
    return out;
  }
};

}  // namespace

FileSystem& RealFileSystem() {
  static RealFs fs;
  return fs;
}

Expected<void> WriteDurably(FileSystem& fs, const std::filesystem::path& path, ByteView contents,
                            mode_t mode) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  auto temp = fs.CreateTemporary(dir, "." + path.filename().string() + ".tmp-", mode);
  if (!temp)
    return std::unexpected(std::move(temp.error()).WithContext("writing " + path.string()));
  auto written = fs.Write(temp->handle, contents);
  if (written) written = fs.Sync(temp->handle);
  auto closed = fs.Close(temp->handle);
  if (written) written = std::move(closed);
  if (written) written = fs.Rename(temp->path, path);
  if (!written) {
    fs.Remove(temp->path);
    return std::unexpected(std::move(written.error()).WithContext("writing " + path.string()));
  }
  // Until the directory is synced, the rename itself may not survive a power loss.
  return WithContext(fs.SyncDirectory(dir), "writing " + path.string());
}

Expected<void> RequireOwnerOnly(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::unexpected(SysError("inspecting", path));
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return Fail(CoreErrc::kPermission, path.string() + " has mode " +
                                           fmt::format("{:04o}", st.st_mode & 07777) +
                                           ": it must not be accessible to group or others "
                                           "(chmod 600)");
  }
  return {};
}

Expected<void> EnsureDirectory(const std::filesystem::path& dir, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return {};
  if (std::filesystem::exists(dir, ec)) {
    return Fail(CoreErrc::kAlreadyExists, dir.string() + " exists and is not a directory");
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(CoreErrc::kIo, "creating directory " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), mode) != 0) return std::unexpected(SysError("setting mode of", dir));
  return {};
}

int ErrnoOf(const Error& error) {
  if (error == CoreErrc::kNotFound) return ENOENT;
  if (error == CoreErrc::kPermission) return EACCES;
  if (error == CoreErrc::kNoSpace) return ENOSPC;
  return EIO;
}

}  // namespace aspis::file
