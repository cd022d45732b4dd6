#include "package/measure.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <fstream>
#include <system_error>
#include <vector>

#include "core/fd.hpp"

namespace aspis::package {

namespace {

namespace fs = std::filesystem;

Expected<void> HashFileInto(const fs::path& path, crypto::Sha256& sha) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(CoreErrc::kIo, "cannot read " + path.string() + " to measure it");
  std::array<char, std::size_t{64} * 1024> buffer{};
  while (in) {
    in.read(buffer.data(), buffer.size());
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    if (auto ok = sha.Update({reinterpret_cast<const std::uint8_t*>(buffer.data()), n}); !ok) {
      return ok;
    }
  }
  if (in.bad()) return Fail(CoreErrc::kIo, "reading " + path.string() + " failed");
  return {};
}

Expected<crypto::Digest> HashFile(const fs::path& path) {
  auto sha = crypto::Sha256::Create();
  if (!sha) return std::unexpected(sha.error());
  if (auto ok = HashFileInto(path, *sha); !ok) return std::unexpected(ok.error());
  return sha->Finish();
}

Expected<crypto::Digest> HashTree(const fs::path& root) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    entries.push_back(it->path());
  }
  if (ec) return Fail(CoreErrc::kIo, "cannot list " + root.string() + ": " + ec.message());
  std::sort(entries.begin(), entries.end());
  auto tree = crypto::Sha256::Create();
  if (!tree) return std::unexpected(tree.error());
  for (const auto& entry : entries) {
    struct stat st {};
    if (::lstat(entry.c_str(), &st) != 0) {
      return Fail(CoreErrc::kIo, "cannot inspect " + entry.string() + " to measure it");
    }
    std::string line = fmt::format("{}\n{:o}\n", fs::relative(entry, root).string(),
                                   static_cast<unsigned>(st.st_mode & 07777));
    if (S_ISREG(st.st_mode)) {
      auto digest = HashFile(entry);
      if (!digest) return std::unexpected(digest.error());
      line += "file " + crypto::ToHex(*digest);
    } else if (S_ISDIR(st.st_mode)) {
      line += "dir";
    } else if (S_ISLNK(st.st_mode)) {
      line += "link " + fs::read_symlink(entry, ec).string();
    } else {
      return Fail(CoreErrc::kInvalidArgument,
                  entry.string() + " is a special file; an OS image may not contain one");
    }
    line += "\n";
    if (auto ok = tree->Update(AsBytes(line)); !ok) return std::unexpected(ok.error());
  }
  return tree->Finish();
}

}  // namespace

Expected<crypto::Digest> MeasurePath(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return Fail(CoreErrc::kNotFound, "cannot measure " + path.string() + ": it does not exist");
  }
  return fs::is_directory(status) ? HashTree(path) : HashFile(path);
}

Expected<crypto::Digest> MeasurePrefix(int fd, std::uint64_t length) {
  auto sha = crypto::Sha256::Create();
  if (!sha) return std::unexpected(sha.error());
  std::vector<std::uint8_t> chunk(std::size_t{64} << 10);
  for (std::uint64_t offset = 0; offset < length;) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), length - offset));
    const ssize_t n = ::pread(fd, chunk.data(), want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return Fail(CoreErrc::kIo, "reading to measure: " + std::generic_category().message(errno));
    if (n == 0) {
      return Fail(CoreErrc::kCorrupt,
                  fmt::format("fewer than the {} bytes to measure ({} read)", length, offset));
    }
    if (auto ok = sha->Update({chunk.data(), static_cast<std::size_t>(n)}); !ok) {
      return std::unexpected(ok.error());
    }
    offset += static_cast<std::uint64_t>(n);
  }
  return sha->Finish();
}

Expected<crypto::Digest> MeasurePrefix(const fs::path& path, std::uint64_t length) {
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    return Fail(CoreErrc::kNotFound, "cannot read " + path.string() + " to measure it");
  auto digest = MeasurePrefix(fd.get(), length);
  if (!digest) return std::unexpected(std::move(digest.error()).WithContext(path.string()));
  return digest;
}

Expected<std::map<std::string, crypto::Digest, std::less<>>> MeasureOsTree(const fs::path& rootfs) {
  std::map<std::string, crypto::Digest, std::less<>> measured;
  const std::pair<std::string_view, fs::path> parts[] = {
      {"os", rootfs},
      {"aspisd", rootfs / kAspisdInRootfs},
      {"trust-bundle", rootfs / kTrustBundleInRootfs}};
  for (const auto& [component, path] : parts) {
    if (component != "os" && !fs::is_regular_file(path)) {
      return Fail(CoreErrc::kNotFound,
                  fmt::format("the OS tree has no {} at {}", component, path.string()));
    }
    auto digest = MeasurePath(path);
    if (!digest) return std::unexpected(digest.error());
    measured.emplace(component, *digest);
  }
  return measured;
}

}  // namespace aspis::package
