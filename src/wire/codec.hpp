#pragma once

#include <string_view>

#include "core/json.hpp"
#include "wire/errors.hpp"

// Internal to src/wire: what every message parser shares.
namespace aspis::wire {

inline constexpr std::size_t kMaxMessage = std::size_t{256} << 10;

// A JSON object of at most kMaxMessage bytes and nesting depth 8.
Expected<json::Json> ParseMessage(std::string_view text, std::string_view what);

// Adds the message name to a field's error.
template <class T>
Expected<T> In(Expected<T> value, std::string_view what) {
  if (!value) return std::unexpected(std::move(value.error()).WithContext(what));
  return value;
}

}  // namespace aspis::wire
