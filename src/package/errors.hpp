#pragma once

#include <system_error>

#include "core/error.hpp"

namespace aspis::package {

enum class PackageErrc {
  kMalformed = 1,  // not an image package, or its manifest breaks the format's rules
  kUntrusted,      // no trusted publisher key of the right kind signed it
  kMismatch,       // the payload differs from what the signed manifest declares (hash or size)
  kTooLarge,       // a limit of the format or of the reader was exceeded
  kUnsafeEntry,    // an archive entry would write outside its target or is not a plain file/dir
  kIo,             // reading or writing failed
  kCancelled,      // the caller asked the work to stop (it may be started again later)
};

const std::error_category& PackageCategory();
inline std::error_code make_error_code(PackageErrc e) {
  return {static_cast<int>(e), PackageCategory()};
}

}  // namespace aspis::package

template <>
struct std::is_error_code_enum<aspis::package::PackageErrc> : std::true_type {};
