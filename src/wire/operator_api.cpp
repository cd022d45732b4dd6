#include "wire/operator_api.hpp"

#include <algorithm>
#include <initializer_list>

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

Expected<std::string> RequiredText(const Json& doc, std::string_view key, std::size_t max) {
  const auto it = doc.find(key);
  if (it == doc.end() || !it->is_string() || it->get<std::string>().empty() ||
      it->get<std::string>().size() > max) {
    return std::unexpected(
        Invalid(key, "is required: text of 1 to " + std::to_string(max) + " characters"));
  }
  return it->get<std::string>();
}

bool IsDescription(std::string_view d) { return d.size() <= kMaxDescription; }

template <std::size_t N>
bool OneOf(const std::array<std::string_view, N>& values, std::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

bool IsFeed(std::string_view f) { return OneOf(kOsFeeds, f); }
bool IsPolicy(std::string_view p) { return OneOf(kUpdatePolicies, p); }

constexpr std::string_view kNameRule =
    "must be 1 to 50 characters, without / or control characters";
constexpr std::string_view kDescriptionRule = "must be text of at most 200 characters";
constexpr std::string_view kFeedRule = "must be retail or retail-eval";

void Put(Json& doc, std::string_view key, const std::optional<std::string>& value) {
  if (value) doc[std::string(key)] = *value;
}

}  // namespace

bool IsName(std::string_view n) {
  return !n.empty() && n.size() <= 50 && n.find('/') == std::string_view::npos &&
         std::none_of(n.begin(), n.end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x20; });
}

std::string Serialize(const ProductFields& f) {
  Json doc = Json::object();
  Put(doc, "name", f.name);
  Put(doc, "description", f.description);
  return doc.dump();
}

Expected<ProductFields> ParseProductFields(std::string_view text) {
  auto doc = Object(text, {"name", "description"});
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

Expected<DeviceGroupFields> ParseDeviceGroupFields(std::string_view text) {
  auto doc = Object(text, {"name", "description", "os_feed", "update_policy", "app_updates"});
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

std::string Serialize(const DeploymentRequest& r) { return Json{{"images", r.images}}.dump(); }

Expected<DeploymentRequest> ParseDeploymentRequest(std::string_view text) {
  auto doc = Object(text, {"images"});
  if (!doc) return std::unexpected(doc.error());
  const auto images = doc->find("images");
  if (images == doc->end() || !images->is_array() || images->size() > kMaxDeploymentImages) {
    return std::unexpected(Invalid("images", "must list at most 64 image IDs"));
  }
  DeploymentRequest r;
  for (const auto& image : *images) {
    if (!image.is_string() || image.get<std::string>().empty() ||
        image.get<std::string>().size() > kMaxId) {
      return std::unexpected(Invalid("images", "must list image IDs"));
    }
    r.images.push_back(image.get<std::string>());
  }
  return r;
}

std::string Serialize(const DeviceGroupAssignment& a) {
  return Json{{"device_group_id", a.device_group_id}}.dump();
}

Expected<DeviceGroupAssignment> ParseDeviceGroupAssignment(std::string_view text) {
  auto doc = Object(text, {"device_group_id"});
  if (!doc) return std::unexpected(doc.error());
  auto group = RequiredText(*doc, "device_group_id", kMaxId);
  if (!group) return std::unexpected(group.error());
  return DeviceGroupAssignment{*group};
}

std::string Serialize(const OsReleasePublication& p) {
  return Json{{"image_id", p.image_id}, {"board_image_id", p.board_image_id}, {"feed", p.feed}}
      .dump();
}

Expected<OsReleasePublication> ParseOsReleasePublication(std::string_view text) {
  auto doc = Object(text, {"image_id", "board_image_id", "feed"});
  if (!doc) return std::unexpected(doc.error());
  auto image = RequiredText(*doc, "image_id", kMaxId);
  if (!image) return std::unexpected(image.error());
  auto board = RequiredText(*doc, "board_image_id", kMaxId);
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

}  // namespace

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
              {"current", d.current}};
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
               {}};
  if (doc.is_object() && doc.contains("progress")) {
    for (const auto& item : r.List("progress")) {
      Reader p(item, "deployment progress");
      ImageProgress progress{p.Text("image_id"),
                             p.Number("downloading"),
                             p.Number("downloaded"),
                             p.Number("failed"),
                             {}};
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
