#include "wire/operator_api.hpp"

#include <algorithm>
#include <initializer_list>

#include "core/text.hpp"
#include "wire/attestation.hpp"
#include "wire/codec.hpp"

namespace aspis::wire::api {

namespace {

using json::Json;

constexpr std::size_t kMaxDescription = 200;
constexpr std::size_t kMaxId = 64;

Error Invalid(std::string_view field, std::string_view rule) {
  return Error(WireErrc::kProtocol, "\"" + std::string(field) + "\" " + std::string(rule));
}

// Parses a request object holding only `allowed` fields.
Expected<Json> Object(std::string_view text, std::initializer_list<std::string_view> allowed) {
  auto doc = ParseMessage(text, "request");
  if (!doc) return doc;
  for (const auto& [key, value] : doc->items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return std::unexpected(Invalid(key.substr(0, 40), "is not a field of this request"));
    }
  }
  return doc;
}

// The optional string field `key`, checked by `valid`.
template <class Valid>
Expected<std::optional<std::string>> OptionalText(const Json& doc, std::string_view key,
                                                  Valid valid, std::string_view rule) {
  const auto it = doc.find(key);
  if (it == doc.end()) return std::optional<std::string>();
  if (!it->is_string() || !valid(it->get<std::string>())) {
    return std::unexpected(Invalid(key, rule));
  }
  return std::optional<std::string>(it->get<std::string>());
}

// Required text of 1 to `max` characters, none of them a control or bidirectional formatting
// character.
Expected<std::string> RequiredText(const Json& doc, std::string_view key, std::size_t max) {
  const auto it = doc.find(key);
  if (it == doc.end() || !it->is_string() || it->get<std::string>().empty() ||
      !text::IsPlainText(it->get<std::string>(), max)) {
    return std::unexpected(Invalid(key, "is required: text of 1 to " + std::to_string(max) +
                                            " characters, without control characters"));
  }
  return it->get<std::string>();
}

// An identifier the service made (a UUID, a hex ID): 1 to 64 letters, digits and dashes.
Expected<std::string> RequiredId(const Json& doc, std::string_view key) {
  const auto it = doc.find(key);
  if (it == doc.end() || !it->is_string() || !text::IsToken(it->get<std::string>(), "-", kMaxId)) {
    return std::unexpected(Invalid(key, "is required: an ID"));
  }
  return it->get<std::string>();
}

bool IsDescription(std::string_view d) { return text::IsPlainText(d, kMaxDescription); }

// A lowercase hex SHA-256, as device IDs and digests are written.
bool IsDigest(std::string_view d) {
  return d.size() == 64 && d.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// The optional boolean field `key`.
Expected<std::optional<bool>> OptionalFlag(const Json& doc, std::string_view key) {
  const auto it = doc.find(key);
  if (it == doc.end()) return std::optional<bool>();
  if (!it->is_boolean()) return std::unexpected(Invalid(key, "must be true or false"));
  return std::optional<bool>(it->get<bool>());
}

template <std::size_t N>
bool OneOf(const std::array<std::string_view, N>& values, std::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

bool IsFeed(std::string_view f) { return OneOf(kOsFeeds, f); }
bool IsPolicy(std::string_view p) { return OneOf(kUpdatePolicies, p); }

constexpr std::string_view kNameRule =
    "must be 1 to 50 characters, without /, control characters or spaces at either end";
constexpr std::string_view kDescriptionRule =
    "must be text of at most 200 characters, without control characters";
constexpr std::string_view kFeedRule = "must be retail or retail-eval";

void Put(Json& doc, std::string_view key, const std::optional<std::string>& value) {
  if (value) doc[std::string(key)] = *value;
}

}  // namespace

bool IsName(std::string_view n) {
  return !n.empty() && text::IsPlainText(n, 50) && n.find('/') == std::string_view::npos &&
         n.front() != ' ' && n.back() != ' ';
}

std::string Serialize(const TenantRequest& r) { return Json{{"name", r.name}}.dump(); }

Expected<TenantRequest> ParseTenantRequest(std::string_view body) {
  auto doc = Object(body, {"name"});
  if (!doc) return std::unexpected(doc.error());
  // The name becomes the organisation of the tenant CA's subject: 64 characters at most.
  auto name = RequiredText(*doc, "name", 64);
  if (!name) return std::unexpected(name.error());
  return TenantRequest{*name};
}

std::string Serialize(const TokenRequest& r) {
  return Json{{"role", r.role}, {"description", r.description}}.dump();
}

Expected<TokenRequest> ParseTokenRequest(std::string_view body) {
  auto doc = Object(body, {"role", "description"});
  if (!doc) return std::unexpected(doc.error());
  constexpr std::string_view kRoleRule = "must be Administrator, Contributor or Reader";
  auto role = OptionalText(
      *doc, "role", [](std::string_view r) { return OneOf(kRoles, r); }, kRoleRule);
  if (!role) return std::unexpected(role.error());
  if (!*role) return std::unexpected(Invalid("role", kRoleRule));
  auto description = OptionalText(*doc, "description", IsDescription, kDescriptionRule);
  if (!description) return std::unexpected(description.error());
  return TokenRequest{**role, description->value_or("")};
}

std::string Serialize(const DeviceClaim& c) { return Json{{"device_id", c.device_id}}.dump(); }

Expected<DeviceClaim> ParseDeviceClaim(std::string_view body) {
  auto doc = Object(body, {"device_id"});
  if (!doc) return std::unexpected(doc.error());
  auto id = OptionalText(*doc, "device_id", IsDigest, "must be 64 lowercase hex characters");
  if (!id || !*id)
    return std::unexpected(Invalid("device_id", "must be 64 lowercase hex characters"));
  return DeviceClaim{**id};
}

std::string Serialize(const AttestationPolicyChange& c) {
  Json doc = Json::object();
  if (c.allow_software_root_of_trust) {
    doc["allow_software_root_of_trust"] = *c.allow_software_root_of_trust;
  }
  Put(doc, "pin_boot_pcrs_from_device", c.pin_boot_pcrs_from_device);
  if (c.clear_golden_boot_pcrs) doc["clear_golden_boot_pcrs"] = true;
  return doc.dump();
}

Expected<AttestationPolicyChange> ParseAttestationPolicyChange(std::string_view body) {
  auto doc = Object(body, {"allow_software_root_of_trust", "pin_boot_pcrs_from_device",
                           "clear_golden_boot_pcrs"});
  if (!doc) return std::unexpected(doc.error());
  auto allow = OptionalFlag(*doc, "allow_software_root_of_trust");
  if (!allow) return std::unexpected(allow.error());
  auto pin = OptionalText(*doc, "pin_boot_pcrs_from_device", IsDigest,
                          "must be a device ID: 64 lowercase hex characters");
  if (!pin) return std::unexpected(pin.error());
  auto clear = OptionalFlag(*doc, "clear_golden_boot_pcrs");
  if (!clear) return std::unexpected(clear.error());
  AttestationPolicyChange change{*allow, *pin, clear->value_or(false)};
  if (change.pin_boot_pcrs_from_device && change.clear_golden_boot_pcrs) {
    return std::unexpected(
        Invalid("clear_golden_boot_pcrs", "cannot be asked with \"pin_boot_pcrs_from_device\""));
  }
  if (!change.allow_software_root_of_trust && !change.pin_boot_pcrs_from_device &&
      !change.clear_golden_boot_pcrs) {
    return std::unexpected(Error(WireErrc::kProtocol, "the request changes nothing"));
  }
  return change;
}

std::string Serialize(const OsReleaseRegistration& r) {
  Json components = Json::object();
  for (const auto& [component, digest] : r.components) components[component] = digest;
  return Json{{"version", r.version}, {"feed", r.feed}, {"components", std::move(components)}}
      .dump();
}

Expected<OsReleaseRegistration> ParseOsReleaseRegistration(std::string_view body) {
  auto doc = Object(body, {"version", "feed", "components"});
  if (!doc) return std::unexpected(doc.error());
  auto version = OptionalText(*doc, "version", text::IsVersion,
                              "must be 1 to 64 letters, digits, dots, pluses, dashes, underscores "
                              "or tildes");
  if (!version) return std::unexpected(version.error());
  if (!*version) return std::unexpected(Invalid("version", "is required"));
  auto feed = RequiredText(*doc, "feed", 20);
  if (!feed || !IsFeed(*feed)) return std::unexpected(Invalid("feed", kFeedRule));
  const auto components = doc->find("components");
  if (components == doc->end() || !components->is_object() ||
      components->size() != kLaunchComponents.size()) {
    return std::unexpected(Invalid("components",
                                   "must map exactly the launch components (os, aspisd, board, "
                                   "trust-bundle) to their digests"));
  }
  OsReleaseRegistration r{**version, *feed, {}};
  for (const std::string_view component : kLaunchComponents) {
    const auto digest = components->find(component);
    if (digest == components->end() || !digest->is_string() ||
        !IsDigest(digest->get<std::string>())) {
      return std::unexpected(Invalid(
          "components", "needs a lowercase hex SHA-256 for \"" + std::string(component) + "\""));
    }
    r.components.emplace_back(component, digest->get<std::string>());
  }
  return r;
}

std::string Serialize(const OsReleaseRetirement& r) { return Json{{"reason", r.reason}}.dump(); }

Expected<OsReleaseRetirement> ParseOsReleaseRetirement(std::string_view body) {
  auto doc = Object(body, {"reason"});
  if (!doc) return std::unexpected(doc.error());
  auto reason = RequiredText(*doc, "reason", 500);
  if (!reason) return std::unexpected(reason.error());
  return OsReleaseRetirement{*reason};
}

std::string Serialize(const ProductFields& f) {
  Json doc = Json::object();
  Put(doc, "name", f.name);
  Put(doc, "description", f.description);
  return doc.dump();
}

Expected<ProductFields> ParseProductFields(std::string_view body) {
  auto doc = Object(body, {"name", "description"});
  if (!doc) return std::unexpected(doc.error());
  auto name = OptionalText(*doc, "name", IsName, kNameRule);
  if (!name) return std::unexpected(name.error());
  auto description = OptionalText(*doc, "description", IsDescription, kDescriptionRule);
  if (!description) return std::unexpected(description.error());
  return ProductFields{*name, *description};
}

std::string Serialize(const DeviceGroupFields& f) {
  Json doc = Json::object();
  Put(doc, "name", f.name);
  Put(doc, "description", f.description);
  Put(doc, "os_feed", f.os_feed);
  Put(doc, "update_policy", f.update_policy);
  if (f.app_updates) doc["app_updates"] = *f.app_updates;
  return doc.dump();
}

Expected<DeviceGroupFields> ParseDeviceGroupFields(std::string_view body) {
  auto doc = Object(body, {"name", "description", "os_feed", "update_policy", "app_updates"});
  if (!doc) return std::unexpected(doc.error());
  DeviceGroupFields f;
  auto name = OptionalText(*doc, "name", IsName, kNameRule);
  auto description = OptionalText(*doc, "description", IsDescription, kDescriptionRule);
  auto feed = OptionalText(*doc, "os_feed", IsFeed, kFeedRule);
  auto policy = OptionalText(*doc, "update_policy", IsPolicy,
                             "must be UpdateAll, No3rdPartyAppUpdates or NoUpdates");
  for (const auto* field : {&name, &description, &feed, &policy}) {
    if (!*field) return std::unexpected(field->error());
  }
  if (const auto it = doc->find("app_updates"); it != doc->end()) {
    if (!it->is_boolean()) return std::unexpected(Invalid("app_updates", "must be true or false"));
    f.app_updates = it->get<bool>();
  }
  f.name = *name;
  f.description = *description;
  f.os_feed = *feed;
  f.update_policy = *policy;
  return f;
}

namespace {

Json RolloutJson(const Rollout& r) {
  Json doc = {{"failure_threshold", r.failure_threshold}};
  if (r.batch_size > 0) {
    doc["batch_size"] = r.batch_size;
  } else {
    doc["stages"] = r.stages;
  }
  return doc;
}

// A rollout's integer field.
Expected<std::int64_t> RolloutInteger(const Json& doc, std::string_view key, std::int64_t low,
                                      std::int64_t high, std::int64_t absent) {
  const auto it = doc.find(key);
  if (it == doc.end()) return absent;
  if (!it->is_number_integer() || it->get<std::int64_t>() < low || it->get<std::int64_t>() > high) {
    return std::unexpected(
        Invalid("rollout." + std::string(key),
                "must be an integer from " + std::to_string(low) + " to " + std::to_string(high)));
  }
  return it->get<std::int64_t>();
}

Expected<Rollout> ParseRollout(const Json& doc) {
  constexpr std::string_view kRule =
      "must be an object with either stages (ascending percents, the last 100) or batch_size, and "
      "optionally failure_threshold";
  if (!doc.is_object()) return std::unexpected(Invalid("rollout", kRule));
  for (const auto& [key, value] : doc.items()) {
    if (key != "stages" && key != "batch_size" && key != "failure_threshold") {
      return std::unexpected(Invalid("rollout." + key.substr(0, 40), "is not a rollout field"));
    }
  }
  if (doc.contains("stages") == doc.contains("batch_size")) {
    return std::unexpected(Invalid("rollout", kRule));
  }
  Rollout r;
  auto threshold = RolloutInteger(doc, "failure_threshold", 0, 100, kDefaultFailureThreshold);
  auto batch = RolloutInteger(doc, "batch_size", 1, kMaxBatchSize, 0);
  if (!threshold) return std::unexpected(threshold.error());
  if (!batch) return std::unexpected(batch.error());
  r.failure_threshold = *threshold;
  r.batch_size = *batch;
  if (const auto stages = doc.find("stages"); stages != doc.end()) {
    constexpr std::string_view kStagesRule =
        "must list 1 to 10 ascending percents from 1 to 100, the last 100";
    if (!stages->is_array() || stages->empty() || stages->size() > kMaxStages) {
      return std::unexpected(Invalid("rollout.stages", kStagesRule));
    }
    for (const auto& stage : *stages) {
      const std::int64_t last = r.stages.empty() ? 0 : r.stages.back();
      if (!stage.is_number_integer() || stage.get<std::int64_t>() <= last ||
          stage.get<std::int64_t>() > 100) {
        return std::unexpected(Invalid("rollout.stages", kStagesRule));
      }
      r.stages.push_back(stage.get<std::int64_t>());
    }
    if (r.stages.back() != 100) return std::unexpected(Invalid("rollout.stages", kStagesRule));
  }
  return r;
}

}  // namespace

std::string Serialize(const DeploymentRequest& r) {
  Json doc = {{"images", r.images}};
  if (r.rollout) doc["rollout"] = RolloutJson(*r.rollout);
  return doc.dump();
}

Expected<DeploymentRequest> ParseDeploymentRequest(std::string_view body) {
  auto doc = Object(body, {"images", "rollout"});
  if (!doc) return std::unexpected(doc.error());
  const auto images = doc->find("images");
  if (images == doc->end() || !images->is_array() || images->size() > kMaxDeploymentImages) {
    return std::unexpected(Invalid("images", "must list at most 64 image IDs"));
  }
  DeploymentRequest r;
  for (const auto& image : *images) {
    if (!image.is_string() || !text::IsToken(image.get<std::string>(), "-", kMaxId)) {
      return std::unexpected(Invalid("images", "must list image IDs"));
    }
    r.images.push_back(image.get<std::string>());
  }
  if (const auto rollout = doc->find("rollout"); rollout != doc->end()) {
    auto parsed = ParseRollout(*rollout);
    if (!parsed) return std::unexpected(parsed.error());
    r.rollout = std::move(*parsed);
  }
  return r;
}

std::string Serialize(const DeviceGroupAssignment& a) {
  return Json{{"device_group_id", a.device_group_id}}.dump();
}

Expected<DeviceGroupAssignment> ParseDeviceGroupAssignment(std::string_view body) {
  auto doc = Object(body, {"device_group_id"});
  if (!doc) return std::unexpected(doc.error());
  auto group = RequiredId(*doc, "device_group_id");
  if (!group) return std::unexpected(group.error());
  return DeviceGroupAssignment{*group};
}

std::string Serialize(const OsReleasePublication& p) {
  return Json{{"image_id", p.image_id}, {"board_image_id", p.board_image_id}, {"feed", p.feed}}
      .dump();
}

Expected<OsReleasePublication> ParseOsReleasePublication(std::string_view body) {
  auto doc = Object(body, {"image_id", "board_image_id", "feed"});
  if (!doc) return std::unexpected(doc.error());
  auto image = RequiredId(*doc, "image_id");
  if (!image) return std::unexpected(image.error());
  auto board = RequiredId(*doc, "board_image_id");
  if (!board) return std::unexpected(board.error());
  auto feed = RequiredText(*doc, "feed", 20);
  if (!feed || !IsFeed(*feed)) return std::unexpected(Invalid("feed", kFeedRule));
  return OsReleasePublication{*image, *board, *feed};
}

// --- Answers ---

namespace {

// Reads the fields of an answer, keeping the first error.
class Reader {
 public:
  explicit Reader(const Json& doc, std::string_view what) : doc_(doc), what_(what) {}
  std::string Text(std::string_view key) { return Get<std::string>(key, &Json::is_string); }
  std::int64_t Number(std::string_view key) {
    return Get<std::int64_t>(key, &Json::is_number_integer);
  }
  bool Flag(std::string_view key) { return Get<bool>(key, &Json::is_boolean); }
  const Json& List(std::string_view key) {
    static const Json kEmpty = Json::array();
    const auto it = doc_.find(key);
    if (it != doc_.end() && it->is_array()) return *it;
    Note(key);
    return kEmpty;
  }
  const Json& Object(std::string_view key) {
    static const Json kEmpty = Json::object();
    const auto it = doc_.is_object() ? doc_.find(key) : doc_.end();
    if (it != doc_.end() && it->is_object()) return *it;
    Note(key);
    return kEmpty;
  }
  std::vector<std::string> Texts(std::string_view key) {
    std::vector<std::string> out;
    for (const auto& item : List(key)) {
      if (item.is_string())
        out.push_back(item.get<std::string>());
      else
        Note(key);
    }
    return out;
  }
  template <class T>
  Expected<T> Result(T value) const {
    if (error_) return std::unexpected(*error_);
    return value;
  }

 private:
  template <class T>
  T Get(std::string_view key, bool (Json::*is)() const noexcept) {
    if (!doc_.is_object()) {
      Note(key);
      return T{};
    }
    const auto it = doc_.find(key);
    if (it == doc_.end() || !((*it).*is)()) {
      Note(key);
      return T{};
    }
    return it->get<T>();
  }
  void Note(std::string_view key) {
    if (!error_) {
      error_ = Error(WireErrc::kProtocol,
                     std::string(what_) + " answer lacks \"" + std::string(key) + "\" of its type");
    }
  }

  const Json& doc_;
  std::string_view what_;
  std::optional<Error> error_;
};

Json PcrsJson(const BootPcrs& pcrs) {
  Json out = Json::object();
  for (const auto& [index, value] : pcrs) out[index] = value;
  return out;
}

// The boot PCRs under `key`: an object of hex strings.
BootPcrs PcrsFrom(const Json& doc, std::string_view key, std::optional<Error>& error) {
  BootPcrs out;
  const auto it = doc.is_object() ? doc.find(key) : doc.end();
  if (it == doc.end() || !it->is_object()) {
    error = Error(WireErrc::kProtocol, "the answer lacks \"" + std::string(key) + "\" of its type");
    return out;
  }
  for (const auto& [index, value] : it->items()) {
    if (!value.is_string()) {
      error = Error(WireErrc::kProtocol, "a boot PCR value is not text");
      return out;
    }
    out.emplace_back(index, value.get<std::string>());
  }
  return out;
}

}  // namespace

Json ToJson(const PublisherKeySet& k) {
  Json doc = {{"tenant", k.tenant},
              {"version", k.version},
              {"expires", k.expires},
              {"root_fingerprint", k.root_fingerprint},
              {"publisher_keys", k.publisher_keys},
              {"publisher_threshold", k.publisher_threshold}};
  if (!k.envelope.is_null()) doc["envelope"] = k.envelope;
  return doc;
}

Expected<PublisherKeySet> PublisherKeySetFrom(const Json& doc) {
  Reader r(doc, "publisher key set");
  PublisherKeySet k{r.Text("tenant"),
                    r.Number("version"),
                    r.Number("expires"),
                    r.Text("root_fingerprint"),
                    r.Texts("publisher_keys"),
                    r.Number("publisher_threshold"),
                    nullptr};
  if (doc.is_object() && doc.contains("envelope")) k.envelope = r.Object("envelope");
  return r.Result(std::move(k));
}

Json ToJson(const Upload& u) { return {{"id", u.id}, {"received", u.received}}; }

Expected<Upload> UploadFrom(const Json& doc) {
  Reader r(doc, "upload");
  Upload u{r.Text("id"), r.Number("received")};
  return r.Result(std::move(u));
}

Json ToJson(const Deletion& d) { return {{"id", d.id}, {"deleted", true}}; }

Expected<Deletion> DeletionFrom(const Json& doc) {
  Reader r(doc, "deletion");
  Deletion d{r.Text("id")};
  if (!r.Flag("deleted")) return std::unexpected(Error(WireErrc::kProtocol, "nothing was deleted"));
  return r.Result(std::move(d));
}

Json ToJson(const Tenant& t) {
  return {{"id", t.id}, {"name", t.name}, {"created_at", t.created_at}};
}

Expected<Tenant> TenantFrom(const Json& doc) {
  Reader r(doc, "tenant");
  Tenant t{r.Text("id"), r.Text("name"), r.Number("created_at")};
  return r.Result(std::move(t));
}

Json ToJson(const Token& t) {
  Json doc = {{"id", t.id},
              {"role", t.role},
              {"description", t.description},
              {"created_at", t.created_at},
              {"revoked", t.revoked}};
  if (!t.secret.empty()) doc["token"] = t.secret;
  return doc;
}

Expected<Token> TokenFrom(const Json& doc) {
  Reader r(doc, "token");
  Token t{r.Text("id"),           r.Text("role"),    r.Text("description"),
          r.Number("created_at"), r.Flag("revoked"), {}};
  if (doc.is_object() && doc.contains("token")) t.secret = r.Text("token");
  return r.Result(std::move(t));
}

Json ToJson(const Device& d) {
  Json doc = {{"id", d.id},
              {"tenant_id", d.tenant_id},
              {"claimed_at", d.claimed_at},
              {"revoked", d.revoked},
              {"attestation",
               {{"verdict", d.verdict},
                {"reasons", d.reasons},
                {"at", d.attested_at},
                {"certificate_expiry", d.certificate_expiry}}},
              {"last_check_in", d.last_check_in},
              {"os_version", d.os_version},
              {"runtime_version", d.runtime_version},
              {"root_of_trust", d.root_of_trust},
              {"os_release", d.os_release},
              {"device_group_id", d.device_group_id},
              {"board", d.board}};
  if (d.publisher_root) {
    doc["publisher_root"] = {{"pinned", d.publisher_root->pinned},
                             {"tenant", d.publisher_root->tenant},
                             {"status", d.publisher_root->status}};
    Json images = Json::array();
    for (const auto& i : d.images) {
      images.push_back({{"image_id", i.image_id},
                        {"state", i.state},
                        {"reason", i.reason},
                        {"updated_at", i.updated_at}});
    }
    doc["images"] = std::move(images);
    doc["latest_error_report"] =
        d.latest_error_report ? ToJson(*d.latest_error_report) : Json(nullptr);
  }
  return doc;
}

Expected<Device> DeviceFrom(const Json& doc) {
  Reader r(doc, "device");
  Device d;
  d.id = r.Text("id");
  d.tenant_id = r.Text("tenant_id");
  d.claimed_at = r.Number("claimed_at");
  d.revoked = r.Flag("revoked");
  d.last_check_in = r.Number("last_check_in");
  d.os_version = r.Text("os_version");
  d.runtime_version = r.Text("runtime_version");
  d.root_of_trust = r.Text("root_of_trust");
  d.os_release = r.Text("os_release");
  d.device_group_id = r.Text("device_group_id");
  d.board = r.Text("board");
  Reader a(r.Object("attestation"), "device attestation");
  d.verdict = a.Text("verdict");
  d.reasons = a.Text("reasons");
  d.attested_at = a.Number("at");
  d.certificate_expiry = a.Number("certificate_expiry");
  if (auto bad = a.Result(0); !bad) return std::unexpected(bad.error());
  if (doc.is_object() && doc.contains("publisher_root")) {
    Reader p(r.Object("publisher_root"), "publisher root");
    d.publisher_root = PublisherPin{p.Text("pinned"), p.Text("tenant"), p.Text("status")};
    if (auto bad = p.Result(0); !bad) return std::unexpected(bad.error());
    for (const auto& item : r.List("images")) {
      Reader i(item, "device image");
      d.images.push_back(
          {i.Text("image_id"), i.Text("state"), i.Text("reason"), i.Number("updated_at")});
      if (auto bad = i.Result(0); !bad) return std::unexpected(bad.error());
    }
    if (const auto latest = doc.find("latest_error_report");
        latest != doc.end() && latest->is_object()) {
      auto report = ErrorReportFrom(*latest);
      if (!report) return std::unexpected(report.error());
      d.latest_error_report = std::move(*report);
    }
  }
  return r.Result(std::move(d));
}

Json ToJson(const Attestation& a) {
  Json attempts = Json::array();
  for (const auto& t : a.attempts) {
    attempts.push_back(
        {{"at", t.at}, {"verdict", t.verdict}, {"reasons", t.reasons}, {"proven", t.proven}});
  }
  return {{"device_id", a.device_id},
          {"verdict", a.verdict},
          {"reasons", a.reasons},
          {"at", a.at},
          {"root_of_trust", a.root_of_trust},
          {"os_release", a.os_release},
          {"boot_pcrs", PcrsJson(a.boot_pcrs)},
          {"attempts", std::move(attempts)}};
}

Expected<Attestation> AttestationFrom(const Json& doc) {
  Reader r(doc, "attestation");
  std::optional<Error> error;
  Attestation a{r.Text("device_id"),
                r.Text("verdict"),
                r.Text("reasons"),
                r.Number("at"),
                r.Text("root_of_trust"),
                r.Text("os_release"),
                PcrsFrom(doc, "boot_pcrs", error),
                {}};
  if (error) return std::unexpected(*error);
  for (const auto& item : r.List("attempts")) {
    Reader t(item, "attestation attempt");
    a.attempts.push_back({t.Number("at"), t.Text("verdict"), t.Text("reasons"), t.Flag("proven")});
    if (auto bad = t.Result(0); !bad) return std::unexpected(bad.error());
  }
  return r.Result(std::move(a));
}

Json ToJson(const AttestationPolicy& p) {
  return {{"allow_software_root_of_trust", p.allow_software_root_of_trust},
          {"golden_boot_pcrs", PcrsJson(p.golden_boot_pcrs)}};
}

Expected<AttestationPolicy> AttestationPolicyFrom(const Json& doc) {
  Reader r(doc, "attestation policy");
  std::optional<Error> error;
  AttestationPolicy p{r.Flag("allow_software_root_of_trust"),
                      PcrsFrom(doc, "golden_boot_pcrs", error)};
  if (error) return std::unexpected(*error);
  return r.Result(std::move(p));
}

Json ToJson(const CaCertificate& c) {
  return {{"index", c.index},         {"thumbprint", c.thumbprint},
          {"subject", c.subject},     {"not_before", c.not_before},
          {"not_after", c.not_after}, {"activates_at", c.activates_at},
          {"state", c.state}};
}

Expected<CaCertificate> CaCertificateFrom(const Json& doc) {
  Reader r(doc, "CA certificate");
  CaCertificate c{r.Number("index"),      r.Text("thumbprint"),  r.Text("subject"),
                  r.Number("not_before"), r.Number("not_after"), r.Number("activates_at"),
                  r.Text("state")};
  return r.Result(std::move(c));
}

Json ToJson(const AuditEntry& e) {
  return {{"sequence", e.sequence},
          {"actor", e.actor},
          {"action", e.action},
          {"target", e.target},
          {"at", e.at}};
}

Json ToJson(const ErrorReport& e) {
  return {{"device_id", e.device_id},     {"event_type", e.event_type},
          {"event_class", e.event_class}, {"event_count", e.event_count},
          {"description", e.description}, {"start_time", e.start_time},
          {"end_time", e.end_time}};
}

Expected<ErrorReport> ErrorReportFrom(const Json& doc) {
  Reader r(doc, "error report");
  ErrorReport e{r.Text("device_id"),     r.Text("event_type"),  r.Text("event_class"),
                r.Number("event_count"), r.Text("description"), r.Number("start_time"),
                r.Number("end_time")};
  return r.Result(std::move(e));
}

Expected<AuditEntry> AuditEntryFrom(const Json& doc) {
  Reader r(doc, "audit entry");
  AuditEntry e{r.Number("sequence"), r.Text("actor"), r.Text("action"), r.Text("target"),
               r.Number("at")};
  return r.Result(std::move(e));
}

Json ToJson(const Product& p) {
  return {
      {"id", p.id}, {"name", p.name}, {"description", p.description}, {"created_at", p.created_at}};
}

Expected<Product> ProductFrom(const Json& doc) {
  Reader r(doc, "product");
  Product p{r.Text("id"), r.Text("name"), r.Text("description"), r.Number("created_at")};
  return r.Result(std::move(p));
}

Json ToJson(const DeviceGroup& g) {
  return {{"id", g.id},
          {"product_id", g.product_id},
          {"product", g.product},
          {"name", g.name},
          {"description", g.description},
          {"os_feed", g.os_feed},
          {"update_policy", g.update_policy},
          {"app_updates", g.app_updates},
          {"created_at", g.created_at}};
}

Expected<DeviceGroup> DeviceGroupFrom(const Json& doc) {
  Reader r(doc, "device group");
  DeviceGroup g{
      r.Text("id"),          r.Text("product_id"), r.Text("product"),       r.Text("name"),
      r.Text("description"), r.Text("os_feed"),    r.Text("update_policy"), r.Flag("app_updates"),
      r.Number("created_at")};
  return r.Result(std::move(g));
}

Json ToJson(const Deployment& d) {
  Json doc = {{"id", d.id},
              {"device_group_id", d.device_group_id},
              {"created_at", d.created_at},
              {"created_by", d.created_by},
              {"images", d.images},
              {"current", d.current},
              {"state", d.state},
              {"stage", d.stage},
              {"reason", d.reason}};
  if (d.rollout) doc["rollout"] = RolloutJson(*d.rollout);
  if (!d.stages.empty()) {
    Json stages = Json::array();
    for (const auto& s : d.stages) {
      stages.push_back({{"stage", s.stage},
                        {"devices", s.devices},
                        {"succeeded", s.succeeded},
                        {"failed", s.failed}});
    }
    doc["stages"] = std::move(stages);
  }
  if (!d.progress.empty()) {
    Json progress = Json::array();
    for (const auto& p : d.progress) {
      Json failures = Json::array();
      for (const auto& [device, reason] : p.failures) {
        failures.push_back({{"device_id", device}, {"reason", reason}});
      }
      progress.push_back({{"image_id", p.image_id},
                          {"downloading", p.downloading},
                          {"downloaded", p.downloaded},
                          {"failed", p.failed},
                          {"installing", p.installing},
                          {"installed", p.installed},
                          {"reverted", p.reverted},
                          {"failures", std::move(failures)}});
    }
    doc["progress"] = std::move(progress);
  }
  return doc;
}

Expected<Deployment> DeploymentFrom(const Json& doc) {
  Reader r(doc, "deployment");
  Deployment d{r.Text("id"),
               r.Text("device_group_id"),
               r.Number("created_at"),
               r.Text("created_by"),
               r.Texts("images"),
               r.Flag("current"),
               {},
               std::nullopt,
               r.Text("state"),
               r.Number("stage"),
               r.Text("reason"),
               {}};
  if (std::find(kDeploymentStates.begin(), kDeploymentStates.end(), d.state) ==
      kDeploymentStates.end()) {
    return std::unexpected(Invalid("state", "is not a deployment state"));
  }
  if (doc.is_object() && doc.contains("rollout")) {
    auto rollout = ParseRollout(doc.at("rollout"));
    if (!rollout) return std::unexpected(rollout.error());
    d.rollout = std::move(*rollout);
  }
  if (doc.is_object() && doc.contains("stages")) {
    for (const auto& item : r.List("stages")) {
      Reader s(item, "deployment stage");
      StageProgress stage{s.Number("stage"), s.Number("devices"), s.Number("succeeded"),
                          s.Number("failed")};
      if (auto bad = s.Result(0); !bad) return std::unexpected(bad.error());
      d.stages.push_back(stage);
    }
  }
  if (doc.is_object() && doc.contains("progress")) {
    for (const auto& item : r.List("progress")) {
      Reader p(item, "deployment progress");
      ImageProgress progress{p.Text("image_id"),     p.Number("downloading"),
                             p.Number("downloaded"), p.Number("failed"),
                             p.Number("installing"), p.Number("installed"),
                             p.Number("reverted"),   {}};
      for (const auto& f : p.List("failures")) {
        Reader failure(f, "deployment failure");
        progress.failures.emplace_back(failure.Text("device_id"), failure.Text("reason"));
        if (auto bad = failure.Result(0); !bad) return std::unexpected(bad.error());
      }
      if (auto bad = p.Result(0); !bad) return std::unexpected(bad.error());
      d.progress.push_back(std::move(progress));
    }
  }
  return r.Result(std::move(d));
}

Json ToJson(const Image& i) {
  return {{"id", i.id},
          {"component_id", i.component_id},
          {"name", i.name},
          {"kind", i.kind},
          {"version", i.version},
          {"security_version", i.security_version},
          {"sha256", i.sha256},
          {"size", i.size},
          {"uploaded_at", i.uploaded_at},
          {"target_boards", i.target_boards}};
}

Expected<Image> ImageFrom(const Json& doc) {
  Reader r(doc, "image");
  Image i{r.Text("id"),
          r.Text("component_id"),
          r.Text("name"),
          r.Text("kind"),
          r.Text("version"),
          r.Number("security_version"),
          r.Text("sha256"),
          r.Number("size"),
          r.Number("uploaded_at"),
          r.Texts("target_boards")};
  return r.Result(std::move(i));
}

Json ToJson(const OsRelease& o) {
  Json components = Json::object();
  for (const auto& [component, digest] : o.components) components[component] = digest;
  return {{"version", o.version},
          {"feed", o.feed},
          {"created_at", o.created_at},
          {"retired", !o.retired_reason.empty()},
          {"retired_reason", o.retired_reason},
          {"image_id", o.image_id},
          {"board_image_id", o.board_image_id},
          {"components", std::move(components)}};
}

Expected<OsRelease> OsReleaseFrom(const Json& doc) {
  Reader r(doc, "OS release");
  OsRelease o{r.Text("version"),
              r.Text("feed"),
              r.Number("created_at"),
              r.Text("retired_reason"),
              r.Text("image_id"),
              r.Text("board_image_id"),
              {}};
  if (const auto it = doc.is_object() ? doc.find("components") : doc.end();
      it != doc.end() && it->is_object()) {
    for (const auto& [component, digest] : it->items()) {
      if (digest.is_string()) o.components.emplace_back(component, digest.get<std::string>());
    }
  }
  return r.Result(std::move(o));
}

}  // namespace aspis::wire::api
