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

}  // namespace aspis::wire::api
