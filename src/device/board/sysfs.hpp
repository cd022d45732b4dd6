#pragma once

#include <filesystem>
#include <string>

#include "core/error.hpp"

// sysfs attributes, as the kernel's drivers (PWM, remoteproc) expose them.
namespace aspis::device::board {

// Writes `value` to the attribute at `path` in one write (the file is truncated first, which
// sysfs ignores and a test's plain file needs). Errors: the errno the kernel answered, with the
// path.
Expected<void> WriteAttribute(const std::filesystem::path& path, const std::string& value);

// The attribute's text without its trailing newline (at most 4 KiB, a sysfs page). Errors: as
// WriteAttribute.
Expected<std::string> ReadAttribute(const std::filesystem::path& path);

}  // namespace aspis::device::board
