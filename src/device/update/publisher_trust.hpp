#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/file.hpp"
#include "crypto/dsse.hpp"
#include "package/package.hpp"
#include "package/publisher_keys.hpp"

// Whose packages a device installs (DESIGN section 5): the platform's OS publishers, from its
// trust bundle, for OS and board packages; its tenant's publishers, from the publisher key set it
// pinned the first time it saw one, for apps. The service relays key sets but cannot make one: a
// set replaces the pinned one only when the pinned root signs it (TUF's root rotation).
namespace aspis::device::update {

class PublisherTrust {
 public:
  // `pin_file` holds the pinned set (its envelope) and its anchor, the root of the first set
  // pinned; absent until the first set is pinned. `provisioned_root`, when not empty, is the
  // tenant's publisher root fingerprint given to the device out of band (at manufacture): the
  // first set must carry it, so a service that is compromised before the first check-in cannot
  // pin a root of its own, and a pin whose anchor is another root (taken on first use before the
  // root was provisioned) is dropped. Without it the first set is trusted on first use, and the
  // pin is reported at each check-in. Errors: kInvalidArgument for a provisioned root that is not
  // 64 lowercase hex digits, kCorrupt for a pin file that does not hold a set its own root signed,
  // kIo. The pin is read and written through `fs` (the device's Env), which must outlive this.
  static Expected<PublisherTrust> Open(std::filesystem::path pin_file,
                                       crypto::dsse::TrustedKeys os_publishers,
                                       std::string provisioned_root = {},
                                       file::FileSystem& files = file::RealFileSystem());

  // Offers the key set the service relayed (DSSE JSON) for `tenant`. The first valid one is
  // pinned (when it carries the provisioned root, if there is one); after that only a successor of
  // the pinned set (a higher version, signed by the pinned root to its threshold and by its own)
  // replaces it, written durably before it is used. The pinned set offered again changes nothing.
  // Errors: kUntrusted with the rule that failed (the pinned set stays), kMalformed, kIo.
  Expected<void> Offer(std::string_view envelope_json, std::string_view tenant,
                       Clock::TimePoint now);

  // The pinned root's fingerprint, reported at check-in; empty before a set is pinned.
  std::string RootFingerprint() const;

  // Why app packages cannot be verified at `now` (no set pinned, or it expired), or nullopt.
  std::optional<std::string> AppsUnverifiable(Clock::TimePoint now) const;

  // The keys for package::Reader::Open; valid while this object lives and is not offered a set.
  package::Publishers Publishers() const;

 private:
  PublisherTrust(std::filesystem::path pin_file, crypto::dsse::TrustedKeys os_publishers,
                 std::string provisioned_root, file::FileSystem& files)
      : fs_(&files),
        pin_file_(std::move(pin_file)),
        os_(std::move(os_publishers)),
        provisioned_root_(std::move(provisioned_root)) {}
  void Pin(package::PublisherKeySet set, std::string envelope_json, std::string anchor);

  file::FileSystem* fs_;
  std::filesystem::path pin_file_;
  crypto::dsse::TrustedKeys os_;
  std::string provisioned_root_;
  std::optional<package::PublisherKeySet> pinned_;
  std::string pinned_json_;
  std::string anchor_;
  crypto::dsse::TrustedKeys apps_;
};

}  // namespace aspis::device::update
