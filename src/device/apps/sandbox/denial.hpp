#pragma once

#include <functional>
#include <string>

namespace aspis::device::apps::sandbox {

// Something the sandbox refused an app, as it is reported.
struct Denial {
  std::string what;    // "syscall", "connection", "lookup", "listen"
  std::string detail;  // "ptrace", "203.0.113.7:443 (not in AllowedConnections)"
};

// Receives an app's denials; called on the sandbox's or the resolver's thread, so it must be
// thread-safe, quick, and must not throw.
using DenialSink = std::function<void(const Denial&)>;

}  // namespace aspis::device::apps::sandbox
