#pragma once

#include <system_error>

#include "core/error.hpp"

namespace aspis::device::apps {

enum class AppsErrc {
  kSandbox = 1,   // the sandbox could not be built or the app could not be started in it
  kCgroup,        // a control group could not be made, limited, joined or read
  kNotRunning,    // asked of an app that is not running
  kUnknownApp,    // no installed app has that component ID
  kNoEvent,       // no system event is pending that the app could defer or resume
  kNotPermitted,  // the app's manifest does not grant what it asked for
};

const std::error_category& AppsCategory();
inline std::error_code make_error_code(AppsErrc e) { return {static_cast<int>(e), AppsCategory()}; }

}  // namespace aspis::device::apps

template <>
struct std::is_error_code_enum<aspis::device::apps::AppsErrc> : std::true_type {};
