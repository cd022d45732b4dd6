#include "core/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace aspis::text {

namespace {

// The code point at the start of `s` and its length in bytes; nullopt when `s` does not start
// with a shortest-form UTF-8 sequence of a Unicode scalar value.
std::optional<std::pair<char32_t, std::size_t>> Decode(std::string_view s) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return std::pair{char32_t{lead}, std::size_t{1}};
  std::size_t length = 0;
  char32_t value = 0;
  if ((lead & 0xe0) == 0xc0) {
    length = 2;
    value = lead & 0x1f;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3;
    value = lead & 0x0f;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4;
    value = lead & 0x07;
  } else {
    return std::nullopt;
  }
  if (s.size() < length) return std::nullopt;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return std::nullopt;
    value = (value << 6) | (byte(i) & 0x3f);
  }
  constexpr char32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (value < kMinimum[length] || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) {
    return std::nullopt;
  }
  return std::pair{value, length};
}

// Controls (C0, DEL, C1) and the characters that reorder text on screen.
bool Hidden(char32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x061c || c == 0x200e || c == 0x200f ||
         (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

}  // namespace

std::vector<std::string_view> Split(std::string_view s, char separator) {
  std::vector<std::string_view> parts;
  for (std::size_t at = 0;;) {
    const std::size_t next = s.find(separator, at);
    parts.push_back(s.substr(at, next == std::string_view::npos ? next : next - at));
    if (next == std::string_view::npos) return parts;
    at = next + 1;
  }
}

bool IsToken(std::string_view s, std::string_view extra, std::size_t max) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

bool IsPlainText(std::string_view s, std::size_t max_chars) {
  std::size_t count = 0;
  while (!s.empty()) {
    const auto decoded = Decode(s);
    if (!decoded || Hidden(decoded->first) || ++count > max_chars) return false;
    s.remove_prefix(decoded->second);
  }
  return true;
}

std::string Printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const auto decoded = Decode(s);
    if (!decoded) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s.front()));
      s.remove_prefix(1);
      continue;
    }
    const auto [c, length] = *decoded;
    if (c < 0x80 && Hidden(c)) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
    } else if (Hidden(c)) {
      out += fmt::format("\\u{{{:04x}}}", static_cast<unsigned>(c));
    } else {
      out.append(s.substr(0, length));
    }
    s.remove_prefix(length);
  }
  return out;
}

std::string Truncated(std::string_view s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  constexpr std::string_view kMore = "...";
  std::size_t keep = max_bytes > kMore.size() ? max_bytes - kMore.size() : 0;
  // Back off continuation bytes (10xxxxxx) so no character is cut in two.
  while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0) == 0x80) --keep;
  return std::string(s.substr(0, keep)) + std::string(kMore.substr(0, max_bytes - keep));
}

}  // namespace aspis::text
