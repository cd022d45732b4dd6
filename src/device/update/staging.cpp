#include "device/update/staging.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <set>
#include <system_error>

#include "core/fd.hpp"
#include "core/file.hpp"
#include "core/log.hpp"
#include "device/kill_point.hpp"
#include "package/delta.hpp"
#include "package/errors.hpp"
#include "package/package.hpp"

namespace aspis::device::update {

namespace {

namespace fs = std::filesystem;

// The largest package a target may declare: the largest payload behind the largest header.
constexpr std::uint64_t kMaxPackage =
    package::kMaxPayloadSize + package::kPrefixSize + crypto::dsse::kMaxEnvelopeSize;

// Image IDs become file names: only these characters, so no target names a path.
bool SafeId(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
  });
}

bool LowercaseSha256(std::string_view hex) {
  return hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string BaseName(const wire::UpdateTarget& t) { return t.image_id + "-" + t.sha256; }

wire::TargetStatus Refused(const wire::UpdateTarget& t, std::string_view why) {
  return {t.image_id, std::string(wire::kFailed), "refused: " + std::string(why)};
}

std::string ErrnoText() { return std::generic_category().message(errno); }

std::uint64_t SizeOf(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

// Appends `bytes` to `path` (0600, created when missing), and syncs it when `sync`.
Expected<void> Append(file::FileSystem& files, const fs::path& path, std::string_view bytes,
                      bool sync = false) {
  auto handle = files.OpenAppend(path, 0600);
  if (!handle) return std::unexpected(handle.error());
  auto written = files.Write(*handle, AsBytes(bytes));
  if (written && sync) written = files.Sync(*handle);
  auto closed = files.Close(*handle);
  return written ? closed : written;
}

Expected<std::uint64_t> HeaderLengthOf(const fs::path& part) {
  std::array<std::uint8_t, package::kPrefixSize> prefix{};
  const Fd fd(::open(part.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0 ||
      ::pread(fd.get(), prefix.data(), prefix.size(), 0) != static_cast<ssize_t>(prefix.size())) {
    return Fail(CoreErrc::kIo, "reading " + part.string() + ": " + ErrnoText());
  }
  return package::HeaderLength(prefix);
}

// Why the signed manifest `m` is not the target the update manifest names, or empty.
std::string Mismatch(const package::Manifest& m, std::uint64_t header_length,
                     const wire::UpdateTarget& t, std::string_view board) {
  if (m.image_id != t.image_id) {
    return "the package is image " + m.image_id + ", not the targeted " + t.image_id;
  }
  if (m.component_id != t.component_id || package::KindName(m.kind) != t.kind ||
      m.version != t.version || m.security_version != t.security_version) {
    return fmt::format(
        "the package is {} {} {} (security version {}), the update manifest says "
        "{} {} {} ({})",
        package::KindName(m.kind), m.component_id, m.version, m.security_version, t.kind,
        t.component_id, t.version, t.security_version);
  }
  if (header_length + m.payload.size != t.size) {
    return fmt::format("the package's signed size is {} bytes, the update manifest says {}",
                       header_length + m.payload.size, t.size);
  }
  if (!m.target_boards.empty() &&
      std::find(m.target_boards.begin(), m.target_boards.end(), board) == m.target_boards.end()) {
    return fmt::format("the package is for {}, not this device's board {} (wrong software)",
                       fmt::join(m.target_boards, ", "), board);
  }
  return {};
}

}  // namespace

Expected<Staging> Staging::Open(fs::path dir, StagingRules rules, file::FileSystem& files) {
  if (auto ok = file::EnsureDirectory(dir, 0700); !ok) return std::unexpected(ok.error());
  return Staging(std::move(dir), std::move(rules), files);
}

std::optional<fs::path> Staging::Staged(const wire::UpdateTarget& target) const {
  if (!SafeId(target.image_id) || !LowercaseSha256(target.sha256)) return std::nullopt;
  fs::path path = dir_ / (BaseName(target) + ".aspkg");
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  return path;
}

std::vector<wire::TargetStatus> Staging::Sync(const std::vector<wire::UpdateTarget>& targets,
                                              ImageSource& source, const PublisherTrust& trust,
                                              Clock::TimePoint now, const KeepGoing& keep_going,
                                              const DeltaBases& delta_base) {
  // First what each target may be, before any byte: a refused target keeps nothing on disk, so
  // the area never holds more than the capacity of the targets admitted.
  std::vector<std::optional<wire::TargetStatus>> refusals(targets.size());
  std::set<std::string> ids;
  std::set<std::string> kept;
  std::uint64_t committed = 0;  // bytes of the targets admitted, in the manifest's order
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const auto& t = targets[i];
    auto refuse = [&](std::string_view why) { refusals[i] = Refused(t, why); };
    if (!SafeId(t.image_id)) {
      refuse("the image ID is not a plain identifier");
    } else if (!ids.insert(t.image_id).second) {
      refuse("the update manifest lists this image twice");
    } else if (!LowercaseSha256(t.sha256) || !package::KindFromName(t.kind) ||
               t.size < package::kPrefixSize || t.size > kMaxPackage) {
      refuse("the target's digest, kind or size is malformed");
    } else if (t.size > rules_.capacity - std::min(committed, rules_.capacity)) {
      refuse(
          fmt::format("the staging area holds {} bytes; it cannot take {} more beside the {} "
                      "of the targets before it",
                      rules_.capacity, t.size, committed));
    } else if (auto why = package::IsApp(*package::KindFromName(t.kind))
                              ? trust.AppsUnverifiable(now)
                              : std::nullopt) {
      refuse(*why);
    } else {
      committed += t.size;
      kept.insert(BaseName(t) + ".aspkg");
      kept.insert(BaseName(t) + ".part");
      // A delta is tried only when it too fits (it is removed once applied).
      if (t.delta && t.delta->size < t.size && LowercaseSha256(t.delta->sha256) &&
          t.delta->size <= rules_.capacity - std::min(committed, rules_.capacity)) {
        committed += t.delta->size;
        kept.insert(BaseName(t) + ".delta");
      }
    }
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (kept.contains(entry.path().filename().string())) continue;
    log::Info("removing {}: not an admitted target", entry.path().filename().string());
    fs::remove_all(entry.path(), ec);
  }

  std::vector<wire::TargetStatus> statuses;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (refusals[i]) {
      statuses.push_back(std::move(*refusals[i]));
    } else if (!keep_going()) {
      statuses.push_back({targets[i].image_id, std::string(wire::kDownloading),
                          "paused; it resumes at the next check-in"});
    } else {
      const bool fits = kept.contains(BaseName(targets[i]) + ".delta");
      statuses.push_back(
          Fetch(targets[i], source, trust, keep_going, fits ? delta_base : DeltaBases()));
    }
  }
  return statuses;
}

