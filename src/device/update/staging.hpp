#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/file.hpp"
#include "device/update/publisher_trust.hpp"
#include "wire/check_in.hpp"
#include "wire/device_api.hpp"

// The device's downloads (DESIGN section 5): each target of a verified update manifest is fetched
// in ranges into a bounded staging area and verified before it counts as downloaded. A compromised
// service or network can make a download fail, never make one succeed: the package must carry a
// signature of a publisher the device trusts for its kind, be for this board, and be the very
// image, size and digest the signed update manifest names.
namespace aspis::device::update {

// Where the bytes come from: the service, over mutual TLS, in the daemon; fakes in tests.
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // Bytes [first, first + length) of the package at `url`, as the server sent them (the caller
  // checks how many came). Errors: the transport's, or the service's refusal.
  virtual Expected<std::string> Fetch(std::string_view url, std::uint64_t first,
                                      std::uint64_t length) = 0;
};

// Each request asks for at most this much.
inline constexpr std::uint64_t kRangeSize = wire::kImageRangeSize;

struct StagingRules {
  std::string board;           // this device's board name; a package must list it
  std::uint64_t capacity = 0;  // bytes the staging area may hold, .part files included
};

class Staging {
 public:
  // `dir` is created (0700) when missing. Downloads are written, synced, renamed and removed
  // through `files`.
  static Expected<Staging> Open(std::filesystem::path dir, StagingRules rules,
                                file::FileSystem& files = file::RealFileSystem());

  // Whether to fetch more now: false pauses the downloads (the daemon is stopping, or this check-in
  // has spent its time), which resume at the next Sync.
  using KeepGoing = std::function<bool()>;

  // Brings the staging area to `targets`. Each target is admitted before any byte is fetched (a
  // safe ID listed once, a digest, a known kind, a size that fits beside the targets before it;
  // for apps, a pinned publisher key set), and only admitted targets keep files, so the area
  // never holds more than its capacity. Each admitted target is downloaded from where an
  // interrupted download stopped, its signed manifest checked as soon as it has arrived (publisher
  // for the kind, image, component, kind, versions, board, size), and the whole file checked at the
  // end (payload digest and size, the package's SHA-256). A verified package is renamed into place
  // durably. Returns each target's status in the manifest's order: kDownloaded, kDownloading
  // (interrupted; resumed next time, with the reason), or kFailed (refused; its bytes are
  // discarded).
  //
  // A target offered with a delta whose base `delta_base` finds installed is first rebuilt from
  // the delta (package/delta.hpp): the delta is fetched (no more than its signed size, and it
  // must have its signed digest), applied to the base tree, and the result is then checked like
  // a full download. On any failure the full package is fetched instead, and that target's delta
  // is not tried again by this Staging.
  using DeltaBases = std::function<std::optional<std::filesystem::path>(const wire::UpdateTarget&)>;
  std::vector<wire::TargetStatus> Sync(
      const std::vector<wire::UpdateTarget>& targets, ImageSource& source,
      const PublisherTrust& trust, Clock::TimePoint now,
      const KeepGoing& keep_going = [] { return true; }, const DeltaBases& delta_base = {});

  const std::string& board() const { return rules_.board; }

  // The verified package of a downloaded target, if it is staged.
  std::optional<std::filesystem::path> Staged(const wire::UpdateTarget& target) const;

 private:
  Staging(std::filesystem::path dir, StagingRules rules, file::FileSystem& files)
      : dir_(std::move(dir)), rules_(std::move(rules)), files_(&files) {}
  wire::TargetStatus Fetch(const wire::UpdateTarget& target, ImageSource& source,
                           const PublisherTrust& trust, const KeepGoing& keep_going,
                           const DeltaBases& delta_base);
  // Rebuilds the target's package at `part` from its delta; an error leaves no `part`.
  Expected<void> Rebuild(const wire::UpdateTarget& target, const std::filesystem::path& base,
                         const std::filesystem::path& part, ImageSource& source,
                         const KeepGoing& keep_going);

  std::filesystem::path dir_;
  StagingRules rules_;
  file::FileSystem* files_;
  std::set<std::string, std::less<>> deltas_failed_;  // image IDs
};

}  // namespace aspis::device::update
