#include "package/archive.hpp"

#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "core/fd.hpp"
#include "core/log.hpp"
#include "package/errors.hpp"
#include "package/libarchive_ptr.hpp"
#include "package/payload_compression.hpp"

namespace aspis::package {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kChunk = std::size_t{64} << 10;

Error ArchiveError(struct archive* a, std::string_view what) {
  const char* detail = archive_error_string(a);
  return Error(PackageErrc::kIo,
               std::string(what) + ": " + (detail != nullptr ? detail : "libarchive failed"));
}

Error Unsafe(std::string_view entry, std::string_view why) {
  return Error(PackageErrc::kUnsafeEntry,
               "archive entry \"" + std::string(entry.substr(0, 200)) + "\" " + std::string(why));
}

// Why `path` may not be written under a target, or empty when it may.
std::string PathProblem(std::string_view path) {
  if (path.empty()) return "has an empty path";
  if (path.front() == '/') return "has an absolute path";
  for (const auto& part : fs::path(path)) {
    if (part == "..") return "climbs out of its directory with ..";
  }
  return {};
}

// Why a symbolic link at `path` to `target` leaves its tree, or empty when it stays inside.
std::string LinkProblem(const fs::path& path, const fs::path& target) {
  if (target.empty() || target.is_absolute()) return "is a symbolic link to an absolute path";
  int depth = 0;
  for (const auto& part : path.parent_path() / target) {
    if (part == "..")
      --depth;
    else if (part != ".")
      ++depth;
    if (depth < 0) return "is a symbolic link out of its tree";
  }
  return {};
}

// libarchive converts names between the archive's charset (UTF-8 in pax headers) and the
// locale's, which is ASCII under the C locale daemons run in: any other name would fail. This
// thread uses C.UTF-8 while it packs or unpacks, so that names are the file system's bytes.
class Utf8Names {
 public:
  Utf8Names() : locale_(::newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr)) {
    if (locale_ != nullptr) previous_ = ::uselocale(locale_);
    if (locale_ == nullptr || previous_ == nullptr) {
      // Names that are not ASCII then fail to convert and the package is refused, not mangled.
      log::Warning("the C.UTF-8 locale is missing: archives with non-ASCII names are refused");
    }
  }
  Utf8Names(const Utf8Names&) = delete;
  Utf8Names& operator=(const Utf8Names&) = delete;
  ~Utf8Names() {
    if (locale_ == nullptr) return;
    if (previous_ != nullptr) ::uselocale(previous_);
    if (previous_ != nullptr) ::freelocale(locale_);  // else still in use: kept
  }

 private:
  locale_t locale_;
  locale_t previous_ = nullptr;
};

const char* EntryPath(archive_entry* entry) {
  const char* path = archive_entry_pathname(entry);
  return path != nullptr ? path : "";
}
const char* EntryLink(archive_entry* entry) {
  const char* target = archive_entry_symlink(entry);
  return target != nullptr ? target : "";
}

bool IsAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

Expected<void> CheckEntry(archive_entry* entry, TreeRules rules) {
  const std::string path = EntryPath(entry);
  if (std::string problem = PathProblem(path); !problem.empty()) {
    return std::unexpected(Unsafe(path, problem));
  }
  if (archive_entry_hardlink(entry) != nullptr)
    return std::unexpected(Unsafe(path, "is a hard link"));
  const mode_t type = archive_entry_filetype(entry);
  if (type == AE_IFLNK) {
    if (!rules.symlinks) return std::unexpected(Unsafe(path, "is a symbolic link"));
    const std::string problem = LinkProblem(path, EntryLink(entry));
    if (!problem.empty()) return std::unexpected(Unsafe(path, problem));
  } else if (type != AE_IFREG && type != AE_IFDIR) {
    return std::unexpected(Unsafe(path, "is a device node, FIFO or socket"));
  }
  if ((archive_entry_perm(entry) & (S_ISUID | S_ISGID | S_ISVTX)) != 0) {
    return std::unexpected(Unsafe(path, "has a setuid, setgid or sticky bit"));
  }
  return {};
}

