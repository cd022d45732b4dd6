#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

// Rules for text that others write (operators, devices) and that people read.
namespace aspis::text {

// The parts of `s` between each `separator` (views into it), empty ones included: one part, `s`,
// when it holds none.
std::vector<std::string_view> Split(std::string_view s, char separator);

// Whether `s` is 1 to `max` ASCII letters, digits or characters of `extra`.
bool IsToken(std::string_view s, std::string_view extra, std::size_t max = 64);

// Versions of packages and OS releases: 1 to 64 letters, digits, dots, pluses, dashes,
// underscores or tildes, so a version is also a path segment.
inline bool IsVersion(std::string_view s) { return IsToken(s, ".+-_~"); }

// Whether `s` is valid UTF-8 of at most `max_chars` code points holding no control character
// (C0, DEL, C1) and no bidirectional formatting character, so that it prints as what it says.
bool IsPlainText(std::string_view s, std::size_t max_chars);

// `s` with each control character, bidirectional formatting character and byte that is not
// UTF-8 written as an escape (\x1b, \u{202e}), so text others wrote cannot drive a terminal.
std::string Printable(std::string_view s);

// `s` cut to at most `max_bytes` bytes, at a UTF-8 character boundary, with "..." at the end
// when anything was cut (the result then holds at most `max_bytes` bytes in all).
std::string Truncated(std::string_view s, std::size_t max_bytes);

}  // namespace aspis::text
