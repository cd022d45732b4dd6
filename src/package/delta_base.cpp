// The two places an applier finds the old version's files: its package, or its installed tree.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <map>
#include <optional>
#include <string>
#include <system_error>

#include "package/delta.hpp"
#include "package/errors.hpp"
#include "package/payload_compression.hpp"
#include "package/tar_scan.hpp"

namespace aspis::package {

namespace {

// The largest window a base package's payload may need (8 MiB; Aspis packs with 2 MiB).
constexpr int kBasePayloadWindowLog = 23;

std::string Errno() { return std::generic_category().message(errno); }

}  // namespace

struct PackageBase::Cursor {
  explicit Cursor(FileSource source) : file(std::move(source)) {}
  FileSource file;
  std::optional<ZstdSource> zstd;
  std::optional<TarScanner> scanner;
  bool open = false;  // the scanner is at the data of the file opened last
};

// Where each path's last entry starts in the tar (a later entry of a path wins, as when the tar is
// unpacked into a tree).
struct PackageBase::Index {
  struct Entry {
    std::uint64_t header_offset = 0;
    bool regular = false;
  };
  std::map<std::string, Entry, std::less<>> entries;
};

PackageBase::PackageBase(std::filesystem::path package) : package_(std::move(package)) {}
PackageBase::~PackageBase() = default;

Expected<std::unique_ptr<PackageBase>> PackageBase::Create(const std::filesystem::path& package) {
  std::unique_ptr<PackageBase> base(new PackageBase(package));
  if (auto ok = base->BuildIndex(); !ok) return std::unexpected(ok.error());
  if (auto ok = base->Restart(); !ok) return std::unexpected(ok.error());
  return base;
}

Expected<void> PackageBase::BuildIndex() {
  if (auto ok = Restart(); !ok) return ok;
  auto index = std::make_unique<Index>();
  for (std::uint64_t count = 1;; ++count) {
    auto entry = cursor_->scanner->Next();
    if (!entry) {
      return std::unexpected(std::move(entry.error()).WithContext("reading the base package"));
    }
    if (!*entry) break;
    if (count > kMaxDeltaTarEntries) {
      return Fail(PackageErrc::kTooLarge, "the base package's tar has more than " +
                                              std::to_string(kMaxDeltaTarEntries) + " entries");
    }
    index->entries[(*entry)->path] = {(*entry)->header_offset, (*entry)->regular()};
  }
  index_ = std::move(index);
  return {};
}

Expected<void> PackageBase::Restart() {
  cursor_.reset();
  auto file = FileSource::Open(package_);
  if (!file) return std::unexpected(file.error());
  auto cursor = std::make_unique<Cursor>(std::move(*file));
  auto reader = Reader::Inspect(cursor->file);
  if (!reader) {
    return std::unexpected(std::move(reader.error()).WithContext("reading the base package"));
  }
  Source* tar = &cursor->file;
  if (reader->manifest().payload.compression == Compression::kZstd) {
    auto zstd = ZstdSource::Create(cursor->file, kBasePayloadWindowLog, false);
    if (!zstd) return std::unexpected(zstd.error());
    cursor->zstd.emplace(std::move(*zstd));
    tar = &*cursor->zstd;
  }
  cursor->scanner.emplace(*tar);
  cursor_ = std::move(cursor);
  return {};
}

Expected<std::uint64_t> PackageBase::Open(std::string_view path) {
  if (cursor_) cursor_->open = false;
  const auto found = index_->entries.find(path);
  if (found == index_->entries.end()) {
    return Fail(PackageErrc::kMismatch,
                "the base package has no file " + std::string(path.substr(0, 256)));
  }
  if (!found->second.regular) {
    return Fail(PackageErrc::kMismatch, "the base package's " + std::string(path.substr(0, 256)) +
                                            " is not a regular file");
  }
  // The payload is read forward: a file behind the read position means reading it again.
  const std::uint64_t target = found->second.header_offset;
  if (!cursor_ || cursor_->scanner->offset() > target) {
    if (auto ok = Restart(); !ok) return std::unexpected(ok.error());
  }
  for (;;) {
    auto entry = cursor_->scanner->Next();
    if (!entry) {
      return std::unexpected(std::move(entry.error()).WithContext("reading the base package"));
    }
    if (!*entry || (*entry)->header_offset > target) {
      return Fail(PackageErrc::kIo, "the base package changed while it was read");
    }
    if ((*entry)->header_offset == target) {
      cursor_->open = true;
      return (*entry)->size;
    }
  }
}

Expected<std::size_t> PackageBase::Read(std::span<std::uint8_t> buffer) {
  if (!cursor_ || !cursor_->open) return Fail(PackageErrc::kIo, "no base file is open");
  return cursor_->scanner->ReadData(buffer);
}

Expected<std::unique_ptr<TreeBase>> TreeBase::Create(const std::filesystem::path& root) {
  Fd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Fail(PackageErrc::kIo, "opening the installed tree " + root.string() + ": " + Errno());
  }
  return std::unique_ptr<TreeBase>(new TreeBase(std::move(fd)));
}

Expected<std::uint64_t> TreeBase::Open(std::string_view path) {
  file_ = Fd(-1);
  const std::string shown(path.substr(0, 256));
  if (std::string problem = DeltaPathProblem(path); !problem.empty()) {
    return Fail(PackageErrc::kUnsafeEntry, "the base path \"" + shown + "\" " + problem);
  }
  // One component at a time, refusing links, so that nothing outside the tree is ever opened.
  Fd dir(-1);
  int at = root_.get();
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    const std::string part(path.substr(start, end - start));
    const bool last = end == path.size();
    const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (last ? O_NONBLOCK : O_DIRECTORY);
    Fd next(::openat(at, part.c_str(), flags));
    if (next.get() < 0) {
      const int error = errno;
      struct stat st {};
      if (error == ELOOP ||
          (error == ENOTDIR && ::fstatat(at, part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISLNK(st.st_mode))) {
        return Fail(PackageErrc::kUnsafeEntry,
                    "the installed tree's " + shown + " is or goes through a symbolic link");
      }
      if (error == ENOENT || error == ENOTDIR) {
        return Fail(PackageErrc::kMismatch, "the installed tree has no file " + shown);
      }
      return Fail(PackageErrc::kIo, "opening " + shown + " in the installed tree: " +
                                        std::generic_category().message(error));
    }
    if (last) {
      struct stat st {};
      if (::fstat(next.get(), &st) != 0) {
        return Fail(PackageErrc::kIo, "reading " + shown + " in the installed tree: " + Errno());
      }
      if (!S_ISREG(st.st_mode)) {
        return Fail(PackageErrc::kMismatch,
                    "the installed tree's " + shown + " is not a regular file");
      }
      file_ = std::move(next);
      return static_cast<std::uint64_t>(st.st_size);
    }
    dir = std::move(next);
    at = dir.get();
    start = end + 1;
  }
}

Expected<std::size_t> TreeBase::Read(std::span<std::uint8_t> buffer) {
  if (file_.get() < 0) return Fail(PackageErrc::kIo, "no base file is open");
  for (;;) {
    const ssize_t n = ::read(file_.get(), buffer.data(), buffer.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return Fail(PackageErrc::kIo, "reading the installed tree: " + Errno());
  }
}

}  // namespace aspis::package
