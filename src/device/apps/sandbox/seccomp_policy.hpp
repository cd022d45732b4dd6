#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"

// The seccomp filter every app runs under (DESIGN section 6): an allowlist of the system calls
// ordinary programs make. Every other call is not failed silently by the kernel but handed to
// aspisd through the filter's user notification listener, which refuses it (EPERM) and reports
// the denial, or, for the socket calls, mediates them (socket_mediator.hpp); clone3 alone fails
// with ENOSYS unreported, so that the C library falls back to clone, whose flags the filter can
// see and which may then make no namespace.
namespace aspis::device::apps::sandbox {

// A classic BPF program, ready for seccomp(SECCOMP_SET_MODE_FILTER).
struct SeccompProgram {
  std::vector<sock_filter> instructions;
};

// The filter for this machine's architecture; calls of any other architecture's ABI (such as
// i386 calls on x86_64) kill the process. A real-time app's filter also keeps it on the CPU it was
// pinned to: its sched_setaffinity is refused and reported. Errors: kSandbox when libseccomp
// refuses the rules.
Expected<SeccompProgram> BuildAppFilter(bool real_time = false);

// The name of system call `nr` of the architecture `arch` (an AUDIT_ARCH_* value, as a seccomp
// notification gives it), or "syscall <nr>" when libseccomp does not know it.
std::string SyscallName(std::uint32_t arch, int nr);

}  // namespace aspis::device::apps::sandbox
