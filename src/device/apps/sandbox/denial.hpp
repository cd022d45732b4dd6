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

// `sink`, passed at most `per_second` denials a second; past that they are counted, and the count
// is passed on (as a denial "flood") with the first denial of a later second. Thread-safe.
DenialSink RateLimited(DenialSink sink, int per_second);

}  // namespace aspis::device::apps::sandbox
