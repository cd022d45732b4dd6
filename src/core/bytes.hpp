#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace aspis {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsString(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes ToBytes(std::string_view s) { return {s.begin(), s.end()}; }

// Lowercase hexadecimal, two digits per byte.
std::string HexEncode(ByteView bytes);
// Accepts upper- or lowercase digits; fails on odd length or any other character.
Expected<Bytes> HexDecode(std::string_view hex);

}  // namespace aspis
