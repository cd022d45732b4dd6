#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

// JSON helpers that turn nlohmann's exceptions into Errors. Include only where JSON is handled.
namespace aspis::json {

using Json = nlohmann::json;

// Serializes `value` compactly; never throws: bytes that are not UTF-8 become U+FFFD, so text a
// client sent (a path, a truncated name) cannot break an answer.
std::string Dump(const Json& value);

// Parses `text`; malformed JSON, trailing bytes and nesting deeper than `max_depth` are errors.
Expected<Json> Parse(std::string_view text, int max_depth = 64);

// Field readers for an object: a missing field or one of another type is a kParse error naming it.
Expected<std::string> GetString(const Json& object, std::string_view key);
Expected<std::uint64_t> GetUint(const Json& object, std::string_view key);
Expected<const Json*> GetObject(const Json& object, std::string_view key);
Expected<const Json*> GetArray(const Json& object, std::string_view key);

}  // namespace aspis::json