Expected<void> Staging::Rebuild(const wire::UpdateTarget& t, const fs::path& base,
                                const fs::path& part, ImageSource& source,
                                const KeepGoing& keep_going) {
  const wire::DeltaOffer& offer = *t.delta;
  const fs::path file = dir_ / (BaseName(t) + ".delta");
  if (SizeOf(file) > offer.size) files_->Remove(file);
  while (SizeOf(file) < offer.size) {
    if (!keep_going()) return Fail(CoreErrc::kIo, "paused while fetching the delta");
    const std::uint64_t have = SizeOf(file);
    const std::uint64_t ask = std::min(kRangeSize, offer.size - have);
    auto bytes = source.Fetch(offer.url, have, ask);
    if (!bytes) return std::unexpected(bytes.error());
    if (bytes->empty() || bytes->size() > ask) {
      return Fail(CoreErrc::kCorrupt,
                  fmt::format("the service sent {} bytes of the delta where {} were asked for",
                              bytes->size(), ask));
    }
    if (auto ok = Append(*files_, file, *bytes); !ok) return ok;
  }
  auto delta = package::FileSource::Open(file);
  if (!delta) return std::unexpected(delta.error());
  auto hashed = package::HashingSource::Wrap(*delta);
  if (!hashed) return std::unexpected(hashed.error());
  std::vector<std::uint8_t> chunk(std::size_t{64} << 10);
  for (Expected<std::size_t> n = 1; n && *n > 0;) {
    n = hashed->Read(chunk);
    if (!n) return std::unexpected(n.error());
  }
  auto digest = hashed->Finish();
  if (!digest) return std::unexpected(digest.error());
  if (crypto::ToHex(*digest) != offer.sha256) {
    files_->Remove(file);
    return Fail(CoreErrc::kCorrupt, "the delta is not the one the update manifest names");
  }
  auto expected_sha256 = HexDecode(t.sha256);
  auto reopened = package::FileSource::Open(file);
  auto tree = package::TreeBase::Create(base);
  if (!expected_sha256 || !reopened || !tree) {
    return Fail(CoreErrc::kIo, "the delta or its base cannot be opened");
  }
  package::DeltaTarget expected{.size = t.size};
  std::copy(expected_sha256->begin(), expected_sha256->end(), expected.sha256.begin());
  auto applied = package::ApplyDelta(*reopened, **tree, expected, part, keep_going);
  if (!applied && applied.error() == package::PackageErrc::kCancelled) {
    return std::unexpected(applied.error());  // paused: applied again at the next check-in
  }
  files_->Remove(file);
  if (!applied) {
    files_->Remove(part);
    return std::unexpected(applied.error());
  }
  KillPoint("download.delta");
  log::Info("target {} rebuilt from a delta of {} bytes (the package is {})", t.image_id,
            offer.size, t.size);
  return {};
}

