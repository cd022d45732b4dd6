#include "device/update/publisher_trust.hpp"

#include "core/file.hpp"
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

}  // namespace

Expected<PublisherTrust> PublisherTrust::Open(std::filesystem::path pin_file,
                                              crypto::dsse::TrustedKeys os_publishers,
                                              std::string provisioned_root) {
  PublisherTrust trust(std::move(pin_file), std::move(os_publishers), std::move(provisioned_root));
  std::error_code ec;
  if (!std::filesystem::exists(trust.pin_file_, ec)) return trust;
  auto text = file::Read(trust.pin_file_, crypto::dsse::kMaxEnvelopeSize);
  if (!text) return std::unexpected(text.error());
  auto envelope = crypto::dsse::Parse(AsString(*text));
  auto set = envelope ? SelfSigned(*envelope)
                      : Expected<package::PublisherKeySet>(std::unexpected(envelope.error()));
  if (!set) {
    return Fail(CoreErrc::kCorrupt, "the pinned publisher key set " + trust.pin_file_.string() +
                                        " is damaged: " + set.error().message());
  }
  trust.Pin(std::move(*set), std::string(AsString(*text)));
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
  if (auto ok = file::WriteDurably(pin_file_, AsBytes(envelope_json), 0600); !ok) {
    return std::unexpected(std::move(ok.error()).WithContext("pinning the publisher key set"));
  }
  Pin(std::move(*accepted), std::string(envelope_json));
  return {};
}

void PublisherTrust::Pin(package::PublisherKeySet set, std::string envelope_json) {
  apps_ = set.publishers.Trusted();
  pinned_ = std::move(set);
  pinned_json_ = std::move(envelope_json);
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