// Refuses an entry whose path goes through a link unpacked before it (`links`, normalized).
Expected<void> CheckNotThroughLink(std::string_view path, const std::set<fs::path>& links) {
  fs::path prefix;
  const fs::path normal = fs::path(path).lexically_normal();
  for (const auto& part : normal) {
    if (!prefix.empty() && links.contains(prefix)) {
      return std::unexpected(
          Unsafe(path, "would be written through the symbolic link " + prefix.string()));
    }
    prefix /= part;
  }
  if (links.contains(normal)) return std::unexpected(Unsafe(path, "replaces a symbolic link"));
  return {};
}

// The entries under `dir` that `rules` allow, relative, in path order.
Expected<std::vector<fs::path>> Tree(const fs::path& dir, TreeRules rules) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto status = it->symlink_status(ec);
    if (ec) break;
    const fs::path relative = it->path().lexically_relative(dir);
    if (fs::is_symlink(status)) {
      if (!rules.symlinks) return std::unexpected(Unsafe(relative.string(), "is a symbolic link"));
      const std::string problem = LinkProblem(relative, fs::read_symlink(it->path(), ec));
      if (!problem.empty()) return std::unexpected(Unsafe(relative.string(), problem));
      entries.push_back(relative);
      continue;
    }
    if (!fs::is_regular_file(status) && !fs::is_directory(status)) {
      return std::unexpected(Unsafe(relative.string(), "is a device node, FIFO or socket"));
    }
    if ((status.permissions() &
         (fs::perms::set_uid | fs::perms::set_gid | fs::perms::sticky_bit)) != fs::perms::none) {
      return std::unexpected(Unsafe(relative.string(), "has a setuid, setgid or sticky bit"));
    }
    entries.push_back(relative);
  }
  if (ec) return Fail(PackageErrc::kIo, "reading " + dir.string() + ": " + ec.message());
  std::sort(entries.begin(), entries.end());
  return entries;
}

Expected<void> WriteEntry(struct archive* out, const fs::path& dir, const fs::path& relative) {
  const fs::path full = dir / relative;
  struct stat st {};
  if (::lstat(full.c_str(), &st) != 0) {
    return Fail(PackageErrc::kIo,
                "reading " + full.string() + ": " + std::generic_category().message(errno));
  }
  ArchiveEntry entry(archive_entry_new());
  if (!entry) return Fail(PackageErrc::kIo, "out of memory");
  archive_entry_set_pathname(entry.get(), relative.c_str());
  archive_entry_set_perm(entry.get(), st.st_mode & 0777);
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(full, ec);
    if (ec)
      return Fail(PackageErrc::kIo, "reading the link " + full.string() + ": " + ec.message());
    archive_entry_set_filetype(entry.get(), AE_IFLNK);
    archive_entry_set_symlink(entry.get(), target.c_str());
  } else {
    archive_entry_set_filetype(entry.get(), S_ISDIR(st.st_mode) ? AE_IFDIR : AE_IFREG);
    archive_entry_set_size(entry.get(), S_ISDIR(st.st_mode) ? 0 : st.st_size);
  }
  if (archive_write_header(out, entry.get()) != ARCHIVE_OK) {
    return std::unexpected(ArchiveError(out, "writing " + relative.string()));
  }
  if (!S_ISREG(st.st_mode)) return {};
  Fd fd(::open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    return Fail(PackageErrc::kIo,
                "opening " + full.string() + ": " + std::generic_category().message(errno));
  }
  std::vector<char> chunk(kChunk);
  std::int64_t copied = 0;
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return Fail(PackageErrc::kIo,
                  "reading " + full.string() + ": " + std::generic_category().message(errno));
    if (n == 0) break;
    if (archive_write_data(out, chunk.data(), static_cast<std::size_t>(n)) != n) {
      return std::unexpected(ArchiveError(out, "writing " + relative.string()));
    }
    copied += n;
  }
  if (copied != st.st_size) {
    return Fail(PackageErrc::kIo, full.string() + " changed while it was packed");
  }
  return {};
}

