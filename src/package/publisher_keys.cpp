#include "package/publisher_keys.hpp"

#include <algorithm>
#include <set>

#include "core/json.hpp"
#include "crypto/sha256.hpp"
#include "package/errors.hpp"

namespace aspis::package {

namespace {

constexpr std::size_t kMaxKeys = 16;

Error Malformed(std::string_view what) {
  return Error(PackageErrc::kMalformed, "publisher key set: " + std::string(what));
}

Error Untrusted(std::string_view what) {
  return Error(PackageErrc::kUntrusted, "publisher key set: " + std::string(what));
}

Expected<void> ValidateRole(const KeyRole& role, std::string_view name) {
  if (role.keys.empty() || role.keys.size() > kMaxKeys) {
    return std::unexpected(Malformed(std::string(name) + " must list 1 to 16 keys"));
  }
  std::set<std::string> seen;
  for (const auto& key : role.keys) {
    if (!seen.insert(key.Fingerprint()).second) {
      return std::unexpected(Malformed(std::string(name) + " lists a key twice"));
    }
  }
  if (role.threshold == 0 || role.threshold > role.keys.size()) {
    return std::unexpected(
        Malformed(std::string(name) + " threshold must be between 1 and its number of keys"));
  }
  return {};
}

json::Json RoleJson(const KeyRole& role) {
  json::Json keys = json::Json::array();
  for (const auto& key : role.keys) keys.push_back(*key.ToPem());
  return {{"keys", keys}, {"threshold", role.threshold}};
}

Expected<KeyRole> ParseRole(const json::Json& doc, std::string_view name) {
  auto object = json::GetObject(doc, name);
  if (!object) return std::unexpected(Malformed(object.error().message()));
  auto keys = json::GetArray(**object, "keys");
  auto threshold = json::GetUint(**object, "threshold");
  if (!keys || !threshold || (*object)->size() != 2) {
    return std::unexpected(Malformed(std::string(name) + " needs exactly keys and threshold"));
  }
  if ((*keys)->size() > kMaxKeys) {
    return std::unexpected(Malformed(std::string(name) + " must list 1 to 16 keys"));
  }
  KeyRole role;
  role.threshold = *threshold;
  for (const auto& pem : **keys) {
    auto key = pem.is_string() ? crypto::PublicKey::FromPem(pem.get<std::string>())
                               : Expected<crypto::PublicKey>(Fail(CoreErrc::kParse, "not text"));
    if (!key) return std::unexpected(Malformed(std::string(name) + " holds a key that is not PEM"));
    // One encoding per key, so that one key cannot be counted twice toward a threshold.
    auto canonical = crypto::PublicKey::FromCanonicalDer(key->Der());
    if (!canonical) {
      return std::unexpected(Malformed(std::string(name) +
                                       " holds a key that is not P-256 with a named curve and an "
                                       "uncompressed point"));
    }
    role.keys.push_back(std::move(*canonical));
  }
  return role;
}

}  // namespace

crypto::dsse::TrustedKeys KeyRole::Trusted() const {
  crypto::dsse::TrustedKeys trusted;
  for (const auto& key : keys) trusted.Add(key);
  return trusted;
}

std::string PublisherKeySet::RootFingerprint() const {
  std::vector<std::string> ids;
  ids.reserve(root.keys.size());
  for (const auto& key : root.keys) ids.push_back(key.Fingerprint());
  std::sort(ids.begin(), ids.end());
  std::string text = "threshold=" + std::to_string(root.threshold);
  for (const auto& id : ids) text += "\n" + id;
  auto digest = crypto::Sha256Of(AsBytes(text));
  return digest ? crypto::ToHex(*digest) : std::string();
}

Expected<void> Validate(const PublisherKeySet& set) {
  if (set.tenant.empty() || set.tenant.size() > 64) {
    return std::unexpected(Malformed("tenant must be a tenant ID"));
  }
  if (set.version == 0) return std::unexpected(Malformed("version must be at least 1"));
  if (auto ok = ValidateRole(set.root, "root"); !ok) return ok;
  return ValidateRole(set.publishers, "publishers");
}

std::string SerializeKeySet(const PublisherKeySet& set) {
  return json::Dump({{"tenant", set.tenant},
                     {"version", set.version},
                     {"expires", set.expires},
                     {"root", RoleJson(set.root)},
                     {"publishers", RoleJson(set.publishers)}});
}

Expected<PublisherKeySet> ParseKeySet(std::string_view text) {
  auto doc = json::Parse(text, 8);
  if (!doc || !doc->is_object()) return std::unexpected(Malformed("not a JSON object"));
  for (const auto& [key, value] : doc->items()) {
    if (key != "tenant" && key != "version" && key != "expires" && key != "root" &&
        key != "publishers") {
      return std::unexpected(Malformed("unknown field \"" + key + "\""));
    }
  }
  auto tenant = json::GetString(*doc, "tenant");
  auto version = json::GetUint(*doc, "version");
  const auto expires = doc->find("expires");
  if (!tenant || !version || expires == doc->end() || !expires->is_number_integer()) {
    return std::unexpected(Malformed("needs tenant, version and expires"));
  }
  auto root = ParseRole(*doc, "root");
  if (!root) return std::unexpected(root.error());
  auto publishers = ParseRole(*doc, "publishers");
  if (!publishers) return std::unexpected(publishers.error());
  PublisherKeySet set{*tenant, *version, expires->get<std::int64_t>(), std::move(*root),
                      std::move(*publishers)};
  if (auto ok = Validate(set); !ok) return std::unexpected(ok.error());
  return set;
}

Expected<crypto::dsse::Envelope> SignKeySet(const PublisherKeySet& set,
                                            std::span<const crypto::PrivateKey> keys) {
  if (auto ok = Validate(set); !ok) return std::unexpected(ok.error());
  const auto trusted = set.root.Trusted();
  std::set<std::string> root_signers;
  for (const auto& key : keys) {
    if (trusted.Find(key.Public().Fingerprint()) != nullptr) {
      root_signers.insert(key.Public().Fingerprint());
    }
  }
  if (root_signers.size() < set.root.threshold) {
    return std::unexpected(Untrusted("the root threshold needs " +
                                     std::to_string(set.root.threshold) +
                                     " of the set's root keys to sign"));
  }
  return crypto::dsse::Sign(kPublisherKeysType, AsBytes(SerializeKeySet(set)), keys);
}

Expected<PublisherKeySet> VerifyKeySet(const crypto::dsse::Envelope& envelope,
                                       std::string_view tenant, Clock::TimePoint now) {
  if (envelope.payload_type != kPublisherKeysType) {
    return std::unexpected(Malformed("the envelope does not hold a publisher key set"));
  }
  auto set = ParseKeySet(AsString(envelope.payload));
  if (!set) return set;
  if (set->tenant != tenant) {
    return std::unexpected(Untrusted("it is for tenant " + set->tenant.substr(0, 64) + ", not " +
                                     std::string(tenant)));
  }
  if (set->expires <= UnixSeconds(now)) {
    return std::unexpected(Untrusted("it expired (version " + std::to_string(set->version) + ")"));
  }
  auto signed_by_root =
      crypto::dsse::Verify(envelope, kPublisherKeysType, set->root.Trusted(), set->root.threshold);
  if (!signed_by_root) {
    return std::unexpected(
        Untrusted("not signed by its own root: " + signed_by_root.error().message()));
  }
  return set;
}

Expected<PublisherKeySet> Successor(const PublisherKeySet& current,
                                    const crypto::dsse::Envelope& candidate, Clock::TimePoint now) {
  auto next = VerifyKeySet(candidate, current.tenant, now);
  if (!next) return next;
  if (next->version <= current.version) {
    return std::unexpected(Untrusted("version " + std::to_string(next->version) +
                                     " does not follow the trusted version " +
                                     std::to_string(current.version)));
  }
  auto by_current_root = crypto::dsse::Verify(candidate, kPublisherKeysType, current.root.Trusted(),
                                              current.root.threshold);
  if (!by_current_root) {
    return std::unexpected(Untrusted("not signed by the pinned root " +
                                     current.RootFingerprint().substr(0, 16) + ": " +
                                     by_current_root.error().message()));
  }
  return next;
}

}  // namespace aspis::package
