#include "device/apps/sandbox/seccomp_policy.hpp"

#include <linux/prctl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "core/fd.hpp"
#include "device/apps/errors.hpp"

namespace aspis::device::apps::sandbox {

namespace {

// What programs in C, C++ and the common runtimes call in ordinary work. Deliberately absent:
// ptrace, process_vm_*, mount and the new mount API, pivot_root, chroot, unshare, setns,
// set*id and capset, module loading, kexec, bpf, perf_event_open, io_uring (which would make
// the calls this filter never sees), userfaultfd, keyctl, *_by_handle_at, mknod, personality,
// reboot, swap, quotas, syslog, acct.
constexpr std::string_view kAllowed[] = {
    "accept",
    "accept4",
    "access",
    "alarm",
    "arch_prctl",
    "brk",
    "capget",
    "chdir",
    "chmod",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "flock",
    "fork",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_waitv",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "kill",
    "link",
    "linkat",
    "_llseek",
    "lseek",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "mincore",
    "mkdir",
    "mkdirat",
    "mlock",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_yield",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "setitimer",
    "setpgid",
    "set_robust_list",
    "setrlimit",
    "setsid",
    "set_tid_address",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync_file_range",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "times",
    "tkill",
    "truncate",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "wait4",
    "waitid",
    "write",
    "writev",
};

// IP-level socket options that choose nothing about where a packet goes.
// Socket-level options an app may set: none that shares a port with another owner's socket
// (SO_REUSEPORT and its steering programs: aspisd made every app socket, so the kernel would take
// them all for one owner's), pins aspisd's memory (SO_ZEROCOPY: aspisd performs the sends), or
// picks an interface.
constexpr int kSocketOptions[] = {
    SO_REUSEADDR,     SO_KEEPALIVE,       SO_BROADCAST,     SO_LINGER,          SO_RCVBUF,
    SO_SNDBUF,        SO_RCVTIMEO_OLD,    SO_SNDTIMEO_OLD,  SO_RCVTIMEO_NEW,    SO_SNDTIMEO_NEW,
    SO_RCVLOWAT,      SO_SNDLOWAT,        SO_OOBINLINE,     SO_PRIORITY,        SO_DONTROUTE,
    SO_TIMESTAMP_OLD, SO_TIMESTAMPNS_OLD, SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW, SO_PASSCRED,
    SO_PEEK_OFF};

// ioctl requests an app may make: terminal queries (isatty), and what a socket or pipe says of
// its own queues. Nothing that reads the device's interfaces, routes or neighbours.
constexpr unsigned long kIoctls[] = {TCGETS,  TIOCGWINSZ, FIONREAD, FIONBIO,
                                     FIOCLEX, FIONCLEX,   TIOCOUTQ, SIOCATMARK};

constexpr int kIpOptions[] = {IP_TOS,
                              IP_TTL,
                              IP_RECVERR,
                              IP_MTU_DISCOVER,
                              IP_PKTINFO,
                              IP_RECVTOS,
                              IP_RECVTTL,
                              IP_MULTICAST_IF,
                              IP_MULTICAST_TTL,
                              IP_MULTICAST_LOOP,
                              IP_ADD_MEMBERSHIP,
                              IP_DROP_MEMBERSHIP,
                              IP_BIND_ADDRESS_NO_PORT};
constexpr int kIpv6Options[] = {IPV6_V6ONLY,         IPV6_UNICAST_HOPS,   IPV6_MULTICAST_IF,
                                IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP, IPV6_JOIN_GROUP,
                                IPV6_LEAVE_GROUP,    IPV6_RECVPKTINFO,    IPV6_TCLASS,
                                IPV6_RECVERR,        IPV6_MTU_DISCOVER,   IPV6_RECVTCLASS};

// The clone flags that make namespaces (CLONE_NEWTIME exists only for clone3).
constexpr std::uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                          CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                          CLONE_NEWNET;

struct ContextDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextDeleter>;

Error Refused(const std::string& what, int rc) {
  return Error(AppsErrc::kSandbox,
               "libseccomp refused " + what + ": " + std::generic_category().message(-rc));
}

Expected<void> Add(const Context& ctx, std::uint32_t action, const char* name,
                   std::initializer_list<scmp_arg_cmp> args = {}) {
  const int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return {};  // not a call of this architecture
  const int rc = seccomp_rule_add_array(ctx.get(), action, nr, static_cast<unsigned>(args.size()),
                                        args.size() == 0 ? nullptr : args.begin());
  if (rc != 0) return std::unexpected(Refused(std::string("the rule for ") + name, rc));
  return {};
}

}  // namespace

Expected<SeccompProgram> BuildAppFilter(bool real_time) {
  Context ctx(seccomp_init(SCMP_ACT_NOTIFY));
  if (!ctx) return Fail(AppsErrc::kSandbox, "libseccomp could not start a filter");
  if (const int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
      rc != 0) {
    return std::unexpected(Refused("killing calls of other architectures", rc));
  }
  for (const auto name : kAllowed) {
    if (real_time && name == "sched_setaffinity") continue;
    if (auto ok = Add(ctx, SCMP_ACT_ALLOW, std::string(name).c_str()); !ok) {
      return std::unexpected(ok.error());
    }
  }
  const std::initializer_list<std::pair<std::uint32_t, const char*>> quiet = {
      {SCMP_ACT_ERRNO(ENOSYS), "clone3"}};
  for (const auto& [action, name] : quiet) {
    if (auto ok = Add(ctx, action, name); !ok) return std::unexpected(ok.error());
  }
  // clone without namespace flags; Unix sockets and pairs; sendto without an address (on a
  // connected socket) and without TCP Fast Open. IPv4 and IPv6 sockets and every call that
  // chooses a peer or a port go to aspisd (socket_mediator.hpp); raw and packet sockets, netlink
  // and the rest are refused and reported.
  Expected<void> ok =
      Add(ctx, SCMP_ACT_ALLOW, "clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0)});
  // prctl but core scheduling, with which a spinning app would keep a CPU's sibling idle too.
  if (ok) ok = Add(ctx, SCMP_ACT_ALLOW, "prctl", {SCMP_A0(SCMP_CMP_NE, PR_SCHED_CORE)});
  if (ok) ok = Add(ctx, SCMP_ACT_ALLOW, "socket", {SCMP_A0(SCMP_CMP_EQ, AF_UNIX)});
  if (ok) ok = Add(ctx, SCMP_ACT_ALLOW, "socketpair", {SCMP_A0(SCMP_CMP_EQ, AF_UNIX)});
  if (ok) {
    ok = Add(ctx, SCMP_ACT_ALLOW, "sendto",
             {SCMP_A3(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, 0), SCMP_A4(SCMP_CMP_EQ, 0)});
  }
  // Socket options: any at the TCP and UDP levels; at the socket level those listed; at the IP
  // levels only those that do not choose a route (no IP options or IPv6 routing and extension
  // headers, which would send a packet past the address aspisd checked).
  for (const scmp_datum_t level : {scmp_datum_t{IPPROTO_TCP}, scmp_datum_t{IPPROTO_UDP}}) {
    if (ok) ok = Add(ctx, SCMP_ACT_ALLOW, "setsockopt", {SCMP_A1(SCMP_CMP_EQ, level)});
  }
  for (const int option : kSocketOptions) {
    if (ok) {
      ok = Add(ctx, SCMP_ACT_ALLOW, "setsockopt",
               {SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET),
                SCMP_A2(SCMP_CMP_EQ, static_cast<scmp_datum_t>(option))});
    }
  }
  for (const unsigned long request : kIoctls) {
    if (ok) ok = Add(ctx, SCMP_ACT_ALLOW, "ioctl", {SCMP_A1(SCMP_CMP_EQ, request)});
  }
  for (const int option : kIpOptions) {
    if (ok) {
      ok = Add(ctx, SCMP_ACT_ALLOW, "setsockopt",
               {SCMP_A1(SCMP_CMP_EQ, IPPROTO_IP),
                SCMP_A2(SCMP_CMP_EQ, static_cast<scmp_datum_t>(option))});
    }
  }
  for (const int option : kIpv6Options) {
    if (ok) {
      ok = Add(ctx, SCMP_ACT_ALLOW, "setsockopt",
               {SCMP_A1(SCMP_CMP_EQ, IPPROTO_IPV6),
                SCMP_A2(SCMP_CMP_EQ, static_cast<scmp_datum_t>(option))});
    }
  }
  if (!ok) return std::unexpected(ok.error());

  // libseccomp 2.5 exports only to a descriptor.
  Fd out(::memfd_create("aspis-seccomp", MFD_CLOEXEC));
  if (out.get() < 0) return Fail(AppsErrc::kSandbox, "cannot make a memfd for the filter");
  if (const int rc = seccomp_export_bpf(ctx.get(), out.get()); rc != 0) {
    return std::unexpected(Refused("exporting the filter", rc));
  }
  const off_t size = ::lseek(out.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    return Fail(AppsErrc::kSandbox, "libseccomp exported a filter of a strange size");
  }
  SeccompProgram program;
  program.instructions.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (::pread(out.get(), program.instructions.data(), static_cast<std::size_t>(size), 0) != size) {
    return Fail(AppsErrc::kSandbox, "cannot read the exported filter back");
  }
  return program;
}

std::string SyscallName(std::uint32_t arch, int nr) {
  char* name = seccomp_syscall_resolve_num_arch(arch, nr);
  if (name == nullptr) return "syscall " + std::to_string(nr);
  std::string out(name);
  std::free(name);  // NOLINT(cppcoreguidelines-no-malloc): libseccomp allocates with malloc
  return out;
}

}  // namespace aspis::device::apps::sandbox