wire::TargetStatus Staging::Fetch(const wire::UpdateTarget& t, ImageSource& source,
                                  const PublisherTrust& trust, const KeepGoing& keep_going,
                                  const DeltaBases& delta_base) {
  const fs::path done = dir_ / (BaseName(t) + ".aspkg");
  const fs::path part = dir_ / (BaseName(t) + ".part");
  std::error_code ec;
  auto refuse = [&](std::string_view why) {
    files_->Remove(part);
    log::Warning("target {} refused: {}", t.image_id, why);
    return Refused(t, why);
  };
  // A staged package is the same bytes for every target naming its image and digest; what the
  // target claims of it (versions, kind) is checked again each time.
  if (fs::is_regular_file(done, ec)) {
    auto header_length = HeaderLengthOf(done);
    auto file = package::FileSource::Open(done);
    if (!header_length || !file) return refuse("the staged package cannot be read");
    auto reader = package::Reader::Open(*file, trust.Publishers());
    if (!reader) return refuse(reader.error().message());
    if (auto why = Mismatch(reader->manifest(), *header_length, t, rules_.board); !why.empty()) {
      return refuse(why);
    }
    return {t.image_id, std::string(wire::kDownloaded), ""};
  }
  if (SizeOf(part) > t.size) files_->Remove(part);
  if (delta_base && SizeOf(part) == 0 && !deltas_failed_.contains(t.image_id)) {
    if (const auto base = delta_base(t)) {
      if (auto rebuilt = Rebuild(t, *base, part, source, keep_going); !rebuilt) {
        if (!keep_going()) {
          return {t.image_id, std::string(wire::kDownloading),
                  "paused while fetching its delta; it resumes at the next check-in"};
        }
        log::Warning("the delta for {} was not used ({}); fetching the whole package", t.image_id,
                     rebuilt.error().message());
        deltas_failed_.insert(t.image_id);
        files_->Remove(dir_ / (BaseName(t) + ".delta"));
      }
    }
  }

  bool manifest_checked = false;
  for (;;) {
    const std::uint64_t have = SizeOf(part);
    if (!manifest_checked && have >= package::kPrefixSize) {
      auto header_length = HeaderLengthOf(part);
      if (!header_length) return refuse(header_length.error().message());
      if (*header_length >= t.size) {
        return refuse("the package's signed manifest fills the whole targeted size");
      }
      if (have >= *header_length) {
        auto file = package::FileSource::Open(part);
        if (!file) return {t.image_id, std::string(wire::kDownloading), file.error().message()};
        auto reader = package::Reader::Open(*file, trust.Publishers());
        if (!reader) return refuse(reader.error().message());
        if (auto why = Mismatch(reader->manifest(), *header_length, t, rules_.board);
            !why.empty()) {
          return refuse(why);
        }
        manifest_checked = true;
      }
    }
    if (have == t.size) break;
    if (!keep_going()) {
      return {
          t.image_id, std::string(wire::kDownloading),
          fmt::format("paused at {} of {} bytes; it resumes at the next check-in", have, t.size)};
    }
    const std::uint64_t ask = std::min(kRangeSize, t.size - have);
    auto bytes = source.Fetch(t.url, have, ask);
    if (!bytes) return {t.image_id, std::string(wire::kDownloading), bytes.error().message()};
    if (bytes->size() > ask) {
      return refuse(fmt::format("the service sent {} bytes where {} were asked for (endless data)",
                                bytes->size(), ask));
    }
    if (bytes->empty()) {
      return {t.image_id, std::string(wire::kDownloading), "the service sent no bytes"};
    }
    if (auto ok = Append(*files_, part, *bytes); !ok) {
      return {t.image_id, std::string(wire::kDownloading), ok.error().message()};
    }
    KillPoint("download.range");
  }

  // One read of the whole file: the signature again, the payload, and the package's SHA-256.
  auto file = package::FileSource::Open(part);
  if (!file) return {t.image_id, std::string(wire::kDownloading), file.error().message()};
  auto hashed = package::HashingSource::Wrap(*file);
  if (!hashed) return {t.image_id, std::string(wire::kDownloading), hashed.error().message()};
  auto reader = package::Reader::Open(*hashed, trust.Publishers());
  if (!reader) return refuse(reader.error().message());
  if (auto payload = reader->VerifyPayload(); !payload) return refuse(payload.error().message());
  auto digest = hashed->Finish();
  if (crypto::ToHex(*digest) != t.sha256) {
    return refuse("the package's SHA-256 is " + crypto::ToHex(*digest) +
                  ", not the update manifest's " + t.sha256 + " (mix-and-match)");
  }
  if (auto ok = Append(*files_, part, {}, /*sync=*/true); !ok) {
    return {t.image_id, std::string(wire::kDownloading), ok.error().message()};
  }
  KillPoint("download.verified");
  if (auto ok = files_->Rename(part, done); !ok) {
    return {t.image_id, std::string(wire::kDownloading), ok.error().message()};
  }
  if (auto ok = files_->SyncDirectory(dir_); !ok) {
    return {t.image_id, std::string(wire::kDownloading), ok.error().message()};
  }
  log::Info("target {} ({} {}) downloaded and verified", t.image_id, t.kind, t.version);
  return {t.image_id, std::string(wire::kDownloaded), ""};
}

}  // namespace aspis::device::update
