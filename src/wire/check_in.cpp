#include "wire/check_in.hpp"

#include <algorithm>

#include "wire/codec.hpp"

namespace aspis::wire {

namespace {

using json::Json;

constexpr std::size_t kMaxText = 256;
constexpr std::size_t kMaxItems = 64;

Expected<std::string> Text(const Json& doc, std::string_view key, std::string_view what,
                           std::size_t max = kMaxText) {
  auto text = In(json::GetString(doc, key), what);
  if (!text) return text;
  if (text->size() > max) {
    return Fail(WireErrc::kProtocol, std::string(what) + " field \"" + std::string(key) +
                                         "\" is longer than " + std::to_string(max));
  }
  return text;
}

Expected<const Json*> List(const Json& doc, std::string_view key, std::string_view what) {
  auto list = In(json::GetArray(doc, key), what);
  if (list && (*list)->size() > kMaxItems) {
    return Fail(WireErrc::kProtocol, std::string(what) + " lists more than " +
                                         std::to_string(kMaxItems) + " " + std::string(key));
  }
  return list;
}

// Collects the first error of several fields.
template <typename... T>
std::optional<Error> FirstError(const Expected<T>&... values) {
  std::optional<Error> first;
  ((!first && !values ? (first = values.error(), 0) : 0), ...);
  return first;
}

// The error report entries of a check-in (absent from runtimes that predate them).
Expected<void> ParseErrorEvents(const Json& doc, CheckIn& c) {
  if (!doc.contains("error_reports")) return {};
  auto list = In(json::GetArray(doc, "error_reports"), "check-in");
  if (!list) return std::unexpected(list.error());
  if ((*list)->size() > kMaxErrorEvents) {
    return Fail(WireErrc::kProtocol, "check-in lists more than 64 error reports");
  }
  auto dropped = In(json::GetUint(doc, "error_reports_dropped"), "check-in");
  if (!dropped) return std::unexpected(dropped.error());
  c.error_reports_dropped = std::min<std::uint64_t>(*dropped, std::uint64_t{1} << 32);
  for (const auto& item : **list) {
    auto sequence = In(json::GetUint(item, "sequence"), "error report");
    auto type = Text(item, "type", "error report", 16);
    auto event_class = Text(item, "class", "error report", 16);
    auto description = Text(item, "description", "error report", kMaxErrorDescription);
    auto count = In(json::GetUint(item, "count"), "error report");
    auto start = In(json::GetUint(item, "start"), "error report");
    auto end = In(json::GetUint(item, "end"), "error report");
    if (auto error = FirstError(sequence, type, event_class, description, count, start, end)) {
      return std::unexpected(*error);
    }
    if ((*type != kPlanned && *type != kUnplanned) ||
        (*event_class != kClassOs && *event_class != kClassApplication)) {
      return Fail(WireErrc::kProtocol, "error report has an unknown type or class");
    }
    constexpr std::uint64_t kLatest = std::uint64_t{1} << 40;    // beyond any real Unix time
    constexpr std::uint64_t kMostEver = std::uint64_t{1} << 48;  // counts and sequence numbers
    if (*start > kLatest || *end > kLatest || *count == 0 || *count > kMostEver ||
        *sequence > kMostEver) {
      return Fail(WireErrc::kProtocol, "error report has a time or count out of range");
    }
    c.error_reports.push_back({*sequence, *type, *event_class, *description, *count,
                               static_cast<std::int64_t>(*start), static_cast<std::int64_t>(*end)});
  }
  return {};
}

}  // namespace

std::string Serialize(const CheckIn& c) {
  Json images = Json::array();
  for (const auto& i : c.images) {
    images.push_back(
        {{"image_id", i.image_id}, {"component_id", i.component_id}, {"version", i.version}});
  }
  Json targets = Json::array();
  for (const auto& t : c.targets) {
    targets.push_back({{"image_id", t.image_id}, {"state", t.state}, {"reason", t.reason}});
  }
  Json errors = Json::array();
  for (const auto& e : c.error_reports) {
    errors.push_back({{"sequence", e.sequence},
                      {"type", e.type},
                      {"class", e.event_class},
                      {"description", e.description},
                      {"count", e.count},
                      {"start", e.start},
                      {"end", e.end}});
  }
  return Json{{"device_id", c.device_id},
              {"os_version", c.os_version},
              {"runtime_version", c.runtime_version},
              {"images", images},
              {"health", c.health},
              {"publisher_root", c.publisher_root},
              {"targets", targets},
              {"board", c.board},
              {"error_reports", errors},
              {"error_reports_dropped", c.error_reports_dropped}}
      .dump();
}

Expected<CheckIn> ParseCheckIn(std::string_view text) {
  auto doc = ParseMessage(text, "check-in");
  if (!doc) return std::unexpected(doc.error());
  auto device_id = Text(*doc, "device_id", "check-in");
  auto os_version = Text(*doc, "os_version", "check-in");
  auto runtime_version = Text(*doc, "runtime_version", "check-in");
  auto health = Text(*doc, "health", "check-in", 1024);
  auto images = List(*doc, "images", "check-in");
  // Added with downloads; a runtime that predates them sends neither.
  static const Json kNone = Json::array();
  auto publisher_root = doc->contains("publisher_root") ? Text(*doc, "publisher_root", "check-in")
                                                        : Expected<std::string>();
  auto targets =
      doc->contains("targets") ? List(*doc, "targets", "check-in") : Expected<const Json*>(&kNone);
  auto board =
      doc->contains("board") ? Text(*doc, "board", "check-in", 64) : Expected<std::string>();
  if (auto error = FirstError(device_id, os_version, runtime_version, health, images,
                              publisher_root, targets, board)) {
    return std::unexpected(*error);
  }
  CheckIn c{*device_id, *os_version, *runtime_version, {}, *health, *publisher_root, {}, *board};
  for (const auto& item : **targets) {
    auto image_id = Text(item, "image_id", "target status");
    auto state = Text(item, "state", "target status");
    auto reason = Text(item, "reason", "target status", kMaxReason);
    if (auto error = FirstError(image_id, state, reason)) return std::unexpected(*error);
    if (std::find(kTargetStates.begin(), kTargetStates.end(), *state) == kTargetStates.end()) {
      return Fail(WireErrc::kProtocol,
                  "target status has an unknown state \"" + state->substr(0, 40) + "\"");
    }
    c.targets.push_back({*image_id, *state, *reason});
  }
  if (auto errors = ParseErrorEvents(*doc, c); !errors) return std::unexpected(errors.error());
  for (const auto& item : **images) {
    auto image_id = Text(item, "image_id", "installed image");
    auto component_id = Text(item, "component_id", "installed image");
    auto version = Text(item, "version", "installed image");
    if (auto error = FirstError(image_id, component_id, version)) return std::unexpected(*error);
    c.images.push_back({*image_id, *component_id, *version});
  }
  return c;
}

std::string Serialize(const UpdateManifest& m) {
  Json targets = Json::array();
  for (const auto& t : m.targets) {
    Json target = {{"image_id", t.image_id},
                   {"component_id", t.component_id},
                   {"kind", t.kind},
                   {"version", t.version},
                   {"security_version", t.security_version},
                   {"sha256", t.sha256},
                   {"size", t.size},
                   {"url", t.url}};
    if (t.delta) {
      target["delta"] = {{"base_image_id", t.delta->base_image_id},
                         {"sha256", t.delta->sha256},
                         {"size", t.delta->size},
                         {"url", t.delta->url}};
    }
    targets.push_back(std::move(target));
  }
  Json doc = {{"device_id", m.device_id},   {"sequence", m.sequence}, {"issued_at", m.issued_at},
              {"expires_at", m.expires_at}, {"os_feed", m.os_feed},   {"targets", targets}};
  if (m.apps_complete) doc["apps_complete"] = true;
  return doc.dump();
}

Expected<UpdateManifest> ParseUpdateManifest(std::string_view text) {
  auto doc = ParseMessage(text, "update manifest");
  if (!doc) return std::unexpected(doc.error());
  constexpr std::string_view kWhat = "update manifest";
  auto device_id = Text(*doc, "device_id", kWhat);
  auto sequence = In(json::GetUint(*doc, "sequence"), kWhat);
  auto issued_at = In(json::GetUint(*doc, "issued_at"), kWhat);
  auto expires_at = In(json::GetUint(*doc, "expires_at"), kWhat);
  auto os_feed = Text(*doc, "os_feed", kWhat);
  auto targets = List(*doc, "targets", kWhat);
  if (auto error = FirstError(device_id, sequence, issued_at, expires_at, os_feed, targets)) {
    return std::unexpected(*error);
  }
  UpdateManifest m{*device_id,
                   *sequence,
                   static_cast<std::int64_t>(*issued_at),
                   static_cast<std::int64_t>(*expires_at),
                   *os_feed,
                   {},
                   false};
  if (doc->contains("apps_complete")) {
    const Json& complete = doc->at("apps_complete");
    if (!complete.is_boolean()) {
      return Fail(WireErrc::kProtocol, "update manifest: apps_complete is not a boolean");
    }
    m.apps_complete = complete.get<bool>();
  }
  for (const auto& item : **targets) {
    constexpr std::string_view kTarget = "update target";
    auto image_id = Text(item, "image_id", kTarget);
    auto component_id = Text(item, "component_id", kTarget);
    auto kind = Text(item, "kind", kTarget);
    auto version = Text(item, "version", kTarget);
    auto security_version = In(json::GetUint(item, "security_version"), kTarget);
    auto sha256 = Text(item, "sha256", kTarget);
    auto size = In(json::GetUint(item, "size"), kTarget);
    auto url = Text(item, "url", kTarget, 2048);
    if (auto error = FirstError(image_id, component_id, kind, version, security_version, sha256,
                                size, url)) {
      return std::unexpected(*error);
    }
    UpdateTarget target{*image_id, *component_id, *kind, *version,    *security_version,
                        *sha256,   *size,         *url,  std::nullopt};
    if (item.contains("delta")) {
      constexpr std::string_view kDelta = "delta offer";
      const Json& offer = item.at("delta");
      auto base = Text(offer, "base_image_id", kDelta);
      auto delta_sha256 = Text(offer, "sha256", kDelta);
      auto delta_size = In(json::GetUint(offer, "size"), kDelta);
      auto delta_url = Text(offer, "url", kDelta, 2048);
      if (auto error = FirstError(base, delta_sha256, delta_size, delta_url)) {
        return std::unexpected(*error);
      }
      target.delta = DeltaOffer{*base, *delta_sha256, *delta_size, *delta_url};
    }
    m.targets.push_back(std::move(target));
  }
  return m;
}

std::string Serialize(const CheckInResponse& r) {
  return Json{{"manifest", r.manifest_envelope},
              {"deployment_certificates", r.deployment_certificates_pem},
              {"publisher_keys", r.publisher_keys}}
      .dump();
}

Expected<CheckInResponse> ParseCheckInResponse(std::string_view text) {
  auto doc = ParseMessage(text, "check-in response");
  if (!doc) return std::unexpected(doc.error());
  auto manifest = Text(*doc, "manifest", "check-in response", kMaxMessage);
  auto certificates =
      Text(*doc, "deployment_certificates", "check-in response", std::size_t{64} * 1024);
  auto publisher_keys = Text(*doc, "publisher_keys", "check-in response", kMaxMessage);
  if (auto error = FirstError(manifest, certificates, publisher_keys)) {
    return std::unexpected(*error);
  }
  return CheckInResponse{*manifest, *certificates, *publisher_keys};
}

}  // namespace aspis::wire