// Where libarchive writes the tar: through the payload compressor into the destination file.
struct PayloadOut {
  explicit PayloadOut(Fd out) : fd(std::move(out)) {}
  Fd fd;
  std::optional<PayloadCompressor> compressor;
  std::optional<Error> error;  // the first failure, which libarchive only sees as -1

  static la_ssize_t Write(struct archive* /*a*/, void* self, const void* data, std::size_t size) {
    auto* out = static_cast<PayloadOut*>(self);
    auto ok = out->compressor->Write(ByteView(static_cast<const std::uint8_t*>(data), size));
    if (!ok) {
      out->error = std::move(ok.error());
      return -1;
    }
    return static_cast<la_ssize_t>(size);
  }
};

Expected<void> WriteAll(int fd, ByteView data, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Fail(PackageErrc::kIo,
                  "writing " + path.string() + ": " + std::generic_category().message(errno));
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

Expected<Packed> PackDirectory(const fs::path& dir, const fs::path& destination, TreeRules rules) {
  auto entries = Tree(dir, rules);
  if (!entries) return std::unexpected(entries.error());
  PayloadOut payload(
      Fd(::open(destination.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)));
  if (payload.fd.get() < 0) {
    return Fail(PackageErrc::kIo,
                "creating " + destination.string() + ": " + std::generic_category().message(errno));
  }
  auto compressor = PayloadCompressor::Create(
      [&](ByteView compressed) { return WriteAll(payload.fd.get(), compressed, destination); });
  if (!compressor) return std::unexpected(compressor.error());
  payload.compressor.emplace(std::move(*compressor));
  // The tar goes out uncompressed and PayloadCompressor compresses it, so that a delta applier
  // can reproduce the payload's bytes exactly (payload_compression.hpp).
  const Utf8Names names;
  ArchiveWriter out(archive_write_new());
  if (!out) return Fail(PackageErrc::kIo, "out of memory");
  const auto failed = [&](std::string_view what) {
    return std::unexpected(payload.error ? std::move(*payload.error).WithContext(what)
                                         : ArchiveError(out.get(), what));
  };
  // A tree whose names are all ASCII needs no pax header; any other name is stored as the bytes
  // the file system gives (hdrcharset=BINARY), even one that is not UTF-8.
  const bool ascii = std::all_of(entries->begin(), entries->end(), [&](const fs::path& relative) {
    std::error_code ec;
    const fs::path full = dir / relative;
    return IsAscii(relative.native()) &&
           (!fs::is_symlink(full, ec) || IsAscii(fs::read_symlink(full, ec).native()));
  });
  if (archive_write_set_format_pax_restricted(out.get()) != ARCHIVE_OK ||
      (!ascii &&
       archive_write_set_format_option(out.get(), "pax", "hdrcharset", "BINARY") != ARCHIVE_OK) ||
      archive_write_add_filter_none(out.get()) != ARCHIVE_OK ||
      archive_write_open(out.get(), &payload, nullptr, &PayloadOut::Write, nullptr) != ARCHIVE_OK) {
    return failed("creating " + destination.string());
  }
  for (const auto& relative : *entries) {
    if (auto ok = WriteEntry(out.get(), dir, relative); !ok) {
      if (payload.error) return std::unexpected(std::move(*payload.error));
      return std::unexpected(ok.error());
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    return failed("finishing " + destination.string());
  }
  if (auto ok = payload.compressor->Finish(); !ok) return std::unexpected(ok.error());
  if (payload.fd.Close() != 0) {
    return Fail(PackageErrc::kIo,
                "writing " + destination.string() + ": " + std::generic_category().message(errno));
  }
  return Packed{payload.compressor->consumed()};
}

Expected<void> UnpackArchive(const fs::path& archive, const fs::path& target,
                             std::uint64_t max_unpacked, TreeRules rules) {
  const Utf8Names names;
  ArchiveReader in(archive_read_new());
  ArchiveWriter disk(archive_write_disk_new());
  if (!in || !disk) return Fail(PackageErrc::kIo, "out of memory");
  archive_read_support_format_tar(in.get());
  archive_read_support_filter_zstd(in.get());
  archive_read_support_filter_none(in.get());
  // Defence in depth: the checks below refuse such entries before libarchive sees them. (Paths
  // are made absolute under `target` here, so libarchive's own absolute-path check cannot be on.)
  archive_write_disk_set_options(
      disk.get(), ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                      ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_NO_OVERWRITE);
  if (archive_read_open_filename(in.get(), archive.c_str(), kChunk) != ARCHIVE_OK) {
    return Fail(PackageErrc::kMalformed,
                "the payload is not a tar archive: " + std::string(archive_error_string(in.get())));
  }
  std::error_code ec;
  if (!fs::create_directory(target, ec) || ec) {
    return Fail(PackageErrc::kIo, "cannot create " + target.string() + " (it must not exist)" +
                                      (ec ? ": " + ec.message() : ""));
  }
  auto unpacked = [&]() -> Expected<void> {
    std::uint64_t total = 0;
    std::set<fs::path> links;  // the links unpacked so far
    std::vector<char> chunk(kChunk);
    for (;;) {
      archive_entry* entry = nullptr;
      const int rc = archive_read_next_header(in.get(), &entry);
      if (rc == ARCHIVE_EOF) return {};
      if (rc != ARCHIVE_OK) {
        return Fail(PackageErrc::kMalformed, "the payload is not a valid tar archive: " +
                                                 std::string(archive_error_string(in.get())));
      }
      if (auto ok = CheckEntry(entry, rules); !ok) return ok;
      const std::string path = EntryPath(entry);
      if (auto ok = CheckNotThroughLink(path, links); !ok) return ok;
      if (archive_entry_filetype(entry) == AE_IFLNK) {
        links.insert(fs::path(path).lexically_normal());
      }
      const auto size =
          static_cast<std::uint64_t>(std::max<la_int64_t>(archive_entry_size(entry), 0));
      if (size > max_unpacked - total) {
        return Fail(PackageErrc::kTooLarge, "the archive unpacks to more than its declared " +
                                                std::to_string(max_unpacked) + " bytes");
      }
      archive_entry_set_pathname(entry, (target / path).c_str());
      if (archive_write_header(disk.get(), entry) != ARCHIVE_OK) {
        return std::unexpected(ArchiveError(disk.get(), "unpacking " + path));
      }
      std::uint64_t written = 0;
      for (;;) {
        const la_ssize_t n = archive_read_data(in.get(), chunk.data(), chunk.size());
        if (n < 0) return std::unexpected(ArchiveError(in.get(), "reading " + path));
        if (n == 0) break;
        written += static_cast<std::uint64_t>(n);
        if (written > size) {
          return Fail(PackageErrc::kMalformed, "archive entry \"" + path + "\" exceeds its size");
        }
        if (archive_write_data(disk.get(), chunk.data(), static_cast<std::size_t>(n)) != n) {
          return std::unexpected(ArchiveError(disk.get(), "unpacking " + path));
        }
      }
      if (archive_write_finish_entry(disk.get()) != ARCHIVE_OK) {
        return std::unexpected(ArchiveError(disk.get(), "unpacking " + path));
      }
      total += size;
    }
  }();
  if (!unpacked) {
    fs::remove_all(target, ec);
    return unpacked;
  }
  if (archive_write_close(disk.get()) != ARCHIVE_OK) {
    fs::remove_all(target, ec);
    return std::unexpected(ArchiveError(disk.get(), "finishing " + target.string()));
  }
  return {};
}

}  // namespace aspis::package
