#include "device/update/publisher_trust.hpp"

#include <algorithm>

#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "package/errors.hpp"

namespace aspis::device::update {

namespace {

// A set as the pinned root signed it, without looking at its expiry (it was valid when pinned).
Expected<package::PublisherKeySet> SelfSigned(const crypto::dsse::Envelope& envelope) {
  auto set = package::ParseKeySet(AsString(envelope.payload));
  if (!set) return set;
  auto signed_by_root = crypto::dsse::Verify(envelope, package::kPublisherKeysType,
                                             set->root.Trusted(), set->root.threshold);
  if (!signed_by_root) return std::unexpected(signed_by_root.error());
  return set;
}

bool IsFingerprint(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

Expected<PublisherTrust> PublisherTrust::Open(std::filesystem::path pin_file,
                                              crypto::dsse::TrustedKeys os_publishers,
                                              std::string provisioned_root,
                                              file::FileSystem& files) {
  if (!provisioned_root.empty() && !IsFingerprint(provisioned_root)) {
    return Fail(CoreErrc::kInvalidArgument,
                "the provisioned publisher root must be 64 lowercase hex digits, as "
                "`aspis publisher-key-set show` prints its root_fingerprint");
  }
  PublisherTrust trust(std::move(pin_file), std::move(os_publishers), std::move(provisioned_root),
                       files);
  auto damaged = [&](std::string_view why) {
    return Fail(CoreErrc::kCorrupt, "the pinned publisher key set " + trust.pin_file_.string() +
                                        " is damaged: " + std::string(why));
  };
  auto text = files.Read(trust.pin_file_, 2 * crypto::dsse::kMaxEnvelopeSize);
  if (!text && text.error() == CoreErrc::kNotFound) return trust;  // nothing pinned yet
  if (!text) return std::unexpected(text.error());
  auto doc = json::Parse(AsString(*text));
  auto anchor = doc ? json::GetString(*doc, "anchor_root") : Expected<std::string>();
  auto key_set = doc ? json::GetString(*doc, "key_set") : Expected<std::string>();
  if (!doc || !anchor || !key_set) return damaged("it is not a pin record");
  auto envelope = crypto::dsse::Parse(*key_set);
  auto set = envelope ? SelfSigned(*envelope)
                      : Expected<package::PublisherKeySet>(std::unexpected(envelope.error()));
  if (!set) return damaged(set.error().message());
  // The first set pinned must have carried the provisioned root: a pin taken on first use from
  // a service that lied is dropped, and the device pins afresh under the provisioned root.
  if (!trust.provisioned_root_.empty() && *anchor != trust.provisioned_root_) {
    log::Warning(
        "dropping the pinned publisher key set: it descends from root {}, not the "
        "provisioned {}",
        anchor->substr(0, 16), trust.provisioned_root_.substr(0, 16));
    return trust;
  }
  trust.Pin(std::move(*set), std::move(*key_set), std::move(*anchor));
  return trust;
}

Expected<void> PublisherTrust::Offer(std::string_view envelope_json, std::string_view tenant,
                                     Clock::TimePoint now) {
  if (pinned_ && envelope_json == pinned_json_) return {};
  auto envelope = crypto::dsse::Parse(envelope_json);
  if (!envelope) {
    return Fail(package::PackageErrc::kMalformed,
                "the publisher key set is not a DSSE envelope: " + envelope.error().message());
  }
  auto accepted = pinned_ ? package::Successor(*pinned_, *envelope, now)
                          : package::VerifyKeySet(*envelope, tenant, now);
  if (!accepted) return std::unexpected(accepted.error());
  if (!pinned_ && !provisioned_root_.empty() && accepted->RootFingerprint() != provisioned_root_) {
    return Fail(package::PackageErrc::kUntrusted,
                "the publisher key set's root " + accepted->RootFingerprint().substr(0, 16) +
                    " is not the provisioned root " + provisioned_root_.substr(0, 16));
  }
  // The anchor is the root of the first set pinned; successors keep it.
  std::string anchor = pinned_ ? anchor_ : accepted->RootFingerprint();
  const json::Json record{{"anchor_root", anchor}, {"key_set", envelope_json}};
  if (auto ok = file::WriteDurably(*fs_, pin_file_, AsBytes(record.dump()), 0600); !ok) {
    return std::unexpected(std::move(ok.error()).WithContext("pinning the publisher key set"));
  }
  Pin(std::move(*accepted), std::string(envelope_json), std::move(anchor));
  return {};
}

void PublisherTrust::Pin(package::PublisherKeySet set, std::string envelope_json,
                         std::string anchor) {
  apps_ = set.publishers.Trusted();
  pinned_ = std::move(set);
  pinned_json_ = std::move(envelope_json);
  anchor_ = std::move(anchor);
}

std::string PublisherTrust::RootFingerprint() const {
  return pinned_ ? pinned_->RootFingerprint() : std::string();
}

std::optional<std::string> PublisherTrust::AppsUnverifiable(Clock::TimePoint now) const {
  if (!pinned_) return "no publisher key set is pinned yet (the tenant has none)";
  if (pinned_->expires <= UnixSeconds(now)) {
    return "the pinned publisher key set (version " + std::to_string(pinned_->version) +
           ") expired; the tenant must publish a successor";
  }
  return std::nullopt;
}

package::Publishers PublisherTrust::Publishers() const {
  return {.os = &os_,
          .apps = &apps_,
          .os_threshold = 1,
          .apps_threshold = pinned_ ? pinned_->publishers.threshold : 1};
}

}  // namespace aspis::device::update
