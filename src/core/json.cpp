#include "core/json.hpp"

#include <set>
#include <string>
#include <vector>

namespace aspis::json {

namespace {

Expected<const Json*> Field(const Json& object, std::string_view key) {
  if (!object.is_object()) return Fail(CoreErrc::kParse, "expected a JSON object");
  const auto it = object.find(key);
  if (it == object.end())
    return Fail(CoreErrc::kParse, "missing field \"" + std::string(key) + "\"");
  return &*it;
}

Error WrongType(std::string_view key, std::string_view expected) {
  return Error(CoreErrc::kParse,
               "field \"" + std::string(key) + "\" is not " + std::string(expected));
}

}  // namespace

std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Expected<Json> Parse(std::string_view text, int max_depth) {
  int depth = 0;
  bool too_deep = false;
  bool duplicate = false;
  // The keys seen in each object being read, outermost first.
  std::vector<std::set<std::string, std::less<>>> keys;
  // The callback bounds nesting so hostile input cannot exhaust the stack, and refuses a key
  // given twice, which readers would take differently (the first, or the last).
  const Json::parser_callback_t check = [&](int d, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) {
      depth = d + 1;
      if (depth > max_depth) too_deep = true;
    }
    if (event == Json::parse_event_t::object_start) keys.emplace_back();
    if (event == Json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == Json::parse_event_t::key && !keys.empty() && parsed.is_string() &&
        !keys.back().insert(parsed.get<std::string>()).second) {
      duplicate = true;
    }
    return !too_deep && !duplicate;
  };
  Json value = Json::parse(text.begin(), text.end(), check, /*allow_exceptions=*/false);
  if (too_deep) {
    return Fail(CoreErrc::kParse,
                "JSON nests deeper than " + std::to_string(max_depth) + " levels");
  }
  if (duplicate) return Fail(CoreErrc::kParse, "a JSON object names a key twice");
  if (value.is_discarded()) return Fail(CoreErrc::kParse, "malformed JSON");
  return value;
}

Expected<std::string> GetString(const Json& object, std::string_view key) {
  auto field = Field(object, key);
  if (!field) return std::unexpected(field.error());
  if (!(*field)->is_string()) return std::unexpected(WrongType(key, "a string"));
  return (*field)->get<std::string>();
}

Expected<std::uint64_t> GetUint(const Json& object, std::string_view key) {
  auto field = Field(object, key);
  if (!field) return std::unexpected(field.error());
  if (!(*field)->is_number_unsigned()) {
    return std::unexpected(WrongType(key, "a non-negative integer"));
  }
  return (*field)->get<std::uint64_t>();
}

Expected<const Json*> GetObject(const Json& object, std::string_view key) {
  auto field = Field(object, key);
  if (field && !(*field)->is_object()) return std::unexpected(WrongType(key, "an object"));
  return field;
}

Expected<const Json*> GetArray(const Json& object, std::string_view key) {
  auto field = Field(object, key);
  if (field && !(*field)->is_array()) return std::unexpected(WrongType(key, "an array"));
  return field;
}

}  // namespace aspis::json
